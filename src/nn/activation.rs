//! The activation functions ([`Op::is_activation`]) on one value, as PyTorch defines them, and the
//! inference engine's pass applying one to a layer's input.

use super::kernels;
use super::model::Op;

/// `sqrt(2 / pi)`, GELU's tanh approximation.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

// `v < 0` and `v > 0` are false for NaN, and `clamp` keeps NaN: NaN passes through as in PyTorch.

pub fn relu(v: f32) -> f32 {
    if v < 0.0 { 0.0 } else { v }
}

/// `e^x` to within 2 ulp (Cephes' expf: `2^n · p(r)`, `r = x − n ln 2`), branch-free so that the
/// engine's passes over sigmoid and SiLU vectorise (the libm call in `f32::exp` does not, and it
/// was most of EfficientNet's activation time). Saturates below `e^-87` (→ ~1e-38) and above
/// `e^88`; NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer in SSE2 arithmetic.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r
        + 0.5;
    let p = p * z + r + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

pub fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + exp(-v))
}

/// `clamp(x + 3, 0, 6) / 6`, i.e. `clamp(x / 6 + 1/2, 0, 1)` in PyTorch's order of operations.
pub fn hardsigmoid(v: f32) -> f32 {
    (v + 3.0).clamp(0.0, 6.0) / 6.0
}

pub fn hardswish(v: f32) -> f32 {
    v * (v + 3.0).clamp(0.0, 6.0) / 6.0
}

pub fn silu(v: f32) -> f32 {
    v / (1.0 + exp(-v))
}

/// `x * Phi(x)`: `x/2 * (1 + erf(x / sqrt 2))`.
pub fn gelu_erf(v: f32) -> f32 {
    0.5 * v * (1.0 + candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2))
}

/// `x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`.
pub fn gelu_tanh(v: f32) -> f32 {
    0.5 * v * (1.0 + (SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v)).tanh())
}

pub fn leaky_relu(v: f32, negative_slope: f32) -> f32 {
    if v < 0.0 { v * negative_slope } else { v }
}

pub fn elu(v: f32, alpha: f32) -> f32 {
    if v > 0.0 { v } else { alpha * v.exp_m1() }
}

/// The activation `op` on every value of `x`; `None` when `op` is not an activation.
pub(super) fn apply(op: &Op, x: &[f32]) -> Option<Vec<f32>> {
    Some(match *op {
        Op::Relu => kernels::map(x, relu),
        Op::Sigmoid => kernels::map(x, sigmoid),
        Op::Tanh => kernels::map(x, f32::tanh),
        Op::Relu6 => kernels::map(x, |v| v.clamp(0.0, 6.0)),
        Op::Clip { min, max } => kernels::map(x, |v| v.clamp(min, max)),
        Op::Hardswish => kernels::map(x, hardswish),
        Op::Hardsigmoid => kernels::map(x, hardsigmoid),
        Op::Silu => kernels::map(x, silu),
        Op::Gelu { tanh: false } => kernels::map(x, gelu_erf),
        Op::Gelu { tanh: true } => kernels::map(x, gelu_tanh),
        Op::LeakyRelu { negative_slope } => kernels::map(x, |v| leaky_relu(v, negative_slope)),
        Op::Elu { alpha } => kernels::map(x, |v| elu(v, alpha)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_where_it_matters() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
            x += 0.001_7;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1000.0) < 1e-37 && exp(1000.0) > 1e38 && exp(1000.0).is_finite());
        assert_eq!(sigmoid(0.0), 0.5);
    }

    const XS: [f32; 6] = [-3.0, -1.0, 0.0, 0.5, 3.0, 7.0];

    fn check(op: Op, want: [f64; 6]) {
        let got = apply(&op, &XS).unwrap();
        for ((x, g), w) in XS.iter().zip(&got).zip(want) {
            assert!(
                (f64::from(*g) - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{op:?} at {x}: got {g}, want {w}"
            );
        }
    }

    /// Each activation at x = -3, -1, 0, 0.5, 3, 7, against its formula worked out by hand (f64).
    #[test]
    fn activations_at_hand_computed_points() {
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        check(Op::Relu6, [0.0, 0.0, 0.0, 0.5, 3.0, 6.0]);
        check(Op::Clip { min: -1.5, max: 2.0 }, [-1.5, -1.0, 0.0, 0.5, 2.0, 2.0]);
        // hardsigmoid: clamp(x/6 + 1/2, 0, 1) = 0, 1/3, 1/2, 7/12, 1, 1.
        check(Op::Hardsigmoid, [0.0, 1.0 / 3.0, 0.5, 7.0 / 12.0, 1.0, 1.0]);
        check(Op::Hardswish, [0.0, -1.0 / 3.0, 0.0, 0.5 * 7.0 / 12.0, 3.0, 7.0]);
        check(
            Op::Silu,
            [
                -3.0 * sig(-3.0),
                -sig(-1.0),
                0.0,
                0.5 * sig(0.5),
                3.0 * sig(3.0),
                7.0 * sig(7.0),
            ],
        );
        // Phi(x) from tables: Phi(-3) = 0.0013498980, Phi(-1) = 0.1586552539, Phi(0.5) = 0.6914624613,
        // Phi(3) = 0.9986501020, Phi(7) = 1 - 1.28e-12.
        check(
            Op::Gelu { tanh: false },
            [
                -3.0 * 0.001_349_898_0,
                -0.158_655_253_9,
                0.0,
                0.5 * 0.691_462_461_3,
                3.0 * 0.998_650_102_0,
                7.0,
            ],
        );
        let gt = |x: f64| 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
        check(
            Op::Gelu { tanh: true },
            [gt(-3.0), gt(-1.0), 0.0, gt(0.5), gt(3.0), gt(7.0)],
        );
        check(Op::LeakyRelu { negative_slope: 0.1 }, [-0.3, -0.1, 0.0, 0.5, 3.0, 7.0]);
        let e = |x: f64| 0.5 * (x.exp() - 1.0);
        check(Op::Elu { alpha: 0.5 }, [e(-3.0), e(-1.0), 0.0, 0.5, 3.0, 7.0]);
        assert!(apply(&Op::Softmax, &XS).is_none());
    }

    #[test]
    fn nan_passes_through() {
        for op in [
            Op::Relu6,
            Op::Clip { min: 0.0, max: 1.0 },
            Op::Hardswish,
            Op::Hardsigmoid,
            Op::Silu,
            Op::Gelu { tanh: false },
            Op::Gelu { tanh: true },
            Op::LeakyRelu { negative_slope: 0.01 },
            Op::Elu { alpha: 1.0 },
        ] {
            assert!(apply(&op, &[f32::NAN]).unwrap()[0].is_nan(), "{op:?}");
        }
    }
}

//! The elementwise binary ops (`add`, `sub`, `mul`, `div`) with numpy broadcasting, as the engine
//! and the neuron query compute them. Every operand is seen as three axes: `[C, H, W]` maps as they
//! are, `[N]` vectors and rank-1 constants as `[N, 1, 1]`; an axis of 1 repeats along the output's.

use rayon::prelude::*;

use super::kernels::PAR_MIN;
use super::model::{Layer, Op, Shape};

/// An operand's dimensions as three axes (see the module documentation).
pub type Dims3 = [usize; 3];

pub fn dims3(dims: &[usize]) -> Dims3 {
    match *dims {
        [c, h, w] => [c, h, w],
        [n] => [n, 1, 1],
        _ => [0, 0, 0],
    }
}

pub fn shape_dims3(s: Shape) -> Dims3 {
    dims3(&s.dims())
}

/// The broadcast of two same-rank dimension lists (each axis equal, or 1 on one side); `None`
/// where they do not broadcast.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    if a.len() != b.len() {
        return None;
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Some(x),
            (1, _) => Some(y),
            (_, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// The offset, in an operand of dimensions `d`, of output neuron `[c, y, x]` (broadcast axes
/// read index 0).
pub fn source_offset(d: Dims3, [c, y, x]: Dims3) -> usize {
    let pick = |n: usize, i: usize| if n == 1 { 0 } else { i };
    (pick(d[0], c) * d[1] + pick(d[1], y)) * d[2] + pick(d[2], x)
}

/// The output neuron `[c, y, x]` of a flat output offset in dimensions `out`.
pub fn index3(out: Dims3, off: usize) -> Dims3 {
    [off / (out[1] * out[2]), (off / out[2]) % out[1], off % out[2]]
}

/// The scalar function of a binary op; `None` for other ops.
pub fn function(op: &Op) -> Option<fn(f32, f32) -> f32> {
    Some(match op {
        Op::Add => |a, b| a + b,
        Op::Sub => |a, b| a - b,
        Op::Mul => |a, b| a * b,
        Op::Div => |a, b| a / b,
        _ => return None,
    })
}

/// The constant operand's dimensions of a binary layer with one input (its weight), if any.
pub fn constant_dims(layer: &Layer) -> Option<Dims3> {
    match layer.inputs.as_slice() {
        [_] => layer.params.first().map(|p| dims3(&p.shape)),
        _ => None,
    }
}

/// `f(a, b)` broadcast to `out`, in one pass over the output.
pub fn apply(f: fn(f32, f32) -> f32, (a, ad): (&[f32], Dims3), (b, bd): (&[f32], Dims3), out: Dims3) -> Vec<f32> {
    let n = out.iter().product::<usize>();
    if ad == out && bd == out {
        return if n >= PAR_MIN {
            a.par_iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
        } else {
            a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
        };
    }
    let [_, h, w] = out;
    let plane = h * w;
    // One output channel: its plane from each operand's row starts and column steps.
    let channel = |c: usize, dst: &mut [f32]| {
        for y in 0..h {
            let (ra, rb) = (source_offset(ad, [c, y, 0]), source_offset(bd, [c, y, 0]));
            let (sa, sb) = (usize::from(ad[2] != 1), usize::from(bd[2] != 1));
            let row = &mut dst[y * w..(y + 1) * w];
            for (x, o) in row.iter_mut().enumerate() {
                *o = f(a[ra + x * sa], b[rb + x * sb]);
            }
        }
    };
    let mut y = vec![0f32; n];
    if plane == 0 {
        return y;
    }
    if n >= PAR_MIN {
        y.par_chunks_mut(plane).enumerate().for_each(|(c, dst)| channel(c, dst));
    } else {
        y.chunks_mut(plane).enumerate().for_each(|(c, dst)| channel(c, dst));
    }
    y
}

/// `f` folded over the operands (`add` of three or more: `(a + b) + c`), each broadcast to `out`.
pub fn fold(f: fn(f32, f32) -> f32, operands: &[(&[f32], Dims3)], out: Dims3) -> Vec<f32> {
    let mut acc = apply(f, operands[0], operands[1], out);
    for &b in &operands[2..] {
        acc = apply(f, (&acc, out), b, out);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_as_numpy() {
        assert_eq!(broadcast(&[4, 1, 1], &[4, 3, 2]), Some(vec![4, 3, 2]));
        assert_eq!(broadcast(&[1, 3, 1], &[4, 1, 2]), Some(vec![4, 3, 2]));
        assert_eq!(broadcast(&[4, 3, 2], &[2, 3, 2]), None);
        assert_eq!(broadcast(&[4], &[4, 1, 1]), None);
        // x [2, 1, 3] * g [1, 2, 1]
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let g = [10.0, 100.0];
        let y = apply(|a, b| a * b, (&x, [2, 1, 3]), (&g, [1, 2, 1]), [2, 2, 3]);
        assert_eq!(
            y,
            [
                10.0, 20.0, 30.0, 100.0, 200.0, 300.0, 40.0, 50.0, 60.0, 400.0, 500.0, 600.0
            ]
        );
        let d = apply(|a, b| a - b, (&g, [1, 2, 1]), (&x, [2, 1, 3]), [2, 2, 3]);
        assert_eq!(d[0], 9.0);
        assert_eq!(d[11], 94.0);
    }
}

//! Direct single-image conv2d and dense kernels for small layers.
//!
//! `netwalk bench forward` showed candle's im2col/gemm path spending 50–300 µs of fixed overhead
//! per small layer (thread hand-offs, packing), so layers under a few million multiply-adds run
//! here instead; large layers still go through candle. Both paths are checked against
//! onnxruntime by the reference tests.

use super::model::Pair;

/// Below this many multiply-adds a layer of a single input runs on the direct kernels.
pub const DIRECT_MAX_MACS: u64 = 4_000_000;

/// A conv2d of one `[cin, h, w]` image with PyTorch semantics; returns `[cout, oh, ow]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    input: &[f32],
    (cin, h, w): (usize, usize, usize),
    weight: &[f32],
    bias: Option<&[f32]>,
    (cout, oh, ow): (usize, usize, usize),
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: usize,
) -> Vec<f32> {
    let cin_g = cin / groups;
    let cout_g = cout / groups;
    let mut out = vec![0f32; cout * oh * ow];
    for (co, plane) in out.chunks_exact_mut(oh * ow).enumerate() {
        plane.fill(bias.map_or(0.0, |b| b[co]));
        let g = co / cout_g;
        for ci in 0..cin_g {
            let src = &input[(g * cin_g + ci) * h * w..][..h * w];
            for ky in 0..kernel.0 {
                for kx in 0..kernel.1 {
                    let wt = weight[((co * cin_g + ci) * kernel.0 + ky) * kernel.1 + kx];
                    // Output columns whose input column ox*sx + kx*dx - px lies inside the image.
                    let off = (kx * dilation.1) as isize - padding.1 as isize;
                    let sx = stride.1 as isize;
                    let ox_lo = if off >= 0 { 0 } else { ((-off) + sx - 1) / sx } as usize;
                    let ox_hi = ((w as isize - off + sx - 1) / sx).clamp(0, ow as isize) as usize;
                    if ox_lo >= ox_hi {
                        continue;
                    }
                    for oy in 0..oh {
                        let iy = (oy * stride.0 + ky * dilation.0) as isize - padding.0 as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let row = &src[iy as usize * w..][..w];
                        let dst = &mut plane[oy * ow..][..ow];
                        if stride.1 == 1 {
                            let start = (ox_lo as isize + off) as usize;
                            let n = ox_hi - ox_lo;
                            for (d, s) in dst[ox_lo..ox_hi].iter_mut().zip(&row[start..start + n]) {
                                *d += wt * s;
                            }
                        } else {
                            for ox in ox_lo..ox_hi {
                                dst[ox] += wt * row[(ox as isize * sx + off) as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// `y = W x + b` for one input vector; `weight` is `[out, in]` row-major.
pub fn dense(input: &[f32], weight: &[f32], bias: Option<&[f32]>, out_features: usize) -> Vec<f32> {
    let n = input.len();
    (0..out_features)
        .map(|o| dot(&weight[o * n..][..n], input) + bias.map_or(0.0, |b| b[o]))
        .collect()
}

/// Dot product with eight independent accumulators, so the compiler can vectorize it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

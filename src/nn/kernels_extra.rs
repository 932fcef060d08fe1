//! The engine's loops for the ops real CNNs add to the plain conv stack (channel shuffle,
//! layer norm, ...): plain loops over whole planes, parallel per channel where a layer is big.

use rayon::prelude::*;

use super::kernels::PAR_MIN;

/// ShuffleNet's shuffle of `c` planes of `plane` values: out plane `j * groups + i` is in plane
/// `i * (c / groups) + j`.
pub(super) fn channel_shuffle(x: &[f32], c: usize, plane: usize, groups: usize) -> Vec<f32> {
    let per = c / groups;
    let mut y = Vec::with_capacity(x.len());
    for oc in 0..c {
        let ic = (oc % groups) * per + oc / groups;
        y.extend_from_slice(&x[ic * plane..(ic + 1) * plane]);
    }
    y
}

/// Layer norm over the `c` channels at each of `plane` positions (`[N]`: one position of `c`
/// features), then `* weight[c] + bias[c]`; the variance biased, as PyTorch's.
pub(super) fn layernorm(x: &[f32], c: usize, plane: usize, eps: f32, weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut mean = vec![0f32; plane];
    for ch in x.chunks_exact(plane) {
        mean.iter_mut().zip(ch).for_each(|(m, &v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= c as f32);
    let mut var = vec![0f32; plane];
    for ch in x.chunks_exact(plane) {
        var.iter_mut()
            .zip(ch)
            .zip(&mean)
            .for_each(|((s, &v), &m)| *s += (v - m) * (v - m));
    }
    let inv: Vec<f32> = var.iter().map(|s| 1.0 / (s / c as f32 + eps).sqrt()).collect();
    let mut y = vec![0f32; x.len()];
    let channel = |(k, (dst, src)): (usize, (&mut [f32], &[f32]))| {
        for (((o, &v), &m), &i) in dst.iter_mut().zip(src).zip(&mean).zip(&inv) {
            *o = (v - m) * i * weight[k] + bias[k];
        }
    };
    if x.len() >= PAR_MIN {
        y.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(channel);
    } else {
        y.chunks_mut(plane).zip(x.chunks(plane)).enumerate().for_each(channel);
    }
    y
}

/// `c` planes of `h x w` padded with `value`: `[top, left, bottom, right]` rows and columns.
pub(super) fn pad(x: &[f32], (c, h, w): (usize, usize, usize), [t, l, b, r]: [usize; 4], value: f32) -> Vec<f32> {
    let (oh, ow) = (h + t + b, w + l + r);
    let mut y = vec![value; c * oh * ow];
    for (dst, src) in y.chunks_exact_mut(oh * ow).zip(x.chunks_exact(h * w)) {
        for (row, line) in src.chunks_exact(w).enumerate() {
            let at = (row + t) * ow + l;
            dst[at..at + w].copy_from_slice(line);
        }
    }
    y
}

/// A transposed convolution's geometry (see [`super::model::Op::ConvTranspose2d`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct TransposeGeometry {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

/// The input cells `i < n` that tap `k` sends inside an output of `n_out` cells, for output
/// `i * stride + k * dilation - padding`.
pub(super) fn tap_range(
    n: usize,
    n_out: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: usize,
) -> std::ops::Range<usize> {
    let off = (k * dilation) as isize - padding as isize;
    let lo = if off >= 0 { 0 } else { (-off) as usize };
    let lo = lo.div_ceil(stride);
    let last = n_out as isize - 1 - off;
    let hi = if last < 0 {
        0
    } else {
        (last as usize / stride + 1).min(n)
    };
    lo..hi.max(lo)
}

/// PyTorch's ConvTranspose2d: every input cell scattered through the kernel into the output,
/// one output channel at a time (in parallel where the layer is big).
pub(super) fn conv_transpose2d(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    weight: &[f32],
    bias: Option<&[f32]>,
    (oc, oh, ow): (usize, usize, usize),
    g: TransposeGeometry,
) -> Vec<f32> {
    let (cin_g, cout_g) = (c / g.groups, oc / g.groups);
    let (kh, kw) = g.kernel;
    let channel = |(o, dst): (usize, &mut [f32])| {
        dst.fill(bias.map_or(0.0, |b| b[o]));
        let (group, ol) = (o / cout_g, o % cout_g);
        for ic in group * cin_g..(group + 1) * cin_g {
            let plane = &x[ic * h * w..(ic + 1) * h * w];
            for ky in 0..kh {
                let rows = tap_range(h, oh, ky, g.stride.0, g.dilation.0, g.padding.0);
                for kx in 0..kw {
                    let cols = tap_range(w, ow, kx, g.stride.1, g.dilation.1, g.padding.1);
                    let wt = weight[((ic * cout_g + ol) * kh + ky) * kw + kx];
                    for iy in rows.clone() {
                        let oy = iy * g.stride.0 + ky * g.dilation.0 - g.padding.0;
                        let line = &plane[iy * w..(iy + 1) * w];
                        let out = &mut dst[oy * ow..(oy + 1) * ow];
                        for ix in cols.clone() {
                            out[ix * g.stride.1 + kx * g.dilation.1 - g.padding.1] += wt * line[ix];
                        }
                    }
                }
            }
        }
    };
    let mut y = vec![0f32; oc * oh * ow];
    if oc * oh * ow * cin_g * kh * kw >= PAR_MIN {
        y.par_chunks_mut(oh * ow).enumerate().for_each(channel);
    } else {
        y.chunks_mut(oh * ow).enumerate().for_each(channel);
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_conv_of_one_cell_is_the_kernel() {
        // One input cell, stride 2: the 2x2 kernel lands at the output's corner, plus the bias.
        let g = TransposeGeometry {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        };
        let y = conv_transpose2d(&[2.0], (1, 1, 1), &[1.0, 2.0, 3.0, 4.0], Some(&[0.5]), (1, 2, 2), g);
        assert_eq!(y, [2.5, 4.5, 6.5, 8.5]);
        // Padding 1 on 3 cells, kernel 3, stride 2: out = 2*2 - 2 + 2 + 1 = 5; tap 0 of cell 0
        // lands in the padding (-1), tap 2 of cell 2 past the end (5).
        assert_eq!(tap_range(3, 5, 0, 2, 1, 1), 1..3);
        assert_eq!(tap_range(3, 5, 2, 2, 1, 1), 0..2);
        assert_eq!(tap_range(3, 5, 1, 2, 1, 1), 0..3);
    }
}

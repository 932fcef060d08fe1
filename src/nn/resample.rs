//! PyTorch's F.interpolate along one axis (nearest, and bilinear with or without
//! `align_corners`), as taps shared by the engine, candle's forward pass and the neuron query.
//! The scales are computed in f32, as PyTorch's CPU kernels do, so the chosen cells match its.

use rayon::prelude::*;

use super::kernels::PAR_MIN;

/// One output cell along an axis: `(1 - l1) * x[i0] + l1 * x[i1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tap {
    pub i0: usize,
    pub i1: usize,
    pub l1: f32,
}

/// The taps of the `n_out` output cells resampling `n_in` input cells.
pub fn taps(n_in: usize, n_out: usize, bilinear: bool, align_corners: bool) -> Vec<Tap> {
    (0..n_out)
        .map(|d| {
            if !bilinear {
                // PyTorch's nearest_idx: exact for the same size and for doubling, else floor(d * scale).
                let i = if n_out == n_in {
                    d
                } else if n_out == 2 * n_in {
                    d >> 1
                } else {
                    let scale = n_in as f32 / n_out as f32;
                    ((d as f32 * scale).floor() as usize).min(n_in - 1)
                };
                return Tap { i0: i, i1: i, l1: 0.0 };
            }
            let src = if align_corners {
                let scale = if n_out > 1 {
                    (n_in - 1) as f32 / (n_out - 1) as f32
                } else {
                    0.0
                };
                scale * d as f32
            } else {
                let scale = n_in as f32 / n_out as f32;
                (scale * (d as f32 + 0.5) - 0.5).max(0.0)
            };
            let i0 = (src as usize).min(n_in - 1);
            let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
            Tap {
                i0,
                i1,
                l1: src - i0 as f32,
            }
        })
        .collect()
}

/// The input cells of a tap with their weights (one cell, weight 1, where both taps read it).
pub fn cells(t: Tap) -> Vec<(usize, f32)> {
    if t.i0 == t.i1 {
        vec![(t.i0, 1.0)]
    } else {
        vec![(t.i0, 1.0 - t.l1), (t.i1, t.l1)]
    }
}

/// Upsample `c` planes of `h x w` to `oh x ow` through the row and column taps (in parallel per
/// plane where the output is big).
pub fn run(x: &[f32], (c, h, w): (usize, usize, usize), rows: &[Tap], cols: &[Tap]) -> Vec<f32> {
    let (oh, ow) = (rows.len(), cols.len());
    let mut y = vec![0f32; c * oh * ow];
    let plane = |(dst, src): (&mut [f32], &[f32])| {
        for (r, line) in rows.iter().zip(dst.chunks_exact_mut(ow)) {
            let (a, b) = (&src[r.i0 * w..(r.i0 + 1) * w], &src[r.i1 * w..(r.i1 + 1) * w]);
            for (q, o) in cols.iter().zip(line) {
                let (l1, l0) = (q.l1, 1.0 - q.l1);
                // PyTorch's order: rows of the two columns' blend.
                let top = l0 * a[q.i0] + l1 * a[q.i1];
                let bottom = l0 * b[q.i0] + l1 * b[q.i1];
                *o = (1.0 - r.l1) * top + r.l1 * bottom;
            }
        }
    };
    if y.is_empty() {
        return y;
    }
    if y.len() >= PAR_MIN {
        y.par_chunks_mut(oh * ow).zip(x.par_chunks(h * w)).for_each(plane);
    } else {
        y.chunks_mut(oh * ow).zip(x.chunks(h * w)).for_each(plane);
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_as_pytorch() {
        // nearest 3 -> 7: floor(d * 3/7).
        let near: Vec<usize> = taps(3, 7, false, false).iter().map(|t| t.i0).collect();
        assert_eq!(near, [0, 0, 0, 1, 1, 2, 2]);
        // bilinear 2 -> 4, half-pixel: src = (d + 0.5) / 2 - 0.5 = -0.25 (clamped), 0.25, 0.75, 1.25.
        let t = taps(2, 4, true, false);
        assert_eq!(t[0], Tap { i0: 0, i1: 1, l1: 0.0 });
        assert_eq!(t[1], Tap { i0: 0, i1: 1, l1: 0.25 });
        assert_eq!(t[3], Tap { i0: 1, i1: 1, l1: 0.25 });
        // align_corners 2 -> 3: src = 0, 0.5, 1.
        let t = taps(2, 3, true, true);
        assert_eq!(t[1], Tap { i0: 0, i1: 1, l1: 0.5 });
        assert_eq!(t[2], Tap { i0: 1, i1: 1, l1: 0.0 });
        // A 2x2 map doubled bilinearly: the corner stays, the next cell is 3/4 + 1/4.
        let y = run(
            &[0.0, 4.0, 8.0, 12.0],
            (1, 2, 2),
            &taps(2, 4, true, false),
            &taps(2, 4, true, false),
        );
        assert_eq!(y[0], 0.0);
        assert_eq!(y[1], 1.0);
        assert_eq!(y[15], 12.0);
    }
}

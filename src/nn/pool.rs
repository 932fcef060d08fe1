//! Pooling windows as PyTorch draws them, shared by the engine, candle's forward, the neuron query
//! and the receptive field: `ceil_mode` output sizes, windows clipped at the input's edge, average
//! divisors with and without the padding (`count_include_pad`), and adaptive average pooling.

use rayon::prelude::*;

use super::model::{Op, Pair};

/// One output's window along one axis: input cells `lo..hi` (clipped to the input) and its share
/// `div` of the average's divisor (the divisor is the product over both axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Win {
    pub lo: usize,
    pub hi: usize,
    pub div: usize,
}

/// PyTorch's pooling output size along one axis: `floor_or_ceil((size + 2p - k) / s) + 1`, and in
/// ceil mode the last window must start inside the input or its left padding. `None` when the
/// kernel does not fit.
pub fn pool_out(size: usize, kernel: usize, stride: usize, pad: usize, ceil: bool) -> Option<usize> {
    let d = size.checked_add(pad.checked_mul(2)?)?.checked_sub(kernel)?;
    let mut out = if ceil { d.div_ceil(stride) } else { d / stride } + 1;
    if ceil && (out - 1) * stride >= size + pad {
        out -= 1;
    }
    Some(out)
}

/// The windows of a kernel pool along one axis. The divisor counts the padding where
/// `include_pad` (but not cells past the padded edge, reached only in ceil mode), else only the
/// real cells.
fn kernel_axis(size: usize, out: usize, kernel: usize, stride: usize, pad: usize, include_pad: bool) -> Vec<Win> {
    (0..out)
        .map(|o| {
            let start = (o * stride) as isize - pad as isize;
            let end = (start + kernel as isize).min((size + pad) as isize);
            let lo = start.max(0) as usize;
            let hi = (end.max(0) as usize).min(size).max(lo);
            let div = if include_pad { (end - start) as usize } else { hi - lo };
            Win { lo, hi, div }
        })
        .collect()
}

/// Adaptive average pooling's windows along one axis: output `i` spans `floor(i * size / out)` to
/// `ceil((i + 1) * size / out)`.
fn adaptive_axis(size: usize, out: usize) -> Vec<Win> {
    (0..out)
        .map(|i| {
            let lo = i * size / out;
            let hi = ((i + 1) * size).div_ceil(out);
            Win { lo, hi, div: hi - lo }
        })
        .collect()
}

/// The (rows, columns) windows of a pooling op reading an `h x w` map into `oh x ow`; `None` for
/// other ops (global average pooling included: one window over everything).
pub fn windows(op: &Op, (h, w): Pair, (oh, ow): Pair) -> Option<(Vec<Win>, Vec<Win>)> {
    let kernel = |kernel: Pair, stride: Pair, padding: Pair, include_pad: bool| {
        (
            kernel_axis(h, oh, kernel.0, stride.0, padding.0, include_pad),
            kernel_axis(w, ow, kernel.1, stride.1, padding.1, include_pad),
        )
    };
    Some(match *op {
        Op::MaxPool2d {
            kernel: k,
            stride,
            padding,
            ..
        } => kernel(k, stride, padding, true),
        Op::AvgPool2d {
            kernel: k,
            stride,
            padding,
            count_include_pad,
            ..
        } => kernel(k, stride, padding, count_include_pad),
        Op::AdaptiveAvgPool2d { .. } => (adaptive_axis(h, oh), adaptive_axis(w, ow)),
        _ => return None,
    })
}

/// Whether the engine and candle's forward can take their fast paths for this op (floor mode,
/// padding counted); the others go through the windows.
pub fn is_plain(op: &Op) -> bool {
    match *op {
        Op::MaxPool2d { ceil_mode, .. } => !ceil_mode,
        Op::AvgPool2d {
            ceil_mode,
            count_include_pad,
            ..
        } => !ceil_mode && count_include_pad,
        _ => false,
    }
}

/// Pool a `c x h x w` map through explicit windows: the max over each window's input cells, or
/// their sum over the divisor. NaN wins a max, as in PyTorch. Channels run in parallel; within
/// one, each output row first reduces its window's input rows elementwise (contiguous, so it
/// vectorises), then each output reduces its columns of that row.
pub(super) fn pool_windows(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    rows: &[Win],
    cols: &[Win],
    is_max: bool,
) -> Vec<f32> {
    let (oh, ow) = (rows.len(), cols.len());
    let mut out = vec![0f32; c * oh * ow];
    if oh * ow == 0 {
        return out;
    }
    let init = if is_max { f32::NEG_INFINITY } else { 0.0 };
    let combine = |a: f32, v: f32| {
        if !is_max {
            a + v
        } else if v > a || v.is_nan() {
            v
        } else {
            a
        }
    };
    let body = |(ch, dst): (usize, &mut [f32])| {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        let mut acc = vec![init; w];
        for (r, drow) in rows.iter().zip(dst.chunks_exact_mut(ow)) {
            acc.fill(init);
            for iy in r.lo..r.hi {
                for (a, &v) in acc.iter_mut().zip(&plane[iy * w..(iy + 1) * w]) {
                    *a = combine(*a, v);
                }
            }
            for (q, d) in cols.iter().zip(drow) {
                let v = acc[q.lo..q.hi].iter().fold(init, |a, &v| combine(a, v));
                *d = if is_max { v } else { v / (r.div * q.div) as f32 };
            }
        }
    };
    // Below this many inputs the thread hand-off costs more than the pooling.
    if c * h * w >= 1 << 15 {
        out.par_chunks_mut(oh * ow).enumerate().for_each(body);
    } else {
        out.chunks_mut(oh * ow).enumerate().for_each(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_mode_sizes_follow_pytorch() {
        assert_eq!(pool_out(13, 3, 2, 1, false), Some(7));
        assert_eq!(pool_out(13, 3, 2, 1, true), Some(7));
        assert_eq!(pool_out(12, 3, 2, 0, false), Some(5));
        assert_eq!(pool_out(12, 3, 2, 0, true), Some(6));
        // The last window would start in the right padding: dropped.
        assert_eq!(pool_out(5, 2, 2, 1, true), Some(3));
        assert_eq!(pool_out(2, 3, 1, 0, true), None);
    }

    #[test]
    fn windows_clip_and_count() {
        let rows = kernel_axis(12, 6, 3, 2, 0, true);
        assert_eq!(rows[5], Win { lo: 10, hi: 12, div: 2 });
        let rows = kernel_axis(13, 7, 3, 2, 1, true);
        assert_eq!(rows[0], Win { lo: 0, hi: 2, div: 3 });
        let rows = kernel_axis(13, 7, 3, 2, 1, false);
        assert_eq!(rows[0], Win { lo: 0, hi: 2, div: 2 });
        assert_eq!(adaptive_axis(13, 5)[1], Win { lo: 2, hi: 6, div: 4 });
        assert_eq!(adaptive_axis(13, 5)[4], Win { lo: 10, hi: 13, div: 3 });
    }
}

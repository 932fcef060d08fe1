//! The inference engine's kernels on plain `f32` buffers: elementwise passes, softmax, pooling,
//! dense layers, and convolution as im2col + `gemm` with the fused epilogue ([`Post`]) that the
//! Winograd path shares. They know nothing of models; [`super::engine`] picks which to run.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::model::{Pair, Shape};

/// Elements below which a loop stays on the calling thread (thread hand-offs cost more).
pub(super) const PAR_MIN: usize = 1 << 15;
/// Multiply-adds below which gemm runs single-threaded.
const GEMM_PAR_MIN: usize = 1 << 20;

/// An output buffer written through a raw pointer by parallel tasks that touch disjoint elements.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: only handed to tasks that write disjoint elements of the buffer it points into.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// What runs on a convolution's output in the same pass that writes it, while the values are in
/// cache: its bias, and the batchnorm and relu layers that follow it, each written to its own
/// output (every layer's output is kept). Saves those layers' own passes over memory and their
/// parallel sections (each a synchronisation of the whole pool).
pub(super) struct Post<'a> {
    pub(super) bias: Option<&'a [f32]>,
    /// Batchnorm as `x * scale + shift`, and its output.
    pub(super) bn: Option<(&'a [f32], &'a [f32], OutPtr)>,
    /// The relu's output: relu of the batchnorm's output if there is one, else of the conv's.
    pub(super) relu: Option<OutPtr>,
}

impl Post<'_> {
    /// Bias only (no fused layers).
    #[cfg(test)]
    pub(super) fn bias(bias: Option<&[f32]>) -> Post<'_> {
        Post {
            bias,
            bn: None,
            relu: None,
        }
    }

    /// Writes `vals`, conv outputs (before the bias) of channel `ch`, at elements `at..` of
    /// every output.
    ///
    /// # Safety
    /// The elements must be inside every output, and no other thread may write them.
    #[inline]
    pub(super) unsafe fn store_row(&self, conv: *mut f32, ch: usize, at: usize, vals: &[f32]) {
        let b = self.bias.map_or(0.0, |b| b[ch]);
        // SAFETY: the caller's contract.
        unsafe {
            let c = std::slice::from_raw_parts_mut(conv.add(at).cast::<MaybeUninit<f32>>(), vals.len());
            for (c, &v) in c.iter_mut().zip(vals) {
                c.write(v + b);
            }
            self.rest(conv, ch, at, vals.len());
        }
    }

    /// Rows `rows` (channels), columns `cols` of the `[channels][n]` conv output, already
    /// written (without bias): adds the bias in place and writes the fused layers' outputs.
    ///
    /// # Safety
    /// The region must be inside every output, written in `conv`, and touched by no other thread.
    pub(super) unsafe fn finish(
        &self,
        conv: *mut f32,
        n: usize,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
    ) {
        if self.bias.is_none() && self.bn.is_none() && self.relu.is_none() {
            return;
        }
        let len = cols.len();
        for ch in rows {
            let at = ch * n + cols.start;
            // SAFETY: the caller's contract.
            unsafe {
                if let Some(b) = self.bias {
                    std::slice::from_raw_parts_mut(conv.add(at), len)
                        .iter_mut()
                        .for_each(|v| *v += b[ch]);
                }
                self.rest(conv, ch, at, len);
            }
        }
    }

    /// The fused layers' outputs at elements `at..at + len` (channel `ch`) from the conv's.
    ///
    /// # Safety
    /// As [`Post::finish`], for those elements.
    #[inline]
    unsafe fn rest(&self, conv: *mut f32, ch: usize, at: usize, len: usize) {
        // SAFETY: the caller's contract; the three outputs are distinct buffers.
        unsafe {
            let mut last: &[f32] = std::slice::from_raw_parts(conv.add(at), len);
            if let Some((scale, shift, out)) = self.bn {
                let o = std::slice::from_raw_parts_mut(out.0.add(at).cast::<MaybeUninit<f32>>(), len);
                let (s, t) = (scale[ch], shift[ch]);
                for (o, &v) in o.iter_mut().zip(last) {
                    o.write(v * s + t);
                }
                last = std::slice::from_raw_parts(out.0.add(at), len);
            }
            if let Some(out) = self.relu {
                let o = std::slice::from_raw_parts_mut(out.0.add(at).cast::<MaybeUninit<f32>>(), len);
                for (o, &v) in o.iter_mut().zip(last) {
                    // `v < 0` is false for NaN, so NaN passes through as in PyTorch.
                    o.write(if v < 0.0 { 0.0 } else { v });
                }
            }
        }
    }
}

pub(super) fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    // Fixed chunks, each a plain loop the compiler vectorises (rayon's per-element `map` did not).
    const CHUNK: usize = 1 << 14;
    let body = |(o, i): (&mut [MaybeUninit<f32>], &[f32])| {
        for (o, &v) in o.iter_mut().zip(i) {
            o.write(f(v));
        }
    };
    // SAFETY: the chunks of `out` and `x` pair up one to one, and every element is written.
    unsafe {
        written(x.len(), |out| {
            if x.len() >= PAR_MIN {
                out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(body);
            } else {
                body((out, x));
            }
        })
    }
}

/// The inputs one after the other (a channel concat of `[C, H, W]` maps, or of vectors).
pub(super) fn concat(parts: &[&[f32]]) -> Vec<f32> {
    let n: usize = parts.iter().map(|p| p.len()).sum();
    let body = |(o, i): (&mut [MaybeUninit<f32>], &[f32])| {
        // SAFETY: same layout; every element of `o` is written by the copy.
        o.copy_from_slice(unsafe { &*(i as *const [f32] as *const [MaybeUninit<f32>]) });
    };
    // SAFETY: the output is cut into one piece per input of its length, each copied in full.
    unsafe {
        written(n, |out| {
            let mut pieces = Vec::with_capacity(parts.len());
            let mut rest = &mut out[..n];
            for p in parts {
                let (head, tail) = rest.split_at_mut(p.len());
                pieces.push((head, *p));
                rest = tail;
            }
            if n >= PAR_MIN {
                pieces.into_par_iter().for_each(body);
            } else {
                pieces.into_iter().for_each(body);
            }
        })
    }
}

pub(super) fn per_channel(x: &[f32], c: usize, plane: usize, f: impl Fn(usize, f32) -> f32 + Sync) -> Vec<f32> {
    if plane == 0 {
        return Vec::new();
    }
    assert_eq!(x.len(), c * plane);
    let body = |(ch, (o, i)): (usize, (&mut [MaybeUninit<f32>], &[f32]))| {
        for (o, &v) in o.iter_mut().zip(i) {
            o.write(f(ch, v));
        }
    };
    // SAFETY: the chunks of `out` and `x` pair up one to one (same length, asserted), and every
    // element of every chunk is written.
    unsafe {
        written(c * plane, |out| {
            if x.len() >= PAR_MIN {
                out.par_chunks_mut(plane)
                    .zip(x.par_chunks(plane))
                    .enumerate()
                    .for_each(body);
            } else {
                out.chunks_mut(plane).zip(x.chunks(plane)).enumerate().for_each(body);
            }
        })
    }
}

/// A vector of `n` values filled by `fill`, without zeroing it first: the engine allocates every
/// layer's output on each forward, and zeroing them all was a serial pass over ~30 MB.
///
/// # Safety
/// `fill` must write all `n` elements of the slice it gets.
pub(super) unsafe fn written(n: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: all n elements were written (the caller's contract).
    unsafe { v.set_len(n) };
    v
}

pub(super) fn softmax(x: &[f32], shape: Shape) -> Vec<f32> {
    // Over all of [N]; over the channels of each pixel of [C, H, W].
    let (c, plane) = match shape {
        Shape::Flat(n) => (n, 1),
        Shape::Chw(c, h, w) => (c, h * w),
    };
    let mut out = vec![0f32; x.len()];
    for p in 0..plane {
        let max = (0..c).map(|k| x[k * plane + p]).fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for k in 0..c {
            let e = (x[k * plane + p] - max).exp();
            out[k * plane + p] = e;
            sum += e;
        }
        for k in 0..c {
            out[k * plane + p] /= sum;
        }
    }
    out
}

/// Elements per task of the elementwise passes.
const CHUNK: usize = 1 << 14;

/// `a + b` and its relu, in one pass writing both (an add followed by a relu, fused by the engine).
pub(super) fn add_relu(a: &[f32], b: &[f32]) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(a.len(), b.len());
    let n = a.len();
    let mut relu = Vec::with_capacity(n);
    // One chunk: (sum out, relu out), (a, b).
    type Chunk<'a> = (
        (&'a mut [MaybeUninit<f32>], &'a mut [MaybeUninit<f32>]),
        (&'a [f32], &'a [f32]),
    );
    let body = |((s, r), (a, b)): Chunk| {
        for (((s, r), &a), &b) in s.iter_mut().zip(r.iter_mut()).zip(a).zip(b) {
            let v = a + b;
            s.write(v);
            // `v < 0` is false for NaN, so NaN passes through as in PyTorch.
            r.write(if v < 0.0 { 0.0 } else { v });
        }
    };
    // SAFETY: the chunks of both outputs pair up one to one with those of the inputs (same
    // lengths), and every element of every chunk is written.
    let sum = unsafe {
        written(n, |s| {
            let r = &mut relu.spare_capacity_mut()[..n];
            if n >= PAR_MIN {
                s.par_chunks_mut(CHUNK)
                    .zip(r.par_chunks_mut(CHUNK))
                    .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
                    .for_each(body);
            } else {
                body(((s, r), (a, b)));
            }
        })
    };
    // SAFETY: written above.
    unsafe { relu.set_len(n) };
    (sum, relu)
}

/// A raw pointer shared by the blocks of one product, which touch disjoint parts of it.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only inside this file's kernels (`conv_gemm`, the dense layer), whose blocks read
// shared inputs and write disjoint outputs.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// One single-threaded gemm on a block: `m x cols` of dst (row stride `ld`), `m x k` of lhs
/// (row stride `k`), `k x cols` of rhs (row stride `ld_rhs`).
///
/// # Safety
/// The pointers must address matrices of those shapes and strides, and dst must not alias.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_block(
    dst: *mut f32,
    lhs: *const f32,
    rhs: *const f32,
    m: usize,
    cols: usize,
    k: usize,
    ld: usize,
    ld_rhs: usize,
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            cols,
            k,
            dst,
            1,
            ld as isize,
            false,
            lhs,
            1,
            k as isize,
            rhs,
            1,
            ld_rhs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A convolution's kernel, stride, padding, dilation and groups.
#[derive(Clone, Copy)]
pub(super) struct ConvGeometry {
    pub(super) kernel: Pair,
    pub(super) stride: Pair,
    pub(super) padding: Pair,
    pub(super) dilation: Pair,
    pub(super) groups: usize,
}

/// Writes every element of `out[..oc * oh * ow]` and of `post`'s outputs (`weight` as
/// `[oc, c / groups, kh, kw]`).
pub(super) fn conv2d(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    weight: &[f32],
    (oc, oh, ow): (usize, usize, usize),
    geo: ConvGeometry,
    post: &Post,
    out: &mut [MaybeUninit<f32>],
) {
    let n = oh * ow;
    let out = &mut out[..oc * n];
    // Grouped and depthwise convolutions have their own kernels (super::grouped).
    assert_eq!(geo.groups, 1, "kernels::conv2d is the one-group convolution");
    conv_gemm(x, (c, h, w), weight, (oc, oh, ow), geo, post, out);
}

/// An initialized slice seen as `MaybeUninit`, for functions that only write it.
fn as_uninit(v: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; the callee only writes initialized values.
    unsafe { &mut *(v as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

thread_local! {
    /// Each worker's im2col block, kept between layers and forwards.
    static COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Output pixels per column block of [`conv_gemm`]: its im2col block (`k` rows of this many)
/// stays in a core's cache (conv1 of a ResNet: 147 x 256 values, 150 KB).
const COL_BLOCK: usize = 256;

/// A one-group convolution as im2col + gemm, with `post` applied to each block as it is computed.
///
/// With more output pixels than channels (the early, large planes) the work is cut into blocks of
/// output pixels, each task unfolding only its own pixels into a per-thread buffer that stays in
/// cache and multiplying it straight away: one parallel section. Otherwise (small planes, many
/// channels) the whole input is unfolded once and the tasks take blocks of output channels.
fn conv_gemm(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    weight: &[f32],
    (m, oh, ow): (usize, usize, usize),
    geo: ConvGeometry,
    post: &Post,
    out: &mut [MaybeUninit<f32>],
) {
    let k = c * geo.kernel.0 * geo.kernel.1;
    let n = oh * ow;
    assert!(out.len() >= m * n && weight.len() >= m * k);
    let pointwise = geo.kernel == (1, 1) && geo.stride == (1, 1) && geo.padding == (0, 0);
    let threads = rayon::current_num_threads();
    let parallel = m * n * k >= GEMM_PAR_MIN && threads > 1;
    let (dst, lhs) = (SendPtr(out.as_mut_ptr().cast()), SendPtr(weight.as_ptr() as *mut f32));
    if n >= m {
        // Column blocks of about COL_BLOCK pixels, as a multiple of the thread count.
        let mut blocks = n.div_ceil(COL_BLOCK);
        if parallel {
            blocks = blocks.div_ceil(threads) * threads;
        }
        let width = n.div_ceil(blocks);
        let body = |b: usize| {
            let (c0, c1) = (b * width, ((b + 1) * width).min(n));
            if c0 >= c1 {
                return;
            }
            let cols = c1 - c0;
            if pointwise {
                // SAFETY: column block [c0, c1) of dst and of the input (k x n), inside the
                // asserted sizes; blocks write disjoint columns.
                unsafe {
                    gemm_block(dst.get().add(c0), lhs.get(), x.as_ptr().add(c0), m, cols, k, n, n);
                    post.finish(dst.get(), n, 0..m, c0..c1);
                }
                return;
            }
            COL.with_borrow_mut(|col| {
                col.resize(col.len().max(k * cols), 0.0);
                im2col_cols(x, (c, h, w), (oh, ow), geo, c0..c1, as_uninit(&mut col[..k * cols]));
                // SAFETY: column block [c0, c1) of dst, the whole block matrix `col` (k x cols);
                // blocks write disjoint columns.
                unsafe {
                    gemm_block(dst.get().add(c0), lhs.get(), col.as_ptr(), m, cols, k, n, cols);
                    post.finish(dst.get(), n, 0..m, c0..c1);
                }
            });
        };
        if parallel {
            (0..blocks).into_par_iter().for_each(body);
        } else {
            (0..blocks).for_each(body);
        }
        return;
    }
    let col;
    let rhs: &[f32] = if pointwise {
        x
    } else {
        // SAFETY: im2col writes every element of its k x n matrix.
        col = unsafe { written(k * n, |col| im2col(x, (c, h, w), (oh, ow), geo, col)) };
        &col
    };
    let rhs = SendPtr(rhs.as_ptr() as *mut f32);
    let rows = if parallel { m.div_ceil(threads * 2).max(8) } else { m };
    let body = |b: usize| {
        let (r0, r1) = (b * rows, ((b + 1) * rows).min(m));
        // SAFETY: row block [r0, r1) of dst and of the weights, the whole rhs (k x n), inside the
        // asserted sizes; blocks write disjoint rows.
        unsafe {
            gemm_block(
                dst.get().add(r0 * n),
                lhs.get().add(r0 * k),
                rhs.get(),
                r1 - r0,
                n,
                k,
                n,
                n,
            );
            post.finish(dst.get(), n, r0..r1, 0..n);
        }
    };
    if parallel {
        (0..m.div_ceil(rows)).into_par_iter().for_each(body);
    } else {
        (0..m.div_ceil(rows)).for_each(body);
    }
}

/// Unfold input patches: row `(ci, ky, kx)` of `col` holds that tap for every output pixel.
fn im2col(
    x: &[f32],
    chw: (usize, usize, usize),
    (oh, ow): (usize, usize),
    geo: ConvGeometry,
    col: &mut [MaybeUninit<f32>],
) {
    let n = oh * ow;
    let taps = geo.kernel.0 * geo.kernel.1;
    let col = &mut col[..chw.0 * taps * n];
    let fill = |(row, dst): (usize, &mut [MaybeUninit<f32>])| im2col_row(x, chw, (oh, ow), geo, row, 0..n, dst);
    if col.len() >= PAR_MIN {
        col.par_chunks_mut(n).enumerate().for_each(fill);
    } else {
        col.chunks_mut(n).enumerate().for_each(fill);
    }
}

/// [`im2col`] for the output pixels `pixels` only (`col` has `pixels.len()` columns).
pub(super) fn im2col_cols(
    x: &[f32],
    chw: (usize, usize, usize),
    ohw: (usize, usize),
    geo: ConvGeometry,
    pixels: std::ops::Range<usize>,
    col: &mut [MaybeUninit<f32>],
) {
    let width = pixels.len();
    for (row, dst) in col.chunks_exact_mut(width).enumerate() {
        im2col_row(x, chw, ohw, geo, row, pixels.clone(), dst);
    }
}

/// Row `row` (tap `(ci, ky, kx)`) of the im2col matrix, for output pixels `pixels` (row-major
/// over `oh x ow`), into `dst` (`pixels.len()` long).
fn im2col_row(
    x: &[f32],
    (_, h, w): (usize, usize, usize),
    (_, ow): (usize, usize),
    geo: ConvGeometry,
    row: usize,
    pixels: std::ops::Range<usize>,
    dst: &mut [MaybeUninit<f32>],
) {
    let ConvGeometry {
        kernel,
        stride,
        padding,
        dilation,
        ..
    } = geo;
    let taps = kernel.0 * kernel.1;
    let (ci, t) = (row / taps, row % taps);
    let (ky, kx) = (t / kernel.1, t % kernel.1);
    let src = &x[ci * h * w..(ci + 1) * h * w];
    // Outputs [lo, hi) of a row read inside the input row (ix = ox * stride + off); the rest is
    // padding.
    let off = (kx * dilation.1) as isize - padding.1 as isize;
    let lo = ((-off).max(0) as usize).div_ceil(stride.1).min(ow);
    let hi = ((w as isize - off).max(0) as usize).div_ceil(stride.1).clamp(lo, ow);
    let (p0, p1) = (pixels.start, pixels.end);
    let mut oy = p0 / ow;
    while oy * ow < p1 {
        // This output row's pixels [xa, xb) that are in the range, at dst[oy * ow + xa - p0..].
        let xa = p0.saturating_sub(oy * ow);
        let xb = (p1 - oy * ow).min(ow);
        let drow = &mut dst[oy * ow + xa - p0..oy * ow + xb - p0];
        let iy = (oy * stride.0 + ky * dilation.0) as isize - padding.0 as isize;
        oy += 1;
        if iy < 0 || iy >= h as isize {
            drow.fill(MaybeUninit::new(0.0));
            continue;
        }
        let srow = &src[iy as usize * w..(iy as usize + 1) * w];
        // Inside this row's range: padding [xa, lo), input [lo, hi), padding [hi, xb).
        let (l, r) = (lo.clamp(xa, xb), hi.clamp(xa, xb));
        drow[..l - xa].fill(MaybeUninit::new(0.0));
        drow[r - xa..].fill(MaybeUninit::new(0.0));
        if l == r {
            continue;
        }
        let first = (l * stride.1) as isize + off;
        let d = &mut drow[l - xa..r - xa];
        if stride.1 == 1 {
            for (d, &v) in d.iter_mut().zip(&srow[first as usize..]) {
                d.write(v);
            }
        } else {
            for (d, &v) in d.iter_mut().zip(srow[first as usize..].iter().step_by(stride.1)) {
                d.write(v);
            }
        }
    }
}

/// `weight` as `[out_features, x.len()]`.
pub(super) fn dense(x: &[f32], weight: &[f32], bias: Option<&[f32]>, out_features: usize) -> Vec<f32> {
    let n = x.len();
    let one = |o: usize| dot(&weight[o * n..(o + 1) * n], x) + bias.map_or(0.0, |b| b[o]);
    if out_features * n >= PAR_MIN * 4 {
        (0..out_features).into_par_iter().map(one).collect()
    } else {
        (0..out_features).map(one).collect()
    }
}

/// Dot product with eight independent accumulators, so the compiler can vectorize it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[allow(clippy::too_many_arguments)]
pub(super) fn pool(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    (oh, ow): (usize, usize),
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    is_max: bool,
) -> Vec<f32> {
    // Monomorphized on max/average so the inner loops are branch-free and vectorize.
    if is_max {
        pool_impl::<true>(x, (c, h, w), (oh, ow), kernel, stride, padding)
    } else {
        pool_impl::<false>(x, (c, h, w), (oh, ow), kernel, stride, padding)
    }
}

/// NaN wins a max (as in PyTorch): once `acc` is NaN, `v > acc` stays false.
#[inline(always)]
fn pool_combine<const MAX: bool>(acc: f32, v: f32) -> f32 {
    if !MAX {
        acc + v
    } else if v > acc || v.is_nan() {
        v
    } else {
        acc
    }
}

fn pool_impl<const MAX: bool>(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    (oh, ow): (usize, usize),
    kernel: Pair,
    stride: Pair,
    padding: Pair,
) -> Vec<f32> {
    let area = (kernel.0 * kernel.1) as f32;
    // Padding as values: -inf never wins a max, and average pooling counts the zero padding
    // (PyTorch's count_include_pad).
    let pad_value = if MAX { f32::NEG_INFINITY } else { 0.0 };
    let pw = (ow - 1) * stride.1 + kernel.1;
    let n = w.min(pw.saturating_sub(padding.1));
    // Per output row: reduce the window's input rows elementwise into a padded row, then reduce
    // each tap of the horizontal windows across all outputs at once (independent lanes, no
    // per-output dependency chain).
    let body = |row: &mut Vec<f32>, (ch, dst): (usize, &mut [MaybeUninit<f32>])| {
        dst.fill(MaybeUninit::new(pad_value));
        // SAFETY: initialized just above.
        let dst = unsafe { &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32]) };
        let src = &x[ch * h * w..(ch + 1) * h * w];
        row.resize(pw.max(w + padding.1), pad_value);
        for (oy, drow) in dst.chunks_exact_mut(ow).enumerate() {
            row.fill(pad_value);
            for ky in 0..kernel.0 {
                let iy = (oy * stride.0 + ky) as isize - padding.0 as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                let srow = &src[iy as usize * w..][..n];
                for (r, &v) in row[padding.1..padding.1 + n].iter_mut().zip(srow) {
                    *r = pool_combine::<MAX>(*r, v);
                }
            }
            drow.fill(pad_value);
            for kx in 0..kernel.1 {
                for (d, &v) in drow.iter_mut().zip(row[kx..].iter().step_by(stride.1)) {
                    *d = pool_combine::<MAX>(*d, v);
                }
            }
            if !MAX {
                drow.iter_mut().for_each(|d| *d /= area);
            }
        }
    };
    // SAFETY: every channel's chunk is filled (first with the padding value, then the results).
    unsafe {
        written(c * oh * ow, |out| {
            if x.len() >= PAR_MIN {
                out.par_chunks_mut(oh * ow).enumerate().for_each_init(Vec::new, body);
            } else {
                let mut row = Vec::new();
                out.chunks_mut(oh * ow).enumerate().for_each(|a| body(&mut row, a));
            }
        })
    }
}

//! The single-input inference engine: every layer's output for one input, on plain `Vec<f32>`
//! buffers, conv as im2col + `gemm` (the matrix kernel candle itself uses), everything else as
//! direct loops, parallel with rayon where a layer is big enough to pay for it.
//!
//! Why not candle here: `netwalk bench forward` measured candle's CPU path at 28x onnxruntime on a
//! ResNet-18 (16 cores) and 2.7x on the demo CNN, mostly per-op overhead and single-threaded
//! broadcasts. candle still does batches and training (autograd); both paths are checked against
//! onnxruntime by the reference tests.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::error::{ComputeContext, Result};
use super::forward::{Activations, batchnorm_affine};
use super::model::{Model, Op, Pair, Shape, Source};
use super::weights::Weights;
use super::winograd::Winograd;

/// Elements below which a loop stays on the calling thread (thread hand-offs cost more).
const PAR_MIN: usize = 1 << 15;
/// Multiply-adds below which gemm runs single-threaded.
const GEMM_PAR_MIN: usize = 1 << 20;

/// Per-layer parameters flattened once, so repeated forwards copy nothing.
#[derive(Debug, Clone, Default)]
struct Flat {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// Batchnorm folded to `x * scale + shift`.
    scale: Vec<f32>,
    shift: Vec<f32>,
    /// Set for the convolutions that run as Winograd F(4x4, 3x3) (see [`winograd_tile`]).
    winograd: Option<Winograd>,
}

/// Smallest input side that goes through Winograd F(4x4, 3x3). On ResNet-18 (Xeon, 2 threads) it
/// won at 56x56 (2.2 vs 3.2 ms) and 28x28 (1.6 vs 2.2 ms), tied at 14x14 and lost at 7x7 (5.4 vs
/// 1.6 ms): with few tiles the 36 products are thin and the 4x-larger transformed weights dominate.
const WINOGRAD_MIN_SIDE: usize = 24;

/// Smallest input side for Winograd F(2x2, 3x3) (below [`WINOGRAD_MIN_SIDE`]): at 14x14 it won
/// (1.1 vs 1.8 ms), at 7x7 it lost (2.35 vs 1.87 ms; 16 tiles, and the weights still grow 1.8x).
const WINOGRAD2_MIN_SIDE: usize = 8;

/// Winograd's output tile for this convolution (3x3, stride 1, padding 1, one group), if any.
fn winograd_tile(op: &Op, in_shape: Shape) -> Option<usize> {
    let w2min = WINOGRAD2_MIN_SIDE;
    match (op, in_shape) {
        (Op::Conv2d { kernel: (3, 3), stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 1, .. }, Shape::Chw(_, h, w)) => {
            let side = h.min(w);
            if side >= WINOGRAD_MIN_SIDE {
                Some(4)
            } else if side >= w2min {
                Some(2)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A model with its weights prepared for repeated single-input forward passes.
pub struct Engine<'m> {
    model: &'m Model,
    flat: Vec<Flat>,
}

fn to_vec(t: &candle_core::Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

impl<'m> Engine<'m> {
    pub fn new(model: &'m Model, weights: &Weights) -> Result<Engine<'m>> {
        keep_freed_memory();
        let mut flat = Vec::with_capacity(model.layers.len());
        for (layer, p) in model.layers.iter().zip(&weights.layers) {
            let mut f = Flat::default();
            let in_shape = model.source_shape(layer.inputs[0]);
            match layer.op {
                Op::Conv2d { .. } | Op::Dense { .. } => {
                    if let Some(w) = &p.weight {
                        f.weight = to_vec(w).in_layer(&layer.name)?;
                    }
                    f.bias = p.bias.as_ref().map(to_vec).transpose().in_layer(&layer.name)?;
                    if let (Op::Conv2d { out_channels, .. }, Shape::Chw(c, _, _)) = (&layer.op, in_shape) {
                        if let Some(tile) = winograd_tile(&layer.op, in_shape)
                            && f.weight.len() == out_channels * c * 9
                        {
                            f.winograd = Some(Winograd::new(&f.weight, *out_channels, c, tile));
                        }
                    }
                }
                Op::BatchNorm2d { eps } => {
                    let (scale, shift) =
                        batchnorm_affine(p, eps, layer.shape.channels()).in_layer(&layer.name)?;
                    f.scale = to_vec(&scale).in_layer(&layer.name)?;
                    f.shift = to_vec(&shift).in_layer(&layer.name)?;
                }
                _ => {}
            }
            flat.push(f);
        }
        Ok(Engine { model, flat })
    }

    /// Every layer's output for one raw (unnormalized) input.
    pub fn run(&self, raw: &[f32]) -> Activations {
        self.run_timed(raw, None)
    }

    /// [`Engine::run`], adding each layer's wall time in seconds to `times` (one slot per layer).
    pub fn run_timed(&self, raw: &[f32], mut times: Option<&mut Vec<f64>>) -> Activations {
        let model = self.model;
        let input = normalize(model, raw);
        let mut layers: Vec<Vec<f32>> = Vec::with_capacity(model.layers.len());
        for (li, layer) in model.layers.iter().enumerate() {
            let src = |s: Source| -> &[f32] {
                match s {
                    Source::Input => &input,
                    Source::Layer(i) => &layers[i],
                }
            };
            let x = src(layer.inputs[0]);
            let in_shape = model.source_shape(layer.inputs[0]);
            let f = &self.flat[li];
            let start = std::time::Instant::now();
            let y = match (&layer.op, in_shape, layer.shape) {
                (
                    Op::Conv2d { kernel, stride, padding, dilation, groups, .. },
                    Shape::Chw(c, h, w),
                    Shape::Chw(oc, oh, ow),
                ) => conv2d(x, (c, h, w), f, (oc, oh, ow), *kernel, *stride, *padding, *dilation, *groups),
                (Op::Dense { out_features }, _, _) => dense(x, f, *out_features),
                (Op::BatchNorm2d { .. }, Shape::Chw(c, h, w), _) => {
                    per_channel(x, c, h * w, |ch, v| v * f.scale[ch] + f.shift[ch])
                }
                (Op::MaxPool2d { kernel, stride, padding }, Shape::Chw(c, h, w), Shape::Chw(_, oh, ow)) => {
                    pool(x, (c, h, w), (oh, ow), *kernel, *stride, *padding, true)
                }
                (Op::AvgPool2d { kernel, stride, padding }, Shape::Chw(c, h, w), Shape::Chw(_, oh, ow)) => {
                    pool(x, (c, h, w), (oh, ow), *kernel, *stride, *padding, false)
                }
                (Op::GlobalAvgPool2d, Shape::Chw(_, h, w), _) => {
                    x.chunks_exact(h * w).map(|p| p.iter().sum::<f32>() / (h * w) as f32).collect()
                }
                (Op::Flatten, _, _) => x.to_vec(),
                // `v < 0` is false for NaN, so NaN passes through as in PyTorch.
                (Op::Relu, _, _) => map(x, |v| if v < 0.0 { 0.0 } else { v }),
                (Op::Sigmoid, _, _) => map(x, |v| 1.0 / (1.0 + (-v).exp())),
                (Op::Tanh, _, _) => map(x, f32::tanh),
                (Op::Softmax, s, _) => softmax(x, s),
                (Op::Add, _, _) if layer.inputs.len() == 2 => {
                    let y = src(layer.inputs[1]);
                    if x.len() >= PAR_MIN {
                        x.par_iter().zip(y).map(|(a, b)| a + b).collect()
                    } else {
                        x.iter().zip(y).map(|(a, b)| a + b).collect()
                    }
                }
                (Op::Add, _, _) => {
                    let mut acc = x.to_vec();
                    for &s in &layer.inputs[1..] {
                        add_into(&mut acc, src(s));
                    }
                    acc
                }
                (Op::Concat, _, _) => layer.inputs.iter().flat_map(|&s| src(s).iter().copied()).collect(),
                _ => unreachable!("shapes were validated when the model was loaded"),
            };
            debug_assert_eq!(y.len(), layer.shape.elements(), "layer {}", layer.name);
            if let Some(t) = times.as_deref_mut() {
                t.resize(model.layers.len(), 0.0);
                t[li] += start.elapsed().as_secs_f64();
            }
            layers.push(y);
        }
        Activations { input, layers }
    }
}

/// Keeps freed memory in the process instead of giving it back to the kernel. Each forward
/// allocates every layer's output afresh (the caller owns them) and frees the last forward's: with
/// glibc's defaults the freed ~30 MB of a ResNet-18 is unmapped and the next forward page-faults
/// it all back (about 5,600 faults per forward; 132 -> 93 ms median on the 2-core dev machine
/// with these settings). Process-wide, set once; memory use stays at the peak of one forward.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator tunables; both values are in range (the mmap
            // threshold's maximum is 32 MiB on 64-bit glibc).
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}

fn normalize(model: &Model, raw: &[f32]) -> Vec<f32> {
    let c = model.input.shape.channels();
    let per = raw.len() / c.max(1);
    per_channel(raw, c, per, |ch, v| (v - model.input.mean[ch]) / model.input.std[ch])
}

fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    if x.len() >= PAR_MIN {
        x.par_iter().map(|&v| f(v)).collect()
    } else {
        x.iter().map(|&v| f(v)).collect()
    }
}

fn per_channel(x: &[f32], c: usize, plane: usize, f: impl Fn(usize, f32) -> f32 + Sync) -> Vec<f32> {
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
                out.par_chunks_mut(plane).zip(x.par_chunks(plane)).enumerate().for_each(body);
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
unsafe fn written(n: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: all n elements were written (the caller's contract).
    unsafe { v.set_len(n) };
    v
}

fn add_into(acc: &mut [f32], x: &[f32]) {
    if acc.len() >= PAR_MIN {
        acc.par_iter_mut().zip(x).for_each(|(a, b)| *a += b);
    } else {
        acc.iter_mut().zip(x).for_each(|(a, b)| *a += b);
    }
}

fn softmax(x: &[f32], shape: Shape) -> Vec<f32> {
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

/// `dst[m, n] = lhs[m, k] * rhs[k, n]`, all row-major. Large products are cut into blocks of
/// rows or of columns (whichever dimension is longer), one single-threaded gemm per block on the
/// rayon pool.
fn matmul(dst: &mut [MaybeUninit<f32>], lhs: &[f32], rhs: &[f32], m: usize, n: usize, k: usize) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    let threads = rayon::current_num_threads();
    if m * n * k < GEMM_PAR_MIN || threads == 1 {
        // SAFETY: whole matrices, sizes asserted above.
        unsafe { gemm_block(dst.as_mut_ptr().cast(), lhs.as_ptr(), rhs.as_ptr(), m, n, k, n) };
        return;
    }
    let blocks = threads * 2;
    let (dst_p, lhs_p, rhs_p) = (SendPtr(dst.as_mut_ptr().cast()), SendPtr(lhs.as_ptr() as *mut f32), SendPtr(rhs.as_ptr() as *mut f32));
    if n >= m {
        let width = n.div_ceil(blocks).max(16);
        (0..n.div_ceil(width)).into_par_iter().for_each(|b| {
            let (c0, c1) = (b * width, ((b + 1) * width).min(n));
            // SAFETY: column block [c0, c1) of dst and rhs, inside the asserted sizes; blocks
            // write disjoint columns of dst.
            unsafe {
                gemm_block(dst_p.get().add(c0), lhs_p.get(), rhs_p.get().add(c0), m, c1 - c0, k, n)
            };
        });
    } else {
        let rows = m.div_ceil(blocks).max(8);
        (0..m.div_ceil(rows)).into_par_iter().for_each(|b| {
            let (r0, r1) = (b * rows, ((b + 1) * rows).min(m));
            // SAFETY: row block [r0, r1) of dst and lhs, inside the asserted sizes; blocks write
            // disjoint rows of dst.
            unsafe {
                gemm_block(dst_p.get().add(r0 * n), lhs_p.get().add(r0 * k), rhs_p.get(), r1 - r0, n, k, n)
            };
        });
    }
}

/// A raw pointer shared by the blocks of one matmul, which touch disjoint parts of it.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only inside `matmul`, whose blocks read shared inputs and write disjoint outputs.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// One single-threaded gemm on a block: `m x cols` of dst (row stride `ld`), `m x k` of lhs
/// (row stride `k`), `k x cols` of rhs (row stride `ld`).
///
/// # Safety
/// The pointers must address matrices of those shapes and strides, and dst must not alias.
unsafe fn gemm_block(dst: *mut f32, lhs: *const f32, rhs: *const f32, m: usize, cols: usize, k: usize, ld: usize) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m, cols, k,
            dst, 1, ld as isize,
            false,
            lhs, 1, k as isize,
            rhs, 1, ld as isize,
            0.0, 1.0,
            false, false, false,
            gemm::Parallelism::None,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn conv2d(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    f: &Flat,
    (oc, oh, ow): (usize, usize, usize),
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: usize,
) -> Vec<f32> {
    if let Some(wg) = &f.winograd {
        // SAFETY: Winograd::run writes every output element.
        return unsafe { written(oc * oh * ow, |out| wg.run(x, (h, w), f.bias.as_deref(), out)) };
    }
    let (cin_g, cout_g) = (c / groups, oc / groups);
    let k = cin_g * kernel.0 * kernel.1;
    let n = oh * ow;
    let pointwise = kernel == (1, 1) && stride == (1, 1) && padding == (0, 0);
    let mut col = Vec::new();
    let fill = |out: &mut [MaybeUninit<f32>]| {
        for g in 0..groups {
            let xg = &x[g * cin_g * h * w..(g + 1) * cin_g * h * w];
            let rhs: &[f32] = if pointwise {
                xg
            } else {
                if col.is_empty() {
                    // SAFETY: im2col writes every element of its k x n matrix.
                    col = unsafe {
                        written(k * n, |c| im2col(xg, (cin_g, h, w), (oh, ow), kernel, stride, padding, dilation, c))
                    };
                } else {
                    // SAFETY: an initialized slice seen as MaybeUninit, which im2col only writes
                    // (with initialized values).
                    let c = unsafe { &mut *(&mut col[..] as *mut [f32] as *mut [MaybeUninit<f32>]) };
                    im2col(xg, (cin_g, h, w), (oh, ow), kernel, stride, padding, dilation, c);
                }
                &col
            };
            let wg = &f.weight[g * cout_g * k..(g + 1) * cout_g * k];
            matmul(&mut out[g * cout_g * n..(g + 1) * cout_g * n], wg, rhs, cout_g, n, k);
        }
    };
    // SAFETY: the groups' products cover all of `out`, and gemm (not reading dst) writes each
    // element of its block.
    let mut out = unsafe { written(oc * n, fill) };
    if let Some(b) = &f.bias {
        let body = |(co, plane): (usize, &mut [f32])| plane.iter_mut().for_each(|v| *v += b[co]);
        if out.len() >= PAR_MIN {
            out.par_chunks_mut(n).enumerate().for_each(body);
        } else {
            out.chunks_mut(n).enumerate().for_each(body);
        }
    }
    out
}

/// Unfold input patches: row `(ci, ky, kx)` of `col` holds that tap for every output pixel.
#[allow(clippy::too_many_arguments)]
fn im2col(
    x: &[f32],
    (cin, h, w): (usize, usize, usize),
    (oh, ow): (usize, usize),
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    col: &mut [MaybeUninit<f32>],
) {
    let n = oh * ow;
    let taps = kernel.0 * kernel.1;
    let fill = |(row, dst): (usize, &mut [MaybeUninit<f32>])| {
        let (ci, t) = (row / taps, row % taps);
        let (ky, kx) = (t / kernel.1, t % kernel.1);
        let src = &x[ci * h * w..(ci + 1) * h * w];
        for oy in 0..oh {
            let iy = (oy * stride.0 + ky * dilation.0) as isize - padding.0 as isize;
            let drow = &mut dst[oy * ow..(oy + 1) * ow];
            if iy < 0 || iy >= h as isize {
                drow.fill(MaybeUninit::new(0.0));
                continue;
            }
            let srow = &src[iy as usize * w..(iy as usize + 1) * w];
            // Outputs [lo, hi) read inside the row (ix = ox * stride + off); the rest is padding.
            let off = (kx * dilation.1) as isize - padding.1 as isize;
            let lo = ((-off).max(0) as usize).div_ceil(stride.1).min(ow);
            let hi = ((w as isize - off).max(0) as usize).div_ceil(stride.1).clamp(lo, ow);
            drow[..lo].fill(MaybeUninit::new(0.0));
            drow[hi..].fill(MaybeUninit::new(0.0));
            let first = (lo * stride.1) as isize + off;
            if stride.1 == 1 {
                for (d, &v) in drow[lo..hi].iter_mut().zip(&srow[first as usize..]) {
                    d.write(v);
                }
            } else {
                for (d, &v) in drow[lo..hi].iter_mut().zip(srow[first as usize..].iter().step_by(stride.1)) {
                    d.write(v);
                }
            }
        }
    };
    let col = &mut col[..cin * taps * n];
    if col.len() >= PAR_MIN {
        col.par_chunks_mut(n).enumerate().for_each(fill);
    } else {
        col.chunks_mut(n).enumerate().for_each(fill);
    }
}

fn dense(x: &[f32], f: &Flat, out_features: usize) -> Vec<f32> {
    let n = x.len();
    let one = |o: usize| dot(&f.weight[o * n..(o + 1) * n], x) + f.bias.as_ref().map_or(0.0, |b| b[o]);
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
fn pool(
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
    let mut out = vec![0f32; c * oh * ow];
    let area = (kernel.0 * kernel.1) as f32;
    // Padding as values: -inf never wins a max, and average pooling counts the zero padding
    // (PyTorch's count_include_pad).
    let pad_value = if MAX { f32::NEG_INFINITY } else { 0.0 };
    let pw = (ow - 1) * stride.1 + kernel.1;
    let n = w.min(pw.saturating_sub(padding.1));
    // Per output row: reduce the window's input rows elementwise into a padded row, then reduce
    // each tap of the horizontal windows across all outputs at once (independent lanes, no
    // per-output dependency chain).
    let body = |row: &mut Vec<f32>, (ch, dst): (usize, &mut [f32])| {
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
    if x.len() >= PAR_MIN {
        out.par_chunks_mut(oh * ow).enumerate().for_each_init(Vec::new, body);
    } else {
        let mut row = Vec::new();
        out.chunks_mut(oh * ow).enumerate().for_each(|a| body(&mut row, a));
    }
    out
}

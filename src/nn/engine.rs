//! The single-input inference engine: every layer's output for one input, on plain `Vec<f32>`
//! buffers, conv as im2col + `gemm` (the matrix kernel candle itself uses) or Winograd, everything
//! else as direct loops, parallel with rayon where a layer is big enough to pay for it. This file
//! plans (parameters flattened, layers fused) and runs; the loops are in [`super::kernels`].
//!
//! Why not candle here: `netwalk bench forward` measured candle's CPU path at 28x onnxruntime on a
//! ResNet-18 (16 cores) and 2.7x on the demo CNN, mostly per-op overhead and single-threaded
//! broadcasts. candle still does batches and training (autograd); both paths are checked against
//! onnxruntime by the reference tests.

use super::activation;
use super::binary;
use super::error::{ComputeContext, Result};
use super::grouped;
use super::kernels::{self, ConvGeometry, OutPtr, Post, written};
use super::kernels_extra;
use super::model::{Model, Op, Shape, Source};
use super::pool;
use super::resample;
use super::weights::{Weights, batchnorm_affine};
use super::winograd::Winograd;

/// Every layer's output for one input, without batch dimension, row-major.
#[derive(Debug, Clone)]
pub struct Activations {
    /// The normalized input, as the first layer sees it.
    pub input: Vec<f32>,
    /// One entry per model layer. Conv/dense outputs are the pre-activation values (the following
    /// relu/sigmoid/... layer holds the post-activation ones).
    pub layers: Vec<Vec<f32>>,
}

impl Activations {
    pub fn source(&self, src: Source) -> &[f32] {
        match src {
            Source::Input => &self.input,
            Source::Layer(i) => &self.layers[i],
        }
    }
}

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
        (
            Op::Conv2d {
                kernel: (3, 3),
                stride: (1, 1),
                padding: (1, 1),
                dilation: (1, 1),
                groups: 1,
                ..
            },
            Shape::Chw(_, h, w),
        ) => {
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
    fused: Vec<Fused>,
}

/// Layers computed together with the one before them, in the pass that writes its output (each
/// still gets its own output). Every layer's output is kept, so this saves passes over memory and
/// parallel sections, not buffers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum Fused {
    #[default]
    None,
    /// A convolution followed by a batchnorm and/or a relu reading it (see [`Post`]).
    Conv { bn: bool, relu: bool },
    /// A two-input add followed by a relu reading it.
    AddRelu,
}

/// Which layers [`Engine::run`] computes together (see [`Fused`]), per layer.
fn fusion_plan(model: &Model) -> Vec<Fused> {
    let layers = &model.layers;
    let reads_only = |j: usize, i: usize| layers.get(j).is_some_and(|l| l.inputs == [Source::Layer(i)]);
    let is = |j: usize, f: fn(&Op) -> bool| layers.get(j).is_some_and(|l| f(&l.op));
    let mut plan = vec![Fused::None; layers.len()];
    for (i, layer) in layers.iter().enumerate() {
        match (&layer.op, layer.shape) {
            (Op::Conv2d { .. }, Shape::Chw(..)) => {
                let bn = is(i + 1, |o| matches!(o, Op::BatchNorm2d { .. })) && reads_only(i + 1, i);
                let r = i + 1 + usize::from(bn);
                let relu = is(r, |o| matches!(o, Op::Relu)) && reads_only(r, r - 1);
                plan[i] = Fused::Conv { bn, relu };
            }
            (Op::Add, _)
                if layer.inputs.len() == 2
                    && layer.inputs.iter().all(|&s| model.source_shape(s) == layer.shape)
                    && is(i + 1, |o| matches!(o, Op::Relu))
                    && reads_only(i + 1, i) =>
            {
                plan[i] = Fused::AddRelu;
            }
            _ => {}
        }
    }
    plan
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
                Op::Conv2d { .. } | Op::Dense { .. } | Op::ConvTranspose2d { .. } => {
                    if let Some(w) = &p.weight {
                        f.weight = to_vec(w).in_layer(&layer.name)?;
                    }
                    f.bias = p.bias.as_ref().map(to_vec).transpose().in_layer(&layer.name)?;
                    if let (Op::Conv2d { out_channels, .. }, Shape::Chw(c, _, _)) = (&layer.op, in_shape)
                        && let Some(tile) = winograd_tile(&layer.op, in_shape)
                        && f.weight.len() == out_channels * c * 9
                    {
                        f.winograd = Some(Winograd::new(&f.weight, *out_channels, c, tile));
                    }
                }
                Op::PRelu | Op::Add | Op::Sub | Op::Mul | Op::Div | Op::LayerNorm { .. } => {
                    if let Some(w) = &p.weight {
                        f.weight = to_vec(w).in_layer(&layer.name)?;
                    }
                    f.bias = p.bias.as_ref().map(to_vec).transpose().in_layer(&layer.name)?;
                }
                Op::BatchNorm2d { eps } => {
                    let (scale, shift) = batchnorm_affine(p, eps, layer.shape.channels()).in_layer(&layer.name)?;
                    f.scale = to_vec(&scale).in_layer(&layer.name)?;
                    f.shift = to_vec(&shift).in_layer(&layer.name)?;
                }
                _ => {}
            }
            flat.push(f);
        }
        Ok(Engine {
            model,
            flat,
            fused: fusion_plan(model),
        })
    }

    /// Every layer's output for one raw (unnormalized) input.
    pub fn run(&self, raw: &[f32]) -> Activations {
        self.run_timed(raw, None)
    }

    /// [`Engine::run`], adding each layer's wall time in seconds to `times` (one slot per layer).
    // Long: one match arm per op over the same local buffers (`input`, `layers`, `extra`), so the
    // fused groups' bookkeeping stays in one place.
    pub fn run_timed(&self, raw: &[f32], mut times: Option<&mut Vec<f64>>) -> Activations {
        let model = self.model;
        let input = normalize(model, raw);
        let mut layers: Vec<Vec<f32>> = Vec::with_capacity(model.layers.len());
        let mut li = 0;
        while li < model.layers.len() {
            let layer = &model.layers[li];
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
            // Outputs of the layers fused into this one (see `Fused`), pushed after its own.
            let mut extra: Vec<Vec<f32>> = Vec::new();
            let y = match (&layer.op, in_shape, layer.shape) {
                (
                    Op::Conv2d {
                        kernel,
                        stride,
                        padding,
                        dilation,
                        groups,
                        ..
                    },
                    Shape::Chw(c, h, w),
                    Shape::Chw(oc, oh, ow),
                ) => {
                    let (bn, relu) = match self.fused[li] {
                        Fused::Conv { bn, relu } => (bn, relu),
                        _ => (false, false),
                    };
                    let n = oc * oh * ow;
                    let mut bn_out = Vec::with_capacity(if bn { n } else { 0 });
                    let mut relu_out = Vec::with_capacity(if relu { n } else { 0 });
                    let post = Post {
                        bias: f.bias.as_deref(),
                        bn: bn.then(|| {
                            let fb = &self.flat[li + 1];
                            (&fb.scale[..], &fb.shift[..], OutPtr(bn_out.as_mut_ptr()))
                        }),
                        relu: relu.then_some(OutPtr(relu_out.as_mut_ptr())),
                    };
                    let geometry = ConvGeometry {
                        kernel: *kernel,
                        stride: *stride,
                        padding: *padding,
                        dilation: *dilation,
                        groups: *groups,
                    };
                    // SAFETY: conv2d writes every element of its output and of post's.
                    let y = unsafe {
                        written(n, |out| match &f.winograd {
                            Some(wg) => wg.run(x, (h, w), &post, out),
                            None if geometry.groups > 1 => {
                                grouped::conv2d_grouped(x, (c, h, w), &f.weight, (oc, oh, ow), geometry, &post, out)
                            }
                            None => kernels::conv2d(x, (c, h, w), &f.weight, (oc, oh, ow), geometry, &post, out),
                        })
                    };
                    // SAFETY: as above; each has capacity n.
                    unsafe {
                        if bn {
                            bn_out.set_len(n);
                            extra.push(bn_out);
                        }
                        if relu {
                            relu_out.set_len(n);
                            extra.push(relu_out);
                        }
                    }
                    y
                }
                (Op::Dense { out_features }, _, _) => kernels::dense(x, &f.weight, f.bias.as_deref(), *out_features),
                (Op::BatchNorm2d { .. }, Shape::Chw(c, h, w), _) => {
                    kernels::per_channel(x, c, h * w, |ch, v| v * f.scale[ch] + f.shift[ch])
                }
                (
                    Op::MaxPool2d {
                        kernel,
                        stride,
                        padding,
                        ..
                    },
                    Shape::Chw(c, h, w),
                    Shape::Chw(_, oh, ow),
                ) if pool::is_plain(&layer.op) => {
                    kernels::pool(x, (c, h, w), (oh, ow), *kernel, *stride, *padding, true)
                }
                (
                    Op::AvgPool2d {
                        kernel,
                        stride,
                        padding,
                        ..
                    },
                    Shape::Chw(c, h, w),
                    Shape::Chw(_, oh, ow),
                ) if pool::is_plain(&layer.op) => {
                    kernels::pool(x, (c, h, w), (oh, ow), *kernel, *stride, *padding, false)
                }
                (op, Shape::Chw(c, h, w), Shape::Chw(_, oh, ow))
                    if let Some((rows, cols)) = pool::windows(op, (h, w), (oh, ow)) =>
                {
                    pool::pool_windows(x, (c, h, w), &rows, &cols, matches!(op, Op::MaxPool2d { .. }))
                }
                (Op::GlobalAvgPool2d, Shape::Chw(_, h, w), _) => x
                    .chunks_exact(h * w)
                    .map(|p| p.iter().sum::<f32>() / (h * w) as f32)
                    .collect(),
                (Op::Flatten, _, _) => x.to_vec(),
                (op, _, _) if let Some(y) = activation::apply(op, x) => y,
                (Op::Softmax, s, _) => kernels::softmax(x, s),
                (Op::Add, _, _) if self.fused[li] == Fused::AddRelu => {
                    let (sum, relu) = kernels::add_relu(x, src(layer.inputs[1]));
                    extra.push(relu);
                    sum
                }
                _ if let Some(y) = self.run_cnn_op(li, x, (&input, &layers)) => y,
                (Op::Concat, _, _) => {
                    let parts: Vec<&[f32]> = layer.inputs.iter().map(|&s| src(s)).collect();
                    kernels::concat(&parts)
                }
                _ => unreachable!("shapes were validated when the model was loaded"),
            };
            debug_assert_eq!(y.len(), layer.shape.elements(), "layer {}", layer.name);
            // A fused group's time goes to its first layer.
            if let Some(t) = times.as_deref_mut() {
                t.resize(model.layers.len(), 0.0);
                t[li] += start.elapsed().as_secs_f64();
            }
            layers.push(y);
            li += 1;
            for e in extra {
                debug_assert_eq!(
                    e.len(),
                    model.layers[li].shape.elements(),
                    "layer {}",
                    model.layers[li].name
                );
                layers.push(e);
                li += 1;
            }
        }
        Activations { input, layers }
    }

    /// The ops real CNNs add to the plain conv stack (see [`kernels_extra`]), for layer `li` reading
    /// `x` first; `None` for the other ops.
    fn run_cnn_op(&self, li: usize, x: &[f32], (input, layers): (&[f32], &[Vec<f32>])) -> Option<Vec<f32>> {
        let model = self.model;
        let layer = &model.layers[li];
        let f = &self.flat[li];
        let src = |s: Source| -> &[f32] {
            match s {
                Source::Input => input,
                Source::Layer(i) => &layers[i],
            }
        };
        let in_shape = model.source_shape(layer.inputs[0]);
        Some(match (&layer.op, in_shape, layer.shape) {
            (Op::PRelu, s, _) => {
                let c = s.channels();
                kernels::per_channel(
                    x,
                    c,
                    s.elements() / c,
                    |ch, v| if v >= 0.0 { v } else { f.weight[ch] * v },
                )
            }
            (op, _, _) if let Some(func) = binary::function(op) => {
                let mut operands: Vec<(&[f32], binary::Dims3)> = layer
                    .inputs
                    .iter()
                    .map(|&s| (src(s), binary::shape_dims3(model.source_shape(s))))
                    .collect();
                if let Some(d) = binary::constant_dims(layer) {
                    operands.push((&f.weight, d));
                }
                binary::fold(func, &operands, binary::shape_dims3(layer.shape))
            }
            (Op::ChannelShuffle { groups }, Shape::Chw(c, h, w), _) => {
                kernels_extra::channel_shuffle(x, c, h * w, *groups)
            }
            (Op::Slice { start, end }, s, _) => {
                let plane = s.elements() / s.channels();
                x[start * plane..end * plane].to_vec()
            }
            (Op::LayerNorm { eps }, s, _) => {
                let c = s.channels();
                let bias = f.bias.as_deref().unwrap_or_default();
                kernels_extra::layernorm(x, c, s.elements() / c, *eps, &f.weight, bias)
            }
            (Op::Pad { padding, value }, Shape::Chw(c, h, w), _) => kernels_extra::pad(x, (c, h, w), *padding, *value),
            (
                Op::Upsample {
                    bilinear,
                    align_corners,
                },
                Shape::Chw(c, h, w),
                Shape::Chw(_, oh, ow),
            ) => {
                let rows = resample::taps(h, oh, *bilinear, *align_corners);
                let cols = resample::taps(w, ow, *bilinear, *align_corners);
                resample::run(x, (c, h, w), &rows, &cols)
            }
            (
                Op::ConvTranspose2d {
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                    ..
                },
                Shape::Chw(c, h, w),
                Shape::Chw(oc, oh, ow),
            ) => {
                let g = kernels_extra::TransposeGeometry {
                    kernel: *kernel,
                    stride: *stride,
                    padding: *padding,
                    dilation: *dilation,
                    groups: *groups,
                };
                kernels_extra::conv_transpose2d(x, (c, h, w), &f.weight, f.bias.as_deref(), (oc, oh, ow), g)
            }
            _ => return None,
        })
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
    kernels::per_channel(raw, c, per, |ch, v| (v - model.input.mean[ch]) / model.input.std[ch])
}

//! The neuron query and receptive field of the ops real CNNs add to the plain conv stack
//! (broadcasting binary ops, prelu, ...), beside [`super::query`]'s, which calls these.

use super::binary::{self, Dims3};
use super::engine::Activations;
use super::model::{Layer, Model, Op, Shape, Source};
use super::query_types::{NeuronInput, Region};
use super::resample;

/// Whether these functions explain `op` (exhaustive, so a new op is placed here or there).
pub(super) fn handles(op: &Op) -> bool {
    match op {
        Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Div
        | Op::PRelu
        | Op::ChannelShuffle { .. }
        | Op::Slice { .. }
        | Op::LayerNorm { .. }
        | Op::Pad { .. }
        | Op::Upsample { .. }
        | Op::ConvTranspose2d { .. } => true,
        Op::Conv2d { .. }
        | Op::Dense { .. }
        | Op::BatchNorm2d { .. }
        | Op::MaxPool2d { .. }
        | Op::AvgPool2d { .. }
        | Op::AdaptiveAvgPool2d { .. }
        | Op::GlobalAvgPool2d
        | Op::Flatten
        | Op::Relu
        | Op::Sigmoid
        | Op::Tanh
        | Op::Relu6
        | Op::Clip { .. }
        | Op::Hardswish
        | Op::Hardsigmoid
        | Op::Silu
        | Op::Gelu { .. }
        | Op::LeakyRelu { .. }
        | Op::Elu { .. }
        | Op::Softmax
        | Op::Concat => false,
    }
}

/// What [`super::query::neuron`] reports for one neuron of these ops.
#[derive(Debug, Default)]
pub(super) struct Explained {
    pub inputs: Vec<NeuronInput>,
    pub bias: Option<f32>,
    pub pre_activation: Option<f32>,
}

impl Explained {
    fn push(&mut self, model: &Model, acts: &Activations, source: Source, off: usize, weight: Option<f32>) {
        let activation = acts.source(source)[off];
        self.inputs.push(NeuronInput {
            source,
            index: model.source_shape(source).index_of(off),
            weight,
            activation,
            contribution: weight.map(|w| w * activation),
        });
    }
}

/// The inputs of neuron `off` of `layer`, whose parameters (flattened) are `weight` and `bias`.
/// Binary ops: add/sub list every input with weight 1 (sub: -1 for the second), the constant as
/// the bias (sub: negated); mul/div by a constant list the input with the constant as its weight
/// (div: its inverse); mul/div of two inputs list both factors, without weights. Prelu: its input,
/// as an activation. Shuffle, slice, pad: the one input copied (weight 1); a pad's border cell has
/// none, its value as the bias. Upsample: the (up to 4) input cells with their interpolation
/// weights. Transposed conv: the input cells and taps that reach it, and the bias.
pub(super) fn neuron(
    model: &Model,
    layer: &Layer,
    acts: &Activations,
    (off, value): (usize, f32),
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
) -> Explained {
    let mut e = Explained::default();
    let out = binary::shape_dims3(layer.shape);
    let at = binary::index3(out, off);
    let src0 = layer.inputs[0];
    match &layer.op {
        op if op.is_binary() => {
            for (k, &s) in layer.inputs.iter().enumerate() {
                let o = binary::source_offset(binary::shape_dims3(model.source_shape(s)), at);
                let w = match op {
                    Op::Sub if k == 1 => Some(-1.0),
                    Op::Add | Op::Sub => Some(1.0),
                    // Factors: a constant's weight is set below.
                    _ => None,
                };
                e.push(model, acts, s, o, w);
            }
            if let (Some(d), Some(wv)) = (binary::constant_dims(layer), weight) {
                let c = wv[binary::source_offset(d, at)];
                match op {
                    Op::Add => e.bias = Some(c),
                    Op::Sub => e.bias = Some(-c),
                    _ => {
                        let w = if matches!(op, Op::Mul) { c } else { 1.0 / c };
                        let first = &mut e.inputs[0];
                        first.weight = Some(w);
                        first.contribution = Some(w * first.activation);
                    }
                }
            }
        }
        Op::PRelu => {
            e.push(model, acts, src0, off, None);
            e.pre_activation = Some(acts.source(src0)[off]);
        }
        Op::ChannelShuffle { groups } => {
            let (c, plane) = (layer.shape.channels(), layer.shape.elements() / layer.shape.channels());
            let ic = (at[0] % groups) * (c / groups) + at[0] / groups;
            e.push(model, acts, src0, ic * plane + off % plane, Some(1.0));
        }
        Op::Slice { start, .. } => {
            let plane = layer.shape.elements() / layer.shape.channels();
            e.push(model, acts, src0, off + start * plane, Some(1.0));
        }
        Op::LayerNorm { eps } => layernorm(model, layer, acts, off, *eps, weight, bias, &mut e),
        Op::Pad { padding, value } => {
            let Shape::Chw(_, h, w) = model.source_shape(src0) else {
                unreachable!("validated pad shapes")
            };
            let (y, x) = (at[1].checked_sub(padding[0]), at[2].checked_sub(padding[1]));
            match (y, x) {
                (Some(y), Some(x)) if y < h && x < w => e.push(model, acts, src0, (at[0] * h + y) * w + x, Some(1.0)),
                _ => e.bias = Some(*value),
            }
        }
        Op::Upsample {
            bilinear,
            align_corners,
        } => {
            let Shape::Chw(_, h, w) = model.source_shape(src0) else {
                unreachable!("validated upsample shapes")
            };
            let (oh, ow) = (out[1], out[2]);
            let r = resample::taps(h, oh, *bilinear, *align_corners)[at[1]];
            let q = resample::taps(w, ow, *bilinear, *align_corners)[at[2]];
            for (y, wy) in resample::cells(r) {
                for (x, wx) in resample::cells(q) {
                    e.push(model, acts, src0, (at[0] * h + y) * w + x, Some(wy * wx));
                }
            }
        }
        Op::ConvTranspose2d { .. } => {
            conv_transpose2d(model, layer, acts, at, weight, bias, &mut e);
            e.pre_activation = Some(value);
        }
        op => unreachable!("{} is not one of query_extra's ops", op.name()),
    }
    e
}

/// A transposed convolution's neuron: every input cell and kernel tap that lands on it (input
/// `iy` reaches output `iy * stride + ky * dilation - padding`), with the tap's weight; the bias.
fn conv_transpose2d(
    model: &Model,
    layer: &Layer,
    acts: &Activations,
    [o, y, x]: Dims3,
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    e: &mut Explained,
) {
    let Op::ConvTranspose2d {
        out_channels,
        kernel: (kh, kw),
        stride,
        padding,
        dilation,
        groups,
        ..
    } = layer.op
    else {
        unreachable!("a conv_transpose2d")
    };
    let src0 = layer.inputs[0];
    let Shape::Chw(c, h, w) = model.source_shape(src0) else {
        unreachable!("validated conv_transpose2d shapes")
    };
    let wv = weight.unwrap_or_default();
    let (cin_g, cout_g) = (c / groups, out_channels / groups);
    // The input cell a tap comes from, if one does.
    let from = |out: usize, k: usize, s: usize, d: usize, p: usize, n: usize| {
        let t = (out + p).checked_sub(k * d)?;
        (t % s == 0 && t / s < n).then_some(t / s)
    };
    for ic in (o / cout_g) * cin_g..(o / cout_g + 1) * cin_g {
        for ky in 0..kh {
            let Some(iy) = from(y, ky, stride.0, dilation.0, padding.0, h) else {
                continue;
            };
            for kx in 0..kw {
                let Some(ix) = from(x, kx, stride.1, dilation.1, padding.1, w) else {
                    continue;
                };
                let wt = wv[((ic * cout_g + o % cout_g) * kh + ky) * kw + kx];
                e.push(model, acts, src0, (ic * h + iy) * w + ix, Some(wt));
            }
        }
    }
    e.bias = Some(bias.map_or(0.0, |b| b[o]));
}

/// A layer norm's neuron as `x * weight / sigma + (bias - mean * weight / sigma)`: its own input
/// first, weighted, with that bias, then the other channels at its position (which set the mean
/// and sigma), without weights.
#[allow(clippy::too_many_arguments)]
fn layernorm(
    model: &Model,
    layer: &Layer,
    acts: &Activations,
    off: usize,
    eps: f32,
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    e: &mut Explained,
) {
    let src0 = layer.inputs[0];
    let x = acts.source(src0);
    let c = layer.shape.channels();
    let plane = layer.shape.elements() / c;
    let (ch, pos) = (off / plane, off % plane);
    let mean = (0..c).map(|k| x[k * plane + pos]).sum::<f32>() / c as f32;
    let var = (0..c).map(|k| (x[k * plane + pos] - mean).powi(2)).sum::<f32>() / c as f32;
    let inv = 1.0 / (var + eps).sqrt();
    let (w, b) = (weight.map_or(1.0, |w| w[ch]), bias.map_or(0.0, |b| b[ch]));
    e.push(model, acts, src0, off, Some(w * inv));
    for k in (0..c).filter(|&k| k != ch) {
        e.push(model, acts, src0, k * plane + pos, None);
    }
    e.bias = Some(b - mean * w * inv);
    e.pre_activation = Some((x[off] - mean) * inv);
}

/// The receptive field, in each direct input, of `region` of `layer`'s output.
pub(super) fn field(model: &Model, layer: &Layer, region: &Region) -> Vec<(Source, Region)> {
    match &layer.op {
        op if op.is_binary() => layer
            .inputs
            .iter()
            .map(|&s| (s, broadcast_region(region, model.source_shape(s))))
            .collect(),
        Op::ChannelShuffle { groups } => {
            let per = layer.shape.channels() / groups;
            let shuffle = |c: usize| (c % groups) * per + c / groups;
            vec![(layer.inputs[0], map_channels(region, shuffle))]
        }
        Op::Slice { start, .. } => vec![(layer.inputs[0], map_channels(region, |c| c + start))],
        // Every channel (feature) at the region's positions.
        Op::LayerNorm { .. } => {
            let all = match region {
                Region::Map { y, x, .. } => Region::Map {
                    channels: (0..layer.shape.channels()).collect(),
                    y: *y,
                    x: *x,
                },
                Region::Flat(_) => Region::Flat((0..layer.shape.channels()).collect()),
            };
            vec![(layer.inputs[0], all)]
        }
        Op::Pad { .. } | Op::Upsample { .. } | Op::ConvTranspose2d { .. } => {
            let src0 = layer.inputs[0];
            map_field(layer, model.source_shape(src0), region)
                .map(|r| vec![(src0, r)])
                .unwrap_or_default()
        }
        _ => layer.inputs.iter().map(|&s| (s, region.clone())).collect(),
    }
}

/// The input box a pad, upsample or transposed conv reads for the box `region` of its output;
/// `None` where it reads nothing (a pad's border, a transposed conv's cells no tap reaches).
fn map_field(layer: &Layer, input: Shape, region: &Region) -> Option<Region> {
    let (Shape::Chw(c, h, w), Region::Map { channels, y, x }) = (input, region) else {
        return None;
    };
    // An inclusive range, `None` when empty.
    let range = |lo: usize, hi: usize| (lo <= hi).then_some((lo, hi));
    let (channels, y, x) = match layer.op {
        Op::Pad {
            padding: [t, l, ..], ..
        } => {
            let axis = |(a, b): (usize, usize), before: usize, n: usize| {
                range(a.max(before) - before, b.checked_sub(before)?.min(n - 1))
            };
            (channels.clone(), axis(*y, t, h)?, axis(*x, l, w)?)
        }
        Op::Upsample {
            bilinear,
            align_corners,
        } => {
            let Shape::Chw(_, oh, ow) = layer.shape else {
                return None;
            };
            let rows = resample::taps(h, oh, bilinear, align_corners);
            let cols = resample::taps(w, ow, bilinear, align_corners);
            let span = |(a, b): (usize, usize), t: &[resample::Tap]| (t[a].i0, t[b].i1);
            (channels.clone(), span(*y, &rows), span(*x, &cols))
        }
        Op::ConvTranspose2d {
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            ..
        } => {
            // Output o reads inputs i with o + p - d * (k - 1) <= i * s <= o + p.
            let axis = |(a, b): (usize, usize), k: usize, s: usize, p: usize, d: usize, n: usize| {
                let lo = (a + p).saturating_sub(d * (k - 1)).div_ceil(s);
                range(lo, ((b + p) / s).min(n - 1))
            };
            let (cin_g, cout_g) = (c / groups, out_channels / groups);
            let chans = channels
                .iter()
                .map(|o| o / cout_g)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .flat_map(|g| g * cin_g..(g + 1) * cin_g)
                .collect();
            (
                chans,
                axis(*y, kernel.0, stride.0, padding.0, dilation.0, h)?,
                axis(*x, kernel.1, stride.1, padding.1, dilation.1, w)?,
            )
        }
        _ => return None,
    };
    Some(Region::Map { channels, y, x })
}

/// `region` with its channels (of a vector: its indices) mapped by `f`.
fn map_channels(region: &Region, f: impl Fn(usize) -> usize) -> Region {
    match region {
        Region::Map { channels, y, x } => Region::Map {
            channels: channels.iter().map(|&c| f(c)).collect(),
            y: *y,
            x: *x,
        },
        Region::Flat(ids) => Region::Flat(ids.iter().map(|&i| f(i)).collect()),
    }
}

/// The cells of an input of shape `shape` that a broadcast op reads for `region` of its output:
/// the same, with an axis of 1 collapsed to its one cell.
fn broadcast_region(region: &Region, shape: Shape) -> Region {
    let d: Dims3 = binary::shape_dims3(shape);
    let axis = |n: usize, r: (usize, usize)| if n == 1 { (0, 0) } else { r };
    match region {
        Region::Map { channels, y, x } => Region::Map {
            channels: if d[0] == 1 { [0].into() } else { channels.clone() },
            y: axis(d[1], *y),
            x: axis(d[2], *x),
        },
        Region::Flat(ids) => Region::Flat(if d[0] == 1 { [0].into() } else { ids.clone() }),
    }
}

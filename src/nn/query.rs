//! "What made this neuron": its value, pre-activation, bias and every input with weight and
//! contribution; and its receptive field in every earlier layer down to the input.

use std::collections::BTreeSet;

use super::engine::Activations;
use super::error::{NnError, Result};
use super::model::{Layer, Model, Op, Shape, Source};
use super::pool;
use super::query_extra;
pub use super::query_types::{NeuronInput, Region};
use super::weights::Weights;
use super::weights::batchnorm_affine;

#[derive(Debug, Clone, PartialEq)]
pub struct NeuronInfo {
    pub layer: usize,
    pub index: Vec<usize>,
    pub value: f32,
    /// The value before the layer's nonlinearity: the conv/dense sum itself for conv/dense, the
    /// input for elementwise activations.
    pub pre_activation: Option<f32>,
    pub bias: Option<f32>,
    /// Sorted by |contribution| (largest first) where contributions exist, else in input order.
    pub inputs: Vec<NeuronInput>,
}

fn qerr(model: &Model, layer: &Layer, msg: String) -> NnError {
    NnError::layer(&model.path, &layer.name, msg)
}

/// Query one neuron of `layer_idx`.
// Long: one match arm per op, kept side by side (as in `receptive_field`) so each op's
// explanation reads against the others and all share the `push`/`vals` closures.
pub fn neuron(
    model: &Model,
    weights: &Weights,
    acts: &Activations,
    layer_idx: usize,
    index: &[usize],
) -> Result<NeuronInfo> {
    let layer = model
        .layers
        .get(layer_idx)
        .ok_or_else(|| NnError::Usage(format!("no layer {layer_idx}")))?;
    let off = layer.shape.offset(index).ok_or_else(|| {
        qerr(
            model,
            layer,
            format!("neuron {index:?} is outside the layer's shape {}", layer.shape),
        )
    })?;
    let value = acts.layers[layer_idx][off];
    let params = &weights.layers[layer_idx];
    let vals = |t: &Option<candle_core::Tensor>| -> Result<Option<Vec<f32>>> {
        t.as_ref()
            .map(|t| t.flatten_all().and_then(|t| t.to_vec1::<f32>()))
            .transpose()
            .map_err(|e| qerr(model, layer, e.to_string()))
    };
    let src0 = layer.inputs[0];
    let in_shape = model.source_shape(src0);
    let in_act = acts.source(src0);
    let mut bias = None;
    let mut pre_activation = None;
    let mut inputs = Vec::new();
    let mut push = |source: Source, shape: Shape, off: usize, weight: Option<f32>, act: &[f32]| {
        let activation = act[off];
        inputs.push(NeuronInput {
            source,
            index: shape.index_of(off),
            weight,
            activation,
            contribution: weight.map(|w| w * activation),
        });
    };
    match &layer.op {
        Op::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
        } => {
            let (Shape::Chw(cin, h, w), [co, y, x]) = (in_shape, index) else {
                unreachable!("validated conv shapes")
            };
            let wv = vals(&params.weight)?.unwrap_or_default();
            let cin_g = cin / groups;
            let g = co / (out_channels / groups);
            for ci in 0..cin_g {
                for ky in 0..kernel.0 {
                    let iy = (y * stride.0 + ky * dilation.0) as isize - padding.0 as isize;
                    for kx in 0..kernel.1 {
                        let ix = (x * stride.1 + kx * dilation.1) as isize - padding.1 as isize;
                        if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                            continue; // zero padding contributes nothing
                        }
                        let c = g * cin_g + ci;
                        let wt = wv[((co * cin_g + ci) * kernel.0 + ky) * kernel.1 + kx];
                        push(
                            src0,
                            in_shape,
                            (c * h + iy as usize) * w + ix as usize,
                            Some(wt),
                            in_act,
                        );
                    }
                }
            }
            bias = Some(vals(&params.bias)?.map_or(0.0, |b| b[*co]));
            pre_activation = Some(value);
        }
        Op::Dense { .. } => {
            let n = in_shape.elements();
            let o = index[0];
            let wv = vals(&params.weight)?.unwrap_or_default();
            for i in 0..n {
                push(src0, in_shape, i, Some(wv[o * n + i]), in_act);
            }
            bias = Some(vals(&params.bias)?.map_or(0.0, |b| b[o]));
            pre_activation = Some(value);
        }
        Op::BatchNorm2d { eps } => {
            let (scale, shift) =
                batchnorm_affine(params, *eps, in_shape.channels()).map_err(|e| qerr(model, layer, e.to_string()))?;
            let (scale, shift) = (
                vals(&Some(scale))?.unwrap_or_default(),
                vals(&Some(shift))?.unwrap_or_default(),
            );
            let c = index[0];
            push(src0, in_shape, off, Some(scale[c]), in_act);
            bias = Some(shift[c]);
            pre_activation = Some(value);
        }
        Op::MaxPool2d { .. } | Op::AvgPool2d { .. } | Op::AdaptiveAvgPool2d { .. } => {
            let (Shape::Chw(_, h, w), Shape::Chw(_, oh, ow), [c, y, x]) = (in_shape, layer.shape, index) else {
                unreachable!("validated pool shapes")
            };
            let (rows, cols) = pool::windows(&layer.op, (h, w), (oh, ow)).expect("a pooling op");
            let (r, q) = (rows[*y], cols[*x]);
            let is_max = matches!(layer.op, Op::MaxPool2d { .. });
            let avg_w = 1.0 / (r.div * q.div) as f32;
            let window: Vec<usize> = (r.lo..r.hi)
                .flat_map(|iy| (q.lo..q.hi).map(move |ix| (c * h + iy) * w + ix))
                .collect();
            // The max pool's winner: the first window element equal to the output.
            let winner = window.iter().position(|&o| in_act[o] == value);
            for (k, &o) in window.iter().enumerate() {
                let wt = if is_max {
                    if Some(k) == winner { 1.0 } else { 0.0 }
                } else {
                    avg_w
                };
                push(src0, in_shape, o, Some(wt), in_act);
            }
        }
        Op::GlobalAvgPool2d => {
            let Shape::Chw(_, h, w) = in_shape else {
                unreachable!("validated pool shapes")
            };
            let c = index[0];
            for o in c * h * w..(c + 1) * h * w {
                push(src0, in_shape, o, Some(1.0 / (h * w) as f32), in_act);
            }
        }
        Op::Flatten => push(src0, in_shape, off, Some(1.0), in_act),
        Op::Relu
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
        | Op::Softmax => {
            push(src0, in_shape, off, None, in_act);
            pre_activation = Some(in_act[off]);
        }
        op if query_extra::handles(op) => {
            let (w, b) = (vals(&params.weight)?, vals(&params.bias)?);
            let e = query_extra::neuron(model, layer, acts, (off, value), w.as_deref(), b.as_deref());
            inputs.extend(e.inputs);
            bias = e.bias;
            pre_activation = e.pre_activation;
        }
        Op::Concat => {
            let (s, local) = concat_source(model, layer, off);
            push(s, model.source_shape(s), local, Some(1.0), acts.source(s));
        }
        op => unreachable!("{} is query_extra's", op.name()),
    }
    if inputs.iter().all(|i| i.contribution.is_some()) {
        inputs.sort_by(|a, b| {
            let (a, b) = (a.contribution.unwrap_or(0.0).abs(), b.contribution.unwrap_or(0.0).abs());
            b.total_cmp(&a)
        });
    }
    Ok(NeuronInfo {
        layer: layer_idx,
        index: index.to_vec(),
        value,
        pre_activation,
        bias,
        inputs,
    })
}

/// Which concat input holds output offset `off`, and the offset inside it.
fn concat_source(model: &Model, layer: &Layer, off: usize) -> (Source, usize) {
    // Channel-axis concat of [C,H,W] maps is contiguous per input, like the feature axis of [N].
    let mut start = 0;
    for &s in &layer.inputs {
        let n = model.source_shape(s).elements();
        if off < start + n {
            return (s, off - start);
        }
        start += n;
    }
    unreachable!("offset within the concat output")
}

/// Receptive field of a neuron: for the input and every layer it depends on, the region of that
/// source that can influence it. Index `0` of the result is the input; `i + 1` is layer `i`.
// Long: one match arm per op walking back through the graph, kept together as in `neuron`.
pub fn receptive_field(model: &Model, layer_idx: usize, index: &[usize]) -> Result<Vec<Option<Region>>> {
    let layer = model
        .layers
        .get(layer_idx)
        .ok_or_else(|| NnError::Usage(format!("no layer {layer_idx}")))?;
    let off = layer.shape.offset(index).ok_or_else(|| {
        qerr(
            model,
            layer,
            format!("neuron {index:?} is outside the layer's shape {}", layer.shape),
        )
    })?;
    let slot = |s: Source| match s {
        Source::Input => 0,
        Source::Layer(i) => i + 1,
    };
    let mut regions: Vec<Option<Region>> = vec![None; model.layers.len() + 1];
    regions[layer_idx + 1] = Some(Region::from_offsets(layer.shape, std::iter::once(off)));
    for li in (0..=layer_idx).rev() {
        let Some(region) = regions[li + 1].clone() else {
            continue;
        };
        let layer = &model.layers[li];
        let mut add = |s: Source, r: Region| {
            let k = slot(s);
            match &mut regions[k] {
                Some(existing) => existing.union(r),
                none => *none = Some(r),
            }
        };
        let src0 = layer.inputs[0];
        let in_shape = model.source_shape(src0);
        match (&layer.op, &region) {
            (
                Op::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                },
                Region::Map { channels, y, x },
            ) => {
                let Shape::Chw(cin, h, w) = in_shape else {
                    unreachable!()
                };
                let cin_g = cin / groups;
                let per_g = out_channels / groups;
                let chans: BTreeSet<usize> = channels
                    .iter()
                    .map(|c| c / per_g)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .flat_map(|g| g * cin_g..(g + 1) * cin_g)
                    .collect();
                let span = |r: (usize, usize), k: usize, s: usize, p: usize, d: usize, n: usize| {
                    let lo = (r.0 * s) as isize - p as isize;
                    let hi = (r.1 * s + d * (k - 1)) as isize - p as isize;
                    (lo.max(0) as usize, (hi.min(n as isize - 1)).max(0) as usize)
                };
                add(
                    src0,
                    Region::Map {
                        channels: chans,
                        y: span(*y, kernel.0, stride.0, padding.0, dilation.0, h),
                        x: span(*x, kernel.1, stride.1, padding.1, dilation.1, w),
                    },
                );
            }
            (
                Op::MaxPool2d { .. } | Op::AvgPool2d { .. } | Op::AdaptiveAvgPool2d { .. },
                Region::Map { channels, y, x },
            ) => {
                let (Shape::Chw(_, h, w), Shape::Chw(_, oh, ow)) = (in_shape, layer.shape) else {
                    unreachable!()
                };
                let (rows, cols) = pool::windows(&layer.op, (h, w), (oh, ow)).expect("a pooling op");
                // Every window has a real cell, so `hi > lo`.
                let span = |r: (usize, usize), wins: &[pool::Win]| (wins[r.0].lo, wins[r.1].hi - 1);
                add(
                    src0,
                    Region::Map {
                        channels: channels.clone(),
                        y: span(*y, &rows),
                        x: span(*x, &cols),
                    },
                );
            }
            (Op::GlobalAvgPool2d, Region::Map { channels, .. }) => {
                let Shape::Chw(_, h, w) = in_shape else { unreachable!() };
                add(
                    src0,
                    Region::Map {
                        channels: channels.clone(),
                        y: (0, h - 1),
                        x: (0, w - 1),
                    },
                );
            }
            (Op::Dense { .. }, _) => add(src0, Region::all(in_shape)),
            (Op::Flatten, Region::Flat(idx)) => add(src0, Region::from_offsets(in_shape, idx.iter().copied())),
            (Op::Softmax, _) => {
                // Every output of a softmax depends on all its inputs along the normalized axis.
                let r = match (&region, in_shape) {
                    (Region::Map { y, x, .. }, Shape::Chw(c, _, _)) => Region::Map {
                        channels: (0..c).collect(),
                        y: *y,
                        x: *x,
                    },
                    _ => Region::all(in_shape),
                };
                add(src0, r);
            }
            (Op::Concat, _) => {
                let mut start = 0usize;
                for &s in &layer.inputs {
                    let shape = model.source_shape(s);
                    let n = shape.channels();
                    let part = match &region {
                        Region::Map { channels, y, x } => {
                            let ch: BTreeSet<usize> = channels
                                .iter()
                                .filter(|&&c| c >= start && c < start + n)
                                .map(|c| c - start)
                                .collect();
                            (!ch.is_empty()).then_some(Region::Map {
                                channels: ch,
                                y: *y,
                                x: *x,
                            })
                        }
                        Region::Flat(idx) => {
                            let ids: BTreeSet<usize> = idx
                                .iter()
                                .filter(|&&i| i >= start && i < start + n)
                                .map(|i| i - start)
                                .collect();
                            (!ids.is_empty()).then_some(Region::Flat(ids))
                        }
                    };
                    if let Some(p) = part {
                        add(s, p);
                    }
                    start += n;
                }
            }
            (op, _) if query_extra::handles(op) => {
                for (s, r) in query_extra::field(model, layer, &region) {
                    add(s, r);
                }
            }
            // Elementwise ops: the same neurons in every input.
            _ => {
                for &s in &layer.inputs {
                    add(s, region.clone());
                }
            }
        }
    }
    // The queried layer itself is not part of its own receptive field.
    regions[layer_idx + 1] = None;
    Ok(regions)
}

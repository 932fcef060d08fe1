//! The neuron query and receptive field of the ops real CNNs add to the plain conv stack
//! (broadcasting binary ops, prelu, ...), beside [`super::query`]'s, which calls these.

use super::binary::{self, Dims3};
use super::engine::Activations;
use super::model::{Layer, Model, Op, Shape, Source};
use super::query::{NeuronInput, Region};

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
/// as an activation.
pub(super) fn neuron(
    model: &Model,
    layer: &Layer,
    acts: &Activations,
    off: usize,
    weight: Option<&[f32]>,
    _bias: Option<&[f32]>,
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
        op => unreachable!("{} is not one of query_extra's ops", op.name()),
    }
    e
}

/// The receptive field, in each direct input, of `region` of `layer`'s output.
pub(super) fn field(model: &Model, layer: &Layer, region: &Region) -> Vec<(Source, Region)> {
    match &layer.op {
        op if op.is_binary() => layer
            .inputs
            .iter()
            .map(|&s| (s, broadcast_region(region, model.source_shape(s))))
            .collect(),
        _ => layer.inputs.iter().map(|&s| (s, region.clone())).collect(),
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

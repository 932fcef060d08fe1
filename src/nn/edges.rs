//! The edges of fully connected layers: which neurons feed which, with what weight, and how much
//! each edge contributes for the current input ("importance", `weight × activation`). No GPU, no
//! positions here: `scene::edges` places them in the room, `gfx::bundle` bundles and draws them.
//!
//! A dense layer reading an `[N]` vector has one edge per (input, output) pair. One reading a
//! flattened `[C, H, W]` map (conv → flatten → dense) has one per (map cell, output) pair, or, when
//! the map has more than `max_sources` cells, one per (channel, output) pair: the channel's edges
//! *aggregated*, their weights summed (the channel's contribution at a uniform activation of 1)
//! and their importances summed (exactly the channel's share of the output's pre-activation).

use super::engine::Activations;
use super::error::{NnError, Result};
use super::model::{Model, Op, Shape, Source};
use super::weights::Weights;

/// What an edge's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EdgeValue {
    /// The weight (summed over a channel for aggregated edges).
    #[default]
    Weight,
    /// `weight × activation` of the source for the current input (summed over a channel).
    Importance,
}

/// The edges into one dense layer.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseEdges {
    /// The dense layer (index into `Model::layers`).
    pub layer: usize,
    /// Where its input values come from, past any `flatten`: the input or an earlier layer.
    pub source: Source,
    pub source_shape: Shape,
    /// Source nodes are channels of `source_shape` (aggregated), else its elements.
    pub aggregated: bool,
    /// Source nodes (elements or channels) and outputs.
    pub sources: usize,
    pub targets: usize,
    /// `targets × sources` values, row-major (edge `(s, t)` at `t * sources + s`).
    pub values: Vec<f32>,
}

impl DenseEdges {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of the edge from source node `s` to output `t`.
    pub fn value(&self, s: usize, t: usize) -> f32 {
        self.values[t * self.sources + s]
    }
}

/// The source a layer reads, past any `flatten` (a reshape, shown as the block before it).
pub fn unflattened_source(model: &Model, mut src: Source) -> Source {
    while let Source::Layer(i) = src {
        match (&model.layers[i].op, model.layers[i].inputs.as_slice()) {
            (Op::Flatten, [inner]) => src = *inner,
            _ => break,
        }
    }
    src
}

/// The dense layers of the model, in model order.
pub fn dense_layers(model: &Model) -> Vec<usize> {
    (0..model.layers.len())
        .filter(|&i| matches!(model.layers[i].op, Op::Dense { .. }))
        .collect()
}

/// The edges into dense layer `layer`, valued by `value` (importance reads `acts`).
pub fn dense_edges(
    model: &Model,
    weights: &Weights,
    acts: &Activations,
    layer: usize,
    value: EdgeValue,
    max_sources: usize,
) -> Result<DenseEdges> {
    let l = model
        .layers
        .get(layer)
        .ok_or_else(|| NnError::Usage(format!("no layer {layer}")))?;
    let lerr = |msg: String| NnError::layer(&model.path, &l.name, msg);
    let Op::Dense { out_features } = l.op else {
        return Err(lerr(format!("edges are drawn for dense layers, not {}", l.op.name())));
    };
    let [input] = l.inputs.as_slice() else {
        return Err(lerr("a dense layer reads exactly one input".into()));
    };
    let source = unflattened_source(model, *input);
    let source_shape = model.source_shape(source);
    let n = source_shape.elements();
    let w = weights
        .layers
        .get(layer)
        .and_then(|p| p.weight.as_ref())
        .ok_or_else(|| lerr("no weight tensor loaded".into()))?
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| lerr(e.to_string()))?;
    if w.len() != n * out_features {
        return Err(lerr(format!(
            "weight has {} values, expected {out_features} × {n}",
            w.len()
        )));
    }
    // The flattened input in the source's order (flatten is row-major C, H, W).
    let act = acts.source(source);
    if value == EdgeValue::Importance && act.len() != n {
        return Err(lerr(format!("{} input activations, expected {n}", act.len())));
    }
    let edge = |i: usize, o: usize| match value {
        EdgeValue::Weight => w[o * n + i],
        EdgeValue::Importance => w[o * n + i] * act[i],
    };
    let (aggregated, sources, values) = match source_shape {
        Shape::Chw(c, h, wd) if n > max_sources => {
            let plane = h * wd;
            let mut values = vec![0.0; out_features * c];
            for o in 0..out_features {
                for ch in 0..c {
                    values[o * c + ch] = (ch * plane..(ch + 1) * plane).map(|i| edge(i, o)).sum();
                }
            }
            (true, c, values)
        }
        _ => {
            let values = (0..out_features)
                .flat_map(|o| (0..n).map(move |i| (i, o)))
                .map(|(i, o)| edge(i, o))
                .collect();
            (false, n, values)
        }
    };
    Ok(DenseEdges {
        layer,
        source,
        source_shape,
        aggregated,
        sources,
        targets: out_features,
        values,
    })
}

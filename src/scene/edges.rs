//! The fully connected layers' edges placed in the room: each edge of `nn::edges` from its source
//! neuron (a cube, a map cell, or a channel's tile when aggregated) to its target cube, in stage
//! space, with its value. Plain data for `gfx::bundle`, which bundles and draws them.
//!
//! Nothing is dropped silently: past [`EdgeOptions::budget`] edges the weakest (smallest |value|
//! when built) are left out and counted in [`SceneEdges::dropped`]; edges under the threshold are
//! hidden by the renderer and counted by [`SceneEdges::below_threshold`].

use glam::Vec3;

use super::layout::LayerPlacement;
use super::network::NeuronRef;
use crate::nn::edges::{self, DenseEdges, EdgeValue};
use crate::nn::{Activations, Model, NnError, Shape, Source, Weights};

/// Most edges built by default (beyond them the weakest are dropped, and counted).
pub const DEFAULT_EDGE_BUDGET: usize = 1 << 21;
/// Flattened maps with more cells than this are aggregated by channel.
pub const DEFAULT_MAX_SOURCES: usize = 256;

/// Which edges to build and how to value them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeOptions {
    pub value: EdgeValue,
    /// Most edges kept (the strongest); the rest are dropped and counted.
    pub budget: usize,
    /// Flattened maps with more cells are aggregated by channel.
    pub max_sources: usize,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        EdgeOptions {
            value: EdgeValue::Weight,
            budget: DEFAULT_EDGE_BUDGET,
            max_sources: DEFAULT_MAX_SOURCES,
        }
    }
}

/// The edges into one dense layer: one bundling group.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeLayer {
    /// The dense layer (index into `Model::layers`) and its name.
    pub layer: usize,
    pub name: String,
    /// The blocks the edges leave and enter (indices into the placements).
    pub source_block: usize,
    pub target_block: usize,
    /// Source nodes are the source block's channels (see `nn::edges`).
    pub aggregated: bool,
    /// Edges the layer has, and the range of [`SceneEdges::edges`] kept of them.
    pub total: usize,
    pub kept: std::ops::Range<usize>,
}

/// One edge in stage space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacedEdge {
    pub a: Vec3,
    pub b: Vec3,
    /// Index into [`SceneEdges::layers`].
    pub group: u32,
    /// Source node (element, or channel when aggregated) and target neuron.
    pub source: u32,
    pub target: u32,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SceneEdges {
    pub layers: Vec<EdgeLayer>,
    pub edges: Vec<PlacedEdge>,
    /// One per edge: weight or importance (see [`EdgeOptions::value`]).
    pub values: Vec<f32>,
    /// Edges left out to stay within the budget.
    pub dropped: usize,
}

/// The block showing `source`: its last layer is `source`, or (hidden inside it) one of its layers.
fn block_showing(model: &Model, placements: &[LayerPlacement], source: Source) -> Option<usize> {
    placements.iter().position(|p| p.source == source).or_else(|| {
        let Source::Layer(i) = source else { return None };
        let name = &model.layers[i].name;
        placements.iter().position(|p| p.name.split('+').any(|n| n == name))
    })
}

/// Where source node `node` of `block` is shown: a cube, a map cell, or (aggregated) a tile's center.
fn source_position(p: &LayerPlacement, shape: Shape, aggregated: bool, node: usize) -> Option<Vec3> {
    match shape {
        Shape::Flat(_) => p.neurons.get(node).filter(|n| n.index == node).map(|n| n.center),
        Shape::Chw(_, h, w) => {
            let (channel, cell) = if aggregated {
                (node, None)
            } else {
                (node / (h * w), Some(((node / w) % h, node % w)))
            };
            // A picture (grey or RGB input) is one tile for all its channels.
            let tile = if p.tiles.len() == 1 {
                p.tiles.first()
            } else {
                p.tiles.get(channel)
            }?;
            let local = match cell {
                None => Vec3::ZERO,
                Some((y, x)) => Vec3::new(
                    (x as f32 + 0.5) / tile.w as f32 - 0.5,
                    0.5 - (y as f32 + 0.5) / tile.h as f32,
                    0.0,
                ),
            };
            Some(tile.world_from_tile.transform_point3(local))
        }
    }
}

impl SceneEdges {
    /// The edges of every dense layer whose blocks are shown in `placements` (stage space, as
    /// `SceneDraw::placements` gives them), valued for `weights` and `acts`.
    pub fn build(
        model: &Model,
        weights: &Weights,
        acts: &Activations,
        placements: &[LayerPlacement],
        options: &EdgeOptions,
    ) -> Result<SceneEdges, NnError> {
        let mut all = Vec::new();
        for layer in edges::dense_layers(model) {
            let e = edges::dense_edges(model, weights, acts, layer, options.value, options.max_sources)?;
            let name = &model.layers[layer].name;
            let target = placements
                .iter()
                .position(|p| p.source == Source::Layer(layer) || p.name.split('+').next() == Some(name));
            let (Some(target), Some(source)) = (target, block_showing(model, placements, e.source)) else {
                continue;
            };
            all.push((e, source, target));
        }
        // The budget: the |value| at or above which edges are kept.
        let total: usize = all.iter().map(|(e, ..)| e.len()).sum();
        let (cut, mut ties) = if total > options.budget {
            let mut mags: Vec<f32> = all
                .iter()
                .flat_map(|(e, ..)| e.values.iter().map(|v| v.abs()))
                .collect();
            let k = options.budget;
            if k == 0 {
                (f32::INFINITY, 0)
            } else {
                let (_, cut, _) = mags.select_nth_unstable_by(total - k, f32::total_cmp);
                let cut = *cut;
                // Edges strictly above the cut are kept; of those equal to it, as many as fit.
                let above = mags.iter().filter(|&&m| m > cut).count();
                (cut, k - above)
            }
        } else {
            (f32::NEG_INFINITY, 0)
        };
        let mut out = SceneEdges::default();
        for (e, source_block, target_block) in all {
            let group = out.layers.len() as u32;
            let start = out.edges.len();
            let (src, dst) = (&placements[source_block], &placements[target_block]);
            for t in 0..e.targets {
                let Some(b) = dst.neurons.get(t).filter(|n| n.index == t).map(|n| n.center) else {
                    continue;
                };
                for s in 0..e.sources {
                    let v = e.value(s, t);
                    let m = v.abs();
                    let keep = m > cut || (m == cut && ties > 0);
                    if !keep {
                        continue;
                    }
                    if m == cut {
                        ties -= 1;
                    }
                    let Some(a) = source_position(src, e.source_shape, e.aggregated, s) else {
                        continue;
                    };
                    out.edges.push(PlacedEdge {
                        a,
                        b,
                        group,
                        source: s as u32,
                        target: t as u32,
                    });
                    out.values.push(v);
                }
            }
            out.layers.push(EdgeLayer {
                layer: e.layer,
                name: model.layers[e.layer].name.clone(),
                source_block,
                target_block,
                aggregated: e.aggregated,
                total: e.len(),
                kept: start..out.edges.len(),
            });
        }
        out.dropped = total - out.edges.len();
        Ok(out)
    }

    /// The values of the same edges for new weights or activations (a checkpoint scrub, a new
    /// input, live training): the topology and positions stay, so the bundle updates incrementally.
    pub fn revalue(
        &self,
        model: &Model,
        weights: &Weights,
        acts: &Activations,
        options: &EdgeOptions,
    ) -> Result<Vec<f32>, NnError> {
        let mut values = Vec::with_capacity(self.edges.len());
        for l in &self.layers {
            let e: DenseEdges = edges::dense_edges(model, weights, acts, l.layer, options.value, options.max_sources)?;
            values.extend(
                self.edges[l.kept.clone()]
                    .iter()
                    .map(|edge| e.value(edge.source as usize, edge.target as usize)),
            );
        }
        Ok(values)
    }

    /// The largest |value| of each layer's kept edges (the renderer scales opacity by it).
    pub fn max_abs(&self) -> Vec<f32> {
        self.layers
            .iter()
            .map(|l| {
                self.values[l.kept.clone()]
                    .iter()
                    .fold(0f32, |m, v| if v.is_finite() { m.max(v.abs()) } else { m })
            })
            .collect()
    }

    /// Edges under `threshold` (a fraction of their layer's largest |value|): the renderer hides
    /// them.
    pub fn below_threshold(&self, threshold: f32) -> usize {
        let max = self.max_abs();
        self.edges
            .iter()
            .zip(&self.values)
            .filter(|(e, v)| v.abs() < threshold * max[e.group as usize])
            .count()
    }

    /// The edges into or out of the neuron `n` (indices into [`SceneEdges::edges`]). A neuron of an
    /// aggregated map owns its channel's edges.
    pub fn touching(&self, n: &NeuronRef, model: &Model) -> Vec<u32> {
        let mut out = Vec::new();
        for l in &self.layers {
            let src_node = if l.source_block == n.block {
                let shape = model.layers[l.layer]
                    .inputs
                    .first()
                    .map(|&s| model.source_shape(edges::unflattened_source(model, s)));
                match (shape, n.index.as_slice()) {
                    (Some(Shape::Chw(..)), [c, ..]) if l.aggregated => Some(*c),
                    (Some(shape), index) => shape.offset(index),
                    (None, _) => None,
                }
            } else {
                None
            };
            let dst_node = (l.target_block == n.block).then(|| n.index.first().copied()).flatten();
            for (i, e) in self.edges[l.kept.clone()].iter().enumerate() {
                if src_node == Some(e.source as usize) || dst_node == Some(e.target as usize) {
                    out.push((l.kept.start + i) as u32);
                }
            }
        }
        out
    }
}

//! The types [`super::query`] answers with, shared with [`super::query_extra`] (the newer ops'
//! queries) so that neither file imports the other's internals: one input of a neuron, and a
//! region of a layer.

use std::collections::BTreeSet;

use super::model::{Shape, Source};

/// One input neuron of a queried neuron.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronInput {
    pub source: Source,
    /// `[c, y, x]` or `[i]` in the source's shape.
    pub index: Vec<usize>,
    /// The multiplier applied to the input (conv/dense weight, 1/k for average pooling, 1 for the
    /// winner of a max pool and 0 for the others); `None` for nonlinear elementwise ops.
    pub weight: Option<f32>,
    pub activation: f32,
    /// `weight * activation` where a weight exists.
    pub contribution: Option<f32>,
}

/// A set of neurons in one layer: channels and a bounding box (maps), or indices (vectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Region {
    Map {
        channels: BTreeSet<usize>,
        /// Inclusive row and column ranges.
        y: (usize, usize),
        x: (usize, usize),
    },
    Flat(BTreeSet<usize>),
}

impl Region {
    pub(super) fn union(&mut self, other: Region) {
        match (self, other) {
            (
                Region::Map { channels, y, x },
                Region::Map {
                    channels: c2,
                    y: y2,
                    x: x2,
                },
            ) => {
                channels.extend(c2);
                *y = (y.0.min(y2.0), y.1.max(y2.1));
                *x = (x.0.min(x2.0), x.1.max(x2.1));
            }
            (Region::Flat(a), Region::Flat(b)) => a.extend(b),
            _ => unreachable!("a layer's regions share its shape kind"),
        }
    }
    pub(super) fn all(shape: Shape) -> Region {
        match shape {
            Shape::Chw(c, h, w) => Region::Map {
                channels: (0..c).collect(),
                y: (0, h - 1),
                x: (0, w - 1),
            },
            Shape::Flat(n) => Region::Flat((0..n).collect()),
        }
    }
    pub(super) fn from_offsets(shape: Shape, offs: impl Iterator<Item = usize>) -> Region {
        match shape {
            Shape::Flat(_) => Region::Flat(offs.collect()),
            Shape::Chw(..) => {
                let mut r: Option<Region> = None;
                for o in offs {
                    let i = shape.index_of(o);
                    let one = Region::Map {
                        channels: BTreeSet::from([i[0]]),
                        y: (i[1], i[1]),
                        x: (i[2], i[2]),
                    };
                    match &mut r {
                        Some(r) => r.union(one),
                        None => r = Some(one),
                    }
                }
                r.unwrap_or_else(|| Region::Flat(BTreeSet::new()))
            }
        }
    }
    /// Number of neurons covered (channels × box, or indices).
    pub fn count(&self) -> usize {
        match self {
            Region::Map { channels, y, x } => channels.len() * (y.1 - y.0 + 1) * (x.1 - x.0 + 1),
            Region::Flat(s) => s.len(),
        }
    }
}

//! The network's drawing built from the model: its values (the forward pass's, the input with its
//! normalization undone) block after block, one tile per feature map and one cube per neuron
//! colored by its block's range, and the labels, output bars and floor around them.
//!
//! The constructors are inherent methods of [`NetworkDraw`] (a plain gfx type) written here, so
//! gfx needs nothing of `nn` or `scene` and callers keep writing `NetworkDraw::new(..)`.

use crate::gfx::colormap::Colormap;
use crate::gfx::{BlockStyle, CubeInstance, DrawList, NetworkDraw, TileInstance};
use crate::nn::{Activations, Model, Shape, Source};
use crate::scene::LayerPlacement;
use crate::view::annotate::{self, BlockValues};

impl NetworkDraw {
    /// The blocks with their values, labels and output bars, on the floor grid of a 3 m × 3 m
    /// play area.
    pub fn new(model: &Model, acts: &Activations, placements: &[LayerPlacement]) -> NetworkDraw {
        NetworkDraw::new_into(model, acts, placements, Vec::new())
    }

    /// [`NetworkDraw::new`], writing the values into `values` (cleared first): a frame loop hands
    /// back the last drawing's buffer, so a big network's values land in memory already mapped
    /// instead of ~100 MB of fresh pages each time.
    pub fn new_into(model: &Model, acts: &Activations, placements: &[LayerPlacement], values: Vec<f32>) -> NetworkDraw {
        let mut draw = NetworkDraw::activations_into(model, acts, placements, values);
        let blocks: Vec<BlockValues> = draw
            .styles
            .iter()
            .map(|s| BlockValues {
                values: &draw.values[s.offset..s.offset + s.len],
                colormap: s.colormap,
                scale: s.scale,
            })
            .collect();
        let mut extra = DrawList::default();
        annotate::labels(model, placements, &blocks, &mut extra);
        let (min, max) = crate::scene::layout::bounds(placements);
        extra
            .lines
            .extend(annotate::floor(min, max, annotate::DEFAULT_PLAY_AREA));
        draw.list.append(extra);
        draw
    }

    /// Only the tiles and cubes that show values: no labels, bars or floor.
    pub fn activations_only(model: &Model, acts: &Activations, placements: &[LayerPlacement]) -> NetworkDraw {
        NetworkDraw::activations_into(model, acts, placements, Vec::new())
    }

    fn activations_into(
        model: &Model,
        acts: &Activations,
        placements: &[LayerPlacement],
        mut values: Vec<f32>,
    ) -> NetworkDraw {
        values.clear();
        values.reserve(placements.iter().map(|p| acts.source(p.source).len()).sum());
        let mut list = DrawList::default();
        let mut styles = Vec::with_capacity(placements.len());
        for p in placements {
            let start = values.len();
            let offset = start as u32;
            match p.source {
                Source::Input => values.extend(denormalized_input(model, &acts.input)),
                src => values.extend_from_slice(acts.source(src)),
            }
            let block = &values[start..];
            let (colormap, scale) = match (p.source, p.shape) {
                (Source::Input, Shape::Chw(1, _, _)) => (Colormap::Grey, 1.0),
                (Source::Input, Shape::Chw(3, _, _)) => (Colormap::Rgb, 1.0),
                _ => value_colormap(block),
            };
            styles.push(BlockStyle {
                offset: start,
                len: block.len(),
                colormap,
                scale,
            });
            for t in &p.tiles {
                list.tiles.push(TileInstance {
                    world_from_tile: t.world_from_tile.to_cols_array_2d(),
                    offset: offset + (t.channel * t.h * t.w) as u32,
                    h: t.h as u32,
                    w: t.w as u32,
                    colormap: colormap as u32,
                    scale,
                    _pad: [0; 3],
                });
            }
            for n in &p.neurons {
                list.cubes.push(CubeInstance {
                    center_size: n.center.extend(n.size).to_array(),
                    value: offset + n.index as u32,
                    colormap: colormap as u32,
                    scale,
                    _pad: 0,
                });
            }
        }
        NetworkDraw { values, list, styles }
    }
}

/// Sequential for layers with no negative value, diverging otherwise; the scale maps the largest
/// |value| to the end of the colormap. Non-finite values are left out of the range.
fn value_colormap(values: &[f32]) -> (Colormap, f32) {
    // In 16 lanes with plain comparisons, which vectorize (`f32::min`'s NaN rules do not): this
    // scans every value the network shows whenever they change, ~20M for a ResNet-50.
    const LANES: usize = 16;
    let (mut lo, mut hi) = ([0f32; LANES], [0f32; LANES]);
    let mut scan = |c: &[f32]| {
        for (i, &v) in c.iter().enumerate() {
            let v = if v.is_finite() { v } else { 0.0 };
            lo[i] = if v < lo[i] { v } else { lo[i] };
            hi[i] = if v.abs() > hi[i] { v.abs() } else { hi[i] };
        }
    };
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    chunks.for_each(&mut scan);
    scan(rest);
    let min = lo.iter().fold(0f32, |m, &v| m.min(v));
    let max_abs = hi.iter().fold(0f32, |m, &v| m.max(v));
    let map = if min < 0.0 {
        Colormap::Diverging
    } else {
        Colormap::Sequential
    };
    (map, if max_abs > 0.0 { 1.0 / max_abs } else { 0.0 })
}

/// `x · std + mean` per channel: the input as it was before normalization.
pub fn denormalized_input(model: &Model, input: &[f32]) -> Vec<f32> {
    let spec = &model.input;
    let plane = match spec.shape {
        Shape::Chw(_, h, w) => h * w,
        Shape::Flat(_) => 1,
    };
    // One value applies to every channel; none means identity.
    let pick = |v: &[f32], c: usize, default: f32| match v {
        [] => default,
        [x] => *x,
        v => v.get(c).copied().unwrap_or(default),
    };
    input
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let c = if matches!(spec.shape, Shape::Chw(..)) {
                i / plane
            } else {
                0
            };
            x * pick(&spec.std, c, 1.0) + pick(&spec.mean, c, 0.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormap_follows_the_sign_and_scale_the_largest_magnitude() {
        assert_eq!(value_colormap(&[0.0, 2.0, 4.0]), (Colormap::Sequential, 0.25));
        assert_eq!(value_colormap(&[-8.0, 2.0, f32::NAN]), (Colormap::Diverging, 0.125));
        assert_eq!(value_colormap(&[0.0; 3]), (Colormap::Sequential, 0.0));
        // Past one chunk of lanes, with the extremes in the remainder and non-finite values skipped.
        let mut long: Vec<f32> = (0..37).map(|i| i as f32 / 100.0).collect();
        long[3] = f32::INFINITY;
        long[35] = -0.5;
        long[36] = f32::NAN;
        assert_eq!(value_colormap(&long), (Colormap::Diverging, 1.0 / 0.5));
        long[35] = 0.0;
        assert_eq!(value_colormap(&long), (Colormap::Sequential, 1.0 / 0.34));
    }
}

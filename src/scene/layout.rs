//! Places a model's layers in the room, in front of a viewer standing at the origin and looking down
//! −Z (OpenXR's STAGE space: +Y up, meters).
//!
//! Each displayed block stands upright, facing the viewer (+Z), centered at eye height on the −Z
//! axis, one behind the other in model order. `[C, H, W]` blocks are C square tiles (one feature map
//! each); `[N]` blocks are small cubes, one per neuron. Elementwise layers (relu, sigmoid, tanh,
//! batchnorm) right after a conv/dense block are folded into it, and the block shows their
//! (post-activation) values; `flatten` is only a reshape and is not shown separately.

use glam::{Mat4, Quat, Vec2, Vec3};

use crate::nn::{Model, Op, Shape, Source};

/// Eye height of the viewer the layout is made for.
pub const EYE_HEIGHT: f32 = 1.4;
/// Distance from the viewer to the first block.
pub const FIRST_DISTANCE: f32 = 1.5;
/// Tile edge per map row: a 28-row map is a 0.28 m tile.
pub const TILE_METERS_PER_ROW: f32 = 0.01;
/// Gap between tiles, as a fraction of the tile edge.
pub const TILE_GAP: f32 = 0.2;
/// Edge of a neuron cube, and the distance between neighboring cube centers.
pub const CUBE_SIZE: f32 = 0.04;
pub const CUBE_PITCH: f32 = 0.06;
/// Vectors up to this length stand in one column; longer ones in a square-ish grid.
pub const MAX_COLUMN: usize = 16;

/// How a block's tiles are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayoutKind {
    /// `ceil(sqrt(C))` columns, row by row from the top left.
    #[default]
    Grid,
    /// All tiles in one row, left to right.
    Linear,
}

/// One feature map of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct TileRect {
    pub channel: usize,
    /// Maps the unit quad (−0.5..0.5 in x and y, z = 0, facing +Z; map row 0 at +y) to the world.
    pub world_from_tile: Mat4,
    pub h: usize,
    pub w: usize,
}

/// One neuron of a vector block.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronCube {
    pub index: usize,
    pub center: Vec3,
    pub size: f32,
}

/// One displayed block.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlacement {
    /// Whose values the block shows: the input, or the last layer folded into the block.
    pub source: Source,
    /// The block's layers joined by `+` (e.g. `conv1+relu1`), or the input's name.
    pub name: String,
    /// What the block does ([`BlockSpec::what`]).
    pub what: String,
    pub shape: Shape,
    pub center: Vec3,
    /// Width and height of the block (x, y), in meters.
    pub size: Vec2,
    pub tiles: Vec<TileRect>,
    pub neurons: Vec<NeuronCube>,
}

impl LayerPlacement {
    /// Axis-aligned bounds (min, max) of the block; blocks are flat, so z is the center's.
    pub fn bounds(&self) -> (Vec3, Vec3) {
        let half = (self.size / 2.0).extend(0.0);
        (self.center - half, self.center + half)
    }
}

/// A displayed block before it is given a place.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSpec {
    /// Whose values the block shows: the input, or the last layer folded into the block.
    pub source: Source,
    /// The block's layers joined by `+` (e.g. `conv1+relu1`), or the input's name.
    pub name: String,
    pub shape: Shape,
    /// The model layers the block shows, first (the "head": conv, dense, pool, ...) to last
    /// (`source`); empty for the input.
    pub layers: Vec<usize>,
    /// What the block's layers do, in a few words ([`crate::nn::describe::block`]), for its label.
    pub what: String,
}

/// Groups the model into displayed blocks, in model order.
pub fn blocks(model: &Model) -> Vec<BlockSpec> {
    let mut blocks = vec![BlockSpec {
        source: Source::Input,
        name: model.input.name.clone(),
        shape: model.input.shape,
        layers: Vec::new(),
        what: String::new(),
    }];
    // Conv/dense blocks absorb the elementwise layers that follow them.
    let mut absorbs = vec![false];
    for (i, layer) in model.layers.iter().enumerate() {
        let input = match layer.inputs.as_slice() {
            [src] => Some(*src),
            _ => None,
        };
        // The block currently showing this layer's (single) input, if it is the last block.
        let last = blocks.last_mut().filter(|b| input == Some(b.source));
        match (&layer.op, last) {
            // As are the ops by a constant that keep the shape (a layer scale).
            (op, Some(b))
                if (op.is_elementwise() || (op.is_binary() && layer.shape == b.shape))
                    && absorbs[absorbs.len() - 1] =>
            {
                b.source = Source::Layer(i);
                b.name = format!("{}+{}", b.name, layer.name);
                b.layers.push(i);
            }
            // Same values as the block before, reshaped.
            (Op::Flatten, Some(_)) => {}
            (op, _) => {
                blocks.push(BlockSpec {
                    source: Source::Layer(i),
                    name: layer.name.clone(),
                    shape: layer.shape,
                    layers: vec![i],
                    what: String::new(),
                });
                absorbs.push(matches!(
                    op,
                    Op::Conv2d { .. } | Op::Dense { .. } | Op::ConvTranspose2d { .. }
                ));
            }
        }
    }
    for b in &mut blocks {
        b.what = crate::nn::describe::block(model, &b.layers);
    }
    blocks
}

/// Each block's rank in the network's graph: the input is 0, and every other block is one more
/// than the highest rank among the blocks it reads from. A chain ranks 0, 1, 2, ...; parallel
/// branches (a residual block's shortcut conv, an inception module's towers) share ranks, so the
/// room can stand them side by side.
pub fn ranks(model: &Model, specs: &[BlockSpec]) -> Vec<usize> {
    // The block showing each layer's values; hidden layers (flatten) show their input's block.
    let mut block_of: Vec<Option<usize>> = vec![None; model.layers.len()];
    for (k, spec) in specs.iter().enumerate() {
        for &i in &spec.layers {
            block_of[i] = Some(k);
        }
    }
    let source_block = |block_of: &[Option<usize>], s: Source| match s {
        Source::Input => Some(0),
        Source::Layer(i) => block_of[i],
    };
    for (i, layer) in model.layers.iter().enumerate() {
        if block_of[i].is_none() {
            block_of[i] = layer.inputs.first().and_then(|&s| source_block(&block_of, s));
        }
    }
    let mut ranks = vec![0; specs.len()];
    for (k, spec) in specs.iter().enumerate().skip(1) {
        let Some(&head) = spec.layers.first() else { continue };
        ranks[k] = model.layers[head]
            .inputs
            .iter()
            .filter_map(|&s| source_block(&block_of, s))
            .filter(|&b| b < k)
            .map(|b| ranks[b] + 1)
            .max()
            .unwrap_or(ranks[k - 1] + 1);
    }
    ranks
}

/// Columns and rows of a grid of `n` items.
fn grid(n: usize, kind: LayoutKind) -> (usize, usize) {
    let cols = match kind {
        LayoutKind::Grid => (n as f64).sqrt().ceil() as usize,
        LayoutKind::Linear => n,
    }
    .max(1);
    (cols, n.div_ceil(cols).max(1))
}

/// Offset (x, y) of item `k` of a `cols`×`rows` grid with the given pitch, from the grid's center,
/// row by row from the top left.
fn grid_offset(k: usize, cols: usize, rows: usize, pitch: f32) -> Vec2 {
    let (col, row) = ((k % cols) as f32, (k / cols) as f32);
    Vec2::new(
        (col - (cols as f32 - 1.0) / 2.0) * pitch,
        ((rows as f32 - 1.0) / 2.0 - row) * pitch,
    )
}

/// Depth between the tiles of a folded block (they stand one behind the other, tile 0 in front).
pub const FOLD_STACK_PITCH: f32 = 0.01;
/// A folded vector block shrinks to this fraction of its size.
pub const FOLDED_CUBE_SCALE: f32 = 0.3;

/// The block's arrangement around its own origin (block space: facing +Z, +Y up, meters), for
/// `fold` from 0 (expanded) to 1 (folded: the tiles stacked one behind the other, the cubes
/// shrunk to [`FOLDED_CUBE_SCALE`]); values between are the fold animation.
pub fn local_placement(spec: &BlockSpec, kind: LayoutKind, fold: f32) -> LayerPlacement {
    let fold = fold.clamp(0.0, 1.0);
    let mut p = LayerPlacement {
        source: spec.source,
        name: spec.name.clone(),
        what: spec.what.clone(),
        shape: spec.shape,
        center: Vec3::ZERO,
        size: Vec2::ZERO,
        tiles: Vec::new(),
        neurons: Vec::new(),
    };
    match spec.shape {
        Shape::Chw(c, h, w) => {
            // A grey or RGB input is one picture; other maps are one tile per channel.
            let picture = spec.source == Source::Input && (c == 1 || c == 3);
            let tiles = if picture { 1 } else { c };
            let edge = h.max(w) as f32 * TILE_METERS_PER_ROW;
            let tile = Vec2::new(w as f32, h as f32) * TILE_METERS_PER_ROW;
            let pitch = edge * (1.0 + TILE_GAP);
            let (cols, rows) = grid(tiles, kind);
            let spread = Vec2::new(cols as f32, rows as f32) * pitch - edge * TILE_GAP;
            p.size = spread.lerp(tile, fold);
            p.tiles = (0..tiles)
                .map(|k| {
                    let open = grid_offset(k, cols, rows, pitch).extend(0.0);
                    let stacked = Vec3::new(0.0, 0.0, -(k as f32) * FOLD_STACK_PITCH);
                    TileRect {
                        channel: k,
                        world_from_tile: Mat4::from_translation(open.lerp(stacked, fold))
                            * Mat4::from_scale(tile.extend(1.0)),
                        h,
                        w,
                    }
                })
                .collect();
        }
        Shape::Flat(n) => {
            let (cols, rows) = if n <= MAX_COLUMN {
                (1, n.max(1))
            } else {
                grid(n, LayoutKind::Grid)
            };
            let shrink = 1.0 + (FOLDED_CUBE_SCALE - 1.0) * fold;
            p.size = (Vec2::new(cols as f32, rows as f32) * CUBE_PITCH - (CUBE_PITCH - CUBE_SIZE)) * shrink;
            p.neurons = (0..n)
                .map(|k| NeuronCube {
                    index: k,
                    center: grid_offset(k, cols, rows, CUBE_PITCH * shrink).extend(0.0),
                    size: CUBE_SIZE * shrink,
                })
                .collect();
        }
    }
    p
}

/// `p` moved by `world_from_block` (a rigid transform with uniform scale `scale`): tiles, cubes
/// and center; `size` is scaled and stays the block's own width and height.
pub fn transformed(p: &LayerPlacement, world_from_block: Mat4, scale: f32) -> LayerPlacement {
    LayerPlacement {
        source: p.source,
        name: p.name.clone(),
        what: p.what.clone(),
        shape: p.shape,
        center: world_from_block.transform_point3(p.center),
        size: p.size * scale,
        tiles: p
            .tiles
            .iter()
            .map(|t| TileRect {
                world_from_tile: world_from_block * t.world_from_tile,
                ..t.clone()
            })
            .collect(),
        neurons: p
            .neurons
            .iter()
            .map(|n| NeuronCube {
                index: n.index,
                center: world_from_block.transform_point3(n.center),
                size: n.size * scale,
            })
            .collect(),
    }
}

/// Bounds (min, max) of everything in `p` in its own space: every tile corner and cube corner.
pub fn extent(p: &LayerPlacement) -> (Vec3, Vec3) {
    let mut lo = Vec3::splat(f32::INFINITY);
    let mut hi = Vec3::splat(f32::NEG_INFINITY);
    for t in &p.tiles {
        for (x, y) in [(-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)] {
            let c = t.world_from_tile.transform_point3(Vec3::new(x, y, 0.0));
            (lo, hi) = (lo.min(c), hi.max(c));
        }
    }
    for n in &p.neurons {
        let half = Vec3::splat(n.size / 2.0);
        (lo, hi) = (lo.min(n.center - half), hi.max(n.center + half));
    }
    if lo.x > hi.x {
        return (p.center, p.center);
    }
    (lo, hi)
}

/// Places the blocks of `model` (see the module documentation).
pub fn layout(model: &Model, kind: LayoutKind) -> Vec<LayerPlacement> {
    // First the arrangement of each block around its own center, then the distances along −Z.
    let mut placed: Vec<LayerPlacement> = blocks(model).iter().map(|b| local_placement(b, kind, 0.0)).collect();

    let mut z = -FIRST_DISTANCE;
    for k in 0..placed.len() {
        if k > 0 {
            // Larger blocks get more room, so the one in front hides less of the next.
            let extent = |p: &LayerPlacement| p.size.max_element();
            z -= 0.4 + 0.5 * extent(&placed[k - 1]).max(extent(&placed[k]));
        }
        let world_from_layer = Mat4::from_translation(Vec3::new(0.0, EYE_HEIGHT, z));
        placed[k] = transformed(&placed[k], world_from_layer, 1.0);
    }
    placed
}

/// Bounds (min, max) of all blocks.
pub fn bounds(placements: &[LayerPlacement]) -> (Vec3, Vec3) {
    placements.iter().map(LayerPlacement::bounds).fold(
        (Vec3::splat(f32::INFINITY), Vec3::splat(f32::NEG_INFINITY)),
        |(lo, hi), (a, b)| (lo.min(a), hi.max(b)),
    )
}

/// Maps the unit quad (−0.5..0.5, facing +Z) onto rows `y` and columns `x` (inclusive) of a tile,
/// lifted a little off the tile so it draws in front of it.
pub fn cell_quad(tile: &TileRect, y: (usize, usize), x: (usize, usize)) -> Mat4 {
    let (w, h) = (tile.w as f32, tile.h as f32);
    let x0 = x.0 as f32 / w - 0.5;
    let x1 = (x.1 + 1) as f32 / w - 0.5;
    let y0 = 0.5 - y.0 as f32 / h;
    let y1 = 0.5 - (y.1 + 1) as f32 / h;
    tile.world_from_tile
        * Mat4::from_translation(Vec3::new((x0 + x1) / 2.0, (y0 + y1) / 2.0, HIGHLIGHT_LIFT))
        * Mat4::from_scale(Vec3::new(x1 - x0, y0 - y1, 1.0))
}

/// A quad on the front face of a neuron cube.
pub fn cube_quad(cube: &NeuronCube) -> Mat4 {
    Mat4::from_scale_rotation_translation(
        Vec3::new(cube.size, cube.size, 1.0),
        Quat::IDENTITY,
        cube.center + Vec3::new(0.0, 0.0, cube.size / 2.0 + HIGHLIGHT_LIFT),
    )
}

/// How far highlight quads stand in front of what they mark (block space, meters).
pub const HIGHLIGHT_LIFT: f32 = 0.002;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn model(layers: &str, input: &str) -> Model {
        let json = format!(
            r#"{{"format": "netwalk-model/1", "name": "t", "weights": "w.safetensors",
                "input": {{"name": "image", "shape": {input}}}, "layers": [{layers}]}}"#
        );
        Model::parse(&json, Path::new("/nonexistent/model.json")).expect("valid test model")
    }

    #[test]
    fn parallel_branches_share_a_rank() {
        // A residual block with a shortcut conv: stem, (a → b) beside (shortcut), add, then a
        // flatten (hidden) and a dense layer.
        let m = model(
            r#"{"name": "stem", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
               {"name": "relu0", "op": "relu"},
               {"name": "a", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
               {"name": "b", "op": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1},
               {"name": "shortcut", "op": "conv2d", "out_channels": 8, "kernel": 1, "inputs": ["relu0"]},
               {"name": "sum", "op": "add", "inputs": ["b", "shortcut"]},
               {"name": "flat", "op": "flatten"},
               {"name": "fc", "op": "dense", "out_features": 3}"#,
            "[1, 6, 6]",
        );
        let specs = blocks(&m);
        let names: Vec<&str> = specs.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["image", "stem+relu0", "a", "b", "shortcut", "sum", "fc"]);
        // The shortcut stands beside `a` (both read the stem); the sum waits for the longer branch.
        assert_eq!(ranks(&m, &specs), [0, 1, 2, 3, 2, 4, 5]);
        let chain = demo_like();
        assert_eq!(ranks(&chain, &blocks(&chain)), [0, 1, 2, 3, 4]);
    }

    fn demo_like() -> Model {
        model(
            r#"{"name": "conv1", "op": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1},
               {"name": "relu1", "op": "relu"},
               {"name": "pool1", "op": "maxpool2d", "kernel": 2},
               {"name": "flatten", "op": "flatten"},
               {"name": "fc", "op": "dense", "out_features": 10},
               {"name": "softmax", "op": "softmax"}"#,
            "[1, 28, 28]",
        )
    }

    #[test]
    fn blocks_fold_elementwise_and_flatten() {
        let p = layout(&demo_like(), LayoutKind::Grid);
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["image", "conv1+relu1", "pool1", "fc", "softmax"]);
        // The folded block shows the relu's values.
        assert_eq!(p[1].source, Source::Layer(1));
        assert_eq!(p[0].source, Source::Input);
        assert_eq!(p[0].tiles.len(), 1);
        assert_eq!(p[1].tiles.len(), 8);
        assert_eq!(p[3].neurons.len(), 10);
        assert!(p[3].tiles.is_empty());
    }

    #[test]
    fn elementwise_not_after_conv_or_dense_is_its_own_block() {
        let m = model(
            r#"{"name": "pool", "op": "maxpool2d", "kernel": 2}, {"name": "act", "op": "sigmoid"}"#,
            "[2, 4, 4]",
        );
        let names: Vec<String> = layout(&m, LayoutKind::Grid).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["image", "pool", "act"]);
    }

    #[test]
    fn blocks_stand_in_front_of_the_viewer_one_behind_the_other() {
        let p = layout(&demo_like(), LayoutKind::Grid);
        assert!((p[0].center - Vec3::new(0.0, EYE_HEIGHT, -FIRST_DISTANCE)).length() < 1e-6);
        for pair in p.windows(2) {
            let gap = pair[0].center.z - pair[1].center.z;
            assert!(gap >= 0.4 + 0.5 * pair[0].size.max_element().max(pair[1].size.max_element()) - 1e-5);
            assert_eq!(pair[1].center.x, 0.0);
            assert_eq!(pair[1].center.y, EYE_HEIGHT);
        }
    }

    /// Where tile `k` of a block with `c` tiles of edge `e` should be, by each layout's own rule.
    fn expected_offset(kind: LayoutKind, k: usize, c: usize, e: f32) -> Vec2 {
        let pitch = e * 1.2;
        let (cols, rows) = match kind {
            LayoutKind::Grid => {
                let cols = (c as f32).sqrt().ceil() as usize;
                (cols, c.div_ceil(cols))
            }
            LayoutKind::Linear => (c, 1),
        };
        let left = -((cols - 1) as f32) * pitch / 2.0;
        let top = ((rows - 1) as f32) * pitch / 2.0;
        Vec2::new(left + (k % cols) as f32 * pitch, top - (k / cols) as f32 * pitch)
    }

    #[test]
    fn tile_k_lands_where_each_layout_says() {
        let m = demo_like();
        for kind in [LayoutKind::Grid, LayoutKind::Linear] {
            let block = &layout(&m, kind)[1]; // conv1+relu1: 8 tiles of 28×28
            for t in &block.tiles {
                let center = t.world_from_tile.transform_point3(Vec3::ZERO);
                let want = block.center + expected_offset(kind, t.channel, 8, 0.28).extend(0.0);
                assert!(
                    (center - want).length() < 1e-5,
                    "{kind:?} tile {}: {center} vs {want}",
                    t.channel
                );
                // The unit quad's corners become a 0.28 m square facing +Z.
                let corner = t.world_from_tile.transform_point3(Vec3::new(0.5, 0.5, 0.0));
                assert!((corner - center - Vec3::new(0.14, 0.14, 0.0)).length() < 1e-5);
            }
        }
        // Grid: 3 columns, so tile 3 starts the second row; linear: all in the first row.
        let grid = &layout(&m, LayoutKind::Grid)[1];
        let linear = &layout(&m, LayoutKind::Linear)[1];
        let pos = |b: &LayerPlacement, k: usize| b.tiles[k].world_from_tile.transform_point3(Vec3::ZERO);
        assert!((pos(grid, 3).x - pos(grid, 0).x).abs() < 1e-6 && pos(grid, 3).y < pos(grid, 0).y);
        assert!(pos(linear, 3).x > pos(linear, 0).x && (pos(linear, 3).y - pos(linear, 0).y).abs() < 1e-6);
        assert!((linear.size.x - (8.0 * 0.28 * 1.2 - 0.28 * 0.2)).abs() < 1e-5);
    }

    #[test]
    fn vectors_are_a_column_or_a_grid_of_cubes() {
        let m = model(
            r#"{"name": "a", "op": "dense", "out_features": 10}, {"name": "b", "op": "dense", "out_features": 64}"#,
            "[5]",
        );
        let p = layout(&m, LayoutKind::Grid);
        let a = &p[1];
        assert!(a.neurons.iter().all(|n| (n.center.x - a.center.x).abs() < 1e-6));
        assert!(a.neurons[0].center.y > a.neurons[9].center.y);
        assert!((a.neurons[0].center.y - a.neurons[1].center.y - CUBE_PITCH).abs() < 1e-6);
        let b = &p[2];
        // 8×8: neuron 8 starts the second row.
        assert!((b.neurons[8].center.x - b.neurons[0].center.x).abs() < 1e-6);
        assert!((b.neurons[0].center.y - b.neurons[8].center.y - CUBE_PITCH).abs() < 1e-6);
        let (lo, hi) = bounds(&p);
        assert!(lo.z < hi.z && hi.z == -FIRST_DISTANCE);
    }

    fn quad_spec(shape: Shape) -> BlockSpec {
        BlockSpec {
            source: Source::Layer(0),
            name: "b".into(),
            shape,
            layers: vec![0],
            what: String::new(),
        }
    }

    #[test]
    fn cell_quads_cover_exactly_the_cells() {
        let local = local_placement(&quad_spec(Shape::Chw(2, 10, 10)), LayoutKind::Grid, 0.0);
        let t = &local.tiles[1];
        let q = cell_quad(t, (2, 4), (0, 9));
        let top_left = q.transform_point3(Vec3::new(-0.5, 0.5, 0.0));
        let bottom_right = q.transform_point3(Vec3::new(0.5, -0.5, 0.0));
        let want_tl = t
            .world_from_tile
            .transform_point3(Vec3::new(-0.5, 0.5 - 0.2, HIGHLIGHT_LIFT));
        let want_br = t
            .world_from_tile
            .transform_point3(Vec3::new(0.5, 0.5 - 0.5, HIGHLIGHT_LIFT));
        assert!((top_left - want_tl).length() < 1e-6 && (bottom_right - want_br).length() < 1e-6);
    }
}

//! What the renderer draws around the activations: layer labels, the output's class bars, the
//! floor grid with the play area, and highlights (a neuron's outline, its receptive field, its
//! connections, the pointer ray). Plain data, no Vulkan: everything here is unit-tested.

use glam::{Mat4, Vec3};

use crate::gfx::colormap::{Colormap, pack_srgb};
pub use crate::gfx::colormap::{NEGATIVE_COLOR, POSITIVE_COLOR};
use crate::gfx::text::{Align, Atlas};
use crate::gfx::{Camera, CubeInstance, DrawList, LineInstance, TileInstance};
use crate::nn::{Model, Shape};
use crate::scene::LayerPlacement;

/// Label text colors (sRGB).
pub const LABEL_COLOR: [f32; 3] = [0.92, 0.93, 0.95];
pub const DETAIL_COLOR: [f32; 3] = [0.62, 0.66, 0.72];
/// Output bars: the predicted class and the others.
pub const PREDICTED_COLOR: [f32; 3] = [1.0, 0.62, 0.15];
pub const BAR_COLOR: [f32; 3] = [0.35, 0.45, 0.6];
/// Floor grid, play-area outline.
pub const GRID_COLOR: [f32; 3] = [0.16, 0.18, 0.22];
pub const PLAY_AREA_COLOR: [f32; 3] = [0.25, 0.55, 0.75];
/// Hover and selection outlines, the receptive field, the pointer ray.
pub const HOVER_COLOR: [f32; 3] = [1.0, 1.0, 1.0];
pub const SELECT_COLOR: [f32; 3] = [1.0, 0.85, 0.1];
pub const FIELD_COLOR: [f32; 3] = [0.2, 0.95, 0.6];
pub const RAY_COLOR: [f32; 3] = [0.55, 0.8, 1.0];

/// The play area when the runtime gives none: 3 m × 3 m (x, z).
pub const DEFAULT_PLAY_AREA: (f32, f32) = (3.0, 3.0);
/// Cap height of a block's name, and of its detail line, in meters.
pub const NAME_HEIGHT: f32 = 0.03;
pub const DETAIL_HEIGHT: f32 = 0.018;
/// Output bars: length of a value of 1 and the gap to their cube, in meters.
pub const BAR_LENGTH: f32 = 0.3;
/// Outputs with more classes than this show as plain cubes.
pub const MAX_BARS: usize = 100;

/// How the block faces: its x (right) and y (up) axes in the world, and its outward normal.
pub fn block_frame(p: &LayerPlacement) -> Mat4 {
    let (right, up) = match p.tiles.first() {
        Some(t) => (
            t.world_from_tile.x_axis.truncate().normalize_or(Vec3::X),
            t.world_from_tile.y_axis.truncate().normalize_or(Vec3::Y),
        ),
        None => (Vec3::X, Vec3::Y),
    };
    Mat4::from_cols(
        right.extend(0.0),
        up.extend(0.0),
        right.cross(up).extend(0.0),
        p.center.extend(1.0),
    )
}

/// Where a neuron is drawn: its center and the edge of its cell, in the world. `index` is
/// `[c, y, x]` for maps and `[i]` for vectors; `None` when the block does not show it.
pub fn neuron_cell(p: &LayerPlacement, index: &[usize]) -> Option<(Vec3, f32)> {
    match (p.shape, index) {
        (Shape::Chw(..), &[c, y, x]) => {
            // A picture input is one tile showing every channel.
            let tile = p.tiles.iter().find(|t| t.channel == c).or(match p.tiles.as_slice() {
                [only] => Some(only),
                _ => None,
            })?;
            if y >= tile.h || x >= tile.w {
                return None;
            }
            let u = (x as f32 + 0.5) / tile.w as f32 - 0.5;
            let v = 0.5 - (y as f32 + 0.5) / tile.h as f32;
            let center = tile.world_from_tile.transform_point3(Vec3::new(u, v, 0.0));
            let edge = tile.world_from_tile.x_axis.truncate().length() / tile.w as f32;
            Some((center, edge))
        }
        (Shape::Flat(_), &[i]) => p.neurons.iter().find(|n| n.index == i).map(|n| (n.center, n.size)),
        _ => None,
    }
}

/// Lines from a neuron to points of the previous layer: one per input, colored by the sign of
/// its contribution and as wide as its share of the largest |contribution|.
pub fn connection_lines(from: Vec3, inputs: &[(Vec3, f32)]) -> Vec<LineInstance> {
    let max = inputs.iter().map(|(_, c)| c.abs()).fold(0.0, f32::max);
    inputs
        .iter()
        .map(|&(to, c)| {
            let share = if max > 0.0 { c.abs() / max } else { 0.0 };
            let color = if c < 0.0 { NEGATIVE_COLOR } else { POSITIVE_COLOR };
            LineInstance::new(from, to, 0.001 + 0.004 * share, color)
        })
        .collect()
}

/// The pointer: a ray from the controller (or mouse) to where it hits, with a dot at the hit.
pub fn pointer(origin: Vec3, end: Vec3, hit: bool, list: &mut DrawList) {
    list.lines.push(LineInstance::new(origin, end, 0.003, RAY_COLOR));
    if hit {
        list.cubes.push(solid_cube(end, 0.012, RAY_COLOR));
    }
}

pub fn solid_cube(center: Vec3, edge: f32, color: [f32; 3]) -> CubeInstance {
    CubeInstance {
        center_size: center.extend(edge).to_array(),
        value: pack_srgb(color),
        colormap: Colormap::Solid as u32,
        scale: 0.0,
        _pad: 0,
    }
}

/// A flat rectangle of one color: the unit quad mapped by `world_from_quad`.
pub fn solid_quad(world_from_quad: Mat4, color: [f32; 3]) -> TileInstance {
    TileInstance {
        world_from_tile: world_from_quad.to_cols_array_2d(),
        offset: pack_srgb(color),
        h: 1,
        w: 1,
        colormap: Colormap::Solid as u32,
        scale: 0.0,
        _pad: [0; 3],
    }
}

/// Floor lines every half meter over `min..max` (x, z) and the play area, a `play`-sized
/// rectangle (x, z meters) centered on the origin.
pub fn floor(min: Vec3, max: Vec3, play: (f32, f32)) -> Vec<LineInstance> {
    const STEP: f32 = 0.5;
    const Y: f32 = 0.0;
    let (hx, hz) = (play.0 / 2.0, play.1 / 2.0);
    let lo = (min.min(Vec3::new(-hx, 0.0, -hz)) / STEP).floor() * STEP - STEP;
    let hi = (max.max(Vec3::new(hx, 0.0, hz)) / STEP).ceil() * STEP + STEP;
    let mut lines = Vec::new();
    let mut x = lo.x;
    while x <= hi.x + 1e-4 {
        lines.push(LineInstance::new(
            Vec3::new(x, Y, lo.z),
            Vec3::new(x, Y, hi.z),
            0.006,
            GRID_COLOR,
        ));
        x += STEP;
    }
    let mut z = lo.z;
    while z <= hi.z + 1e-4 {
        lines.push(LineInstance::new(
            Vec3::new(lo.x, Y, z),
            Vec3::new(hi.x, Y, z),
            0.006,
            GRID_COLOR,
        ));
        z += STEP;
    }
    // Slightly above the grid so it wins the depth test.
    let corners = [(-hx, -hz), (hx, -hz), (hx, hz), (-hx, hz)].map(|(x, z)| Vec3::new(x, 0.002, z));
    for k in 0..4 {
        lines.push(LineInstance::new(
            corners[k],
            corners[(k + 1) % 4],
            0.02,
            PLAY_AREA_COLOR,
        ));
    }
    lines
}

/// The per-layer change marks' color.
pub const CHANGE_COLOR: [f32; 3] = [1.0, 0.45, 0.2];
/// Length of a change mark at 100 % change, in meters.
pub const CHANGE_LENGTH: f32 = 0.3;

/// Under each block, how much its values changed since the previous checkpoint (`changes[k]`,
/// relative): a bar as long as the change (full length at 100 %) and its percentage.
pub fn change_marks<P: std::borrow::Borrow<LayerPlacement>>(
    placements: &[P],
    changes: &[f32],
    since: &str,
    list: &mut DrawList,
) {
    let atlas = Atlas::get();
    for (p, &change) in placements.iter().map(std::borrow::Borrow::borrow).zip(changes) {
        if !change.is_finite() {
            continue;
        }
        let frame = block_frame(p);
        let below = -p.size.y / 2.0 - 0.03;
        let len = (change.min(1.0) * CHANGE_LENGTH).max(0.002);
        let bar = frame
            * Mat4::from_translation(Vec3::new(-CHANGE_LENGTH / 2.0 + len / 2.0, below, 0.001))
            * Mat4::from_scale(Vec3::new(len, 0.012, 1.0));
        list.tiles.push(solid_quad(bar, CHANGE_COLOR));
        let text = format!("Δ {:.0}% since {since}", change * 100.0);
        let at = frame * Mat4::from_translation(Vec3::new(-CHANGE_LENGTH / 2.0, below - 0.03, 0.001));
        list.glyphs.extend(atlas.layout(
            &text,
            at,
            0.012,
            Align::Left,
            [CHANGE_COLOR[0], CHANGE_COLOR[1], CHANGE_COLOR[2], 1.0],
        ));
    }
}

/// A shape as the labels write it: `8×26×26` or `10`.
fn shape_text(shape: Shape) -> String {
    match shape {
        Shape::Chw(c, h, w) => format!("{c}×{h}×{w}"),
        Shape::Flat(n) => n.to_string(),
    }
}

/// A value for a label: 3 significant digits.
fn short(v: f32) -> String {
    let a = v.abs();
    if a != 0.0 && !(0.01..10000.0).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Per displayed block: its values and how they are colored.
pub struct BlockValues<'a> {
    pub values: &'a [f32],
    pub colormap: Colormap,
    /// 1 / max |value| (0 when all are 0).
    pub scale: f32,
}

/// Each block's name above it, and under the name its shape and value range (what the colormap's
/// end stands for). The output block also gets its class bars.
pub fn labels(model: &Model, placements: &[LayerPlacement], blocks: &[BlockValues], list: &mut DrawList) {
    let atlas = Atlas::get();
    let rgba = |c: [f32; 3]| [c[0], c[1], c[2], 1.0];
    for (k, (p, b)) in placements.iter().zip(blocks).enumerate() {
        let frame = block_frame(p);
        let top = frame * Mat4::from_translation(Vec3::new(0.0, p.size.y / 2.0 + 0.025, 0.0));
        let detail_at = top;
        let name_at = top * Mat4::from_translation(Vec3::new(0.0, DETAIL_HEIGHT * 1.6, 0.0));
        list.glyphs
            .extend(atlas.layout(&p.name, name_at, NAME_HEIGHT, Align::Center, rgba(LABEL_COLOR)));
        let range = match b.colormap {
            Colormap::Grey | Colormap::Rgb => "input".to_owned(),
            Colormap::Diverging if b.scale > 0.0 => format!("±{}", short(1.0 / b.scale)),
            _ if b.scale > 0.0 => format!("0…{}", short(1.0 / b.scale)),
            _ => "all 0".to_owned(),
        };
        // What made the block, then its shape and the colormap's range.
        let detail = if p.what.is_empty() {
            format!("{} · {range}", shape_text(p.shape))
        } else {
            format!("{} · {} · {range}", p.what, shape_text(p.shape))
        };
        list.glyphs
            .extend(atlas.layout(&detail, detail_at, DETAIL_HEIGHT, Align::Center, rgba(DETAIL_COLOR)));
        if k + 1 == placements.len() && k > 0 {
            output_bars(model, p, b.values, list);
        }
    }
}

/// A line of text under a block (the input's hint when there is nothing to run on).
pub fn hint(p: &LayerPlacement, text: &str, list: &mut DrawList) {
    let frame = block_frame(p);
    let at = frame * Mat4::from_translation(Vec3::new(0.0, -p.size.y / 2.0 - NAME_HEIGHT * 1.5, 0.0));
    let c = PREDICTED_COLOR;
    list.glyphs
        .extend(Atlas::get().layout(text, at, NAME_HEIGHT, Align::Center, [c[0], c[1], c[2], 1.0]));
}

/// Bars for the output block's neurons, its class names beside them, the predicted class (the
/// largest value) highlighted.
fn output_bars(model: &Model, p: &LayerPlacement, values: &[f32], list: &mut DrawList) {
    let Shape::Flat(n) = p.shape else { return };
    if n > MAX_BARS || p.neurons.is_empty() {
        return;
    }
    let atlas = Atlas::get();
    let frame = block_frame(p);
    let right = frame.x_axis.truncate();
    let predicted = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i);
    // Softmax outputs are probabilities; other outputs are scaled by their largest magnitude.
    let max_abs = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| m.max(v.abs()));
    let unit = if max_abs <= 1.0 { 1.0 } else { 1.0 / max_abs };
    for cube in &p.neurons {
        let v = values.get(cube.index).copied().filter(|v| v.is_finite()).unwrap_or(0.0);
        let color = if Some(cube.index) == predicted {
            PREDICTED_COLOR
        } else {
            BAR_COLOR
        };
        let len = (v.abs() * unit * BAR_LENGTH).max(0.002);
        let start = cube.center + right * (cube.size * 0.75);
        let bar_center = start + right * (len / 2.0);
        let world_from_quad = Mat4::from_cols(
            (right * len).extend(0.0),
            (frame.y_axis.truncate() * cube.size * 0.7).extend(0.0),
            frame.z_axis,
            bar_center.extend(1.0),
        );
        list.tiles.push(solid_quad(world_from_quad, color));
        let name = model
            .classes
            .as_ref()
            .and_then(|c| c.get(cube.index))
            .cloned()
            .unwrap_or_else(|| cube.index.to_string());
        let label_at = Mat4::from_cols(
            frame.x_axis,
            frame.y_axis,
            frame.z_axis,
            (cube.center - right * (cube.size * 0.9) - frame.y_axis.truncate() * (cube.size * 0.3)).extend(1.0),
        );
        let text_color = if Some(cube.index) == predicted {
            PREDICTED_COLOR
        } else {
            LABEL_COLOR
        };
        let label = format!("{name} {}", short(v));
        list.glyphs.extend(atlas.layout(
            &label,
            label_at,
            cube.size * 0.55,
            Align::Right,
            [text_color[0], text_color[1], text_color[2], 1.0],
        ));
    }
}

/// The camera of a named view: `overview` (the whole network), `input`, `output`, or a layer
/// name (the block showing it, from the front, its label and bars in the frame). `None` for an
/// unknown name.
pub fn named_view(placements: &[LayerPlacement], name: &str, aspect: f32) -> Option<Camera> {
    let p = match name {
        "overview" => {
            let (min, max) = crate::scene::layout::bounds(placements);
            return Some(Camera::overview(min, max, aspect));
        }
        "input" => placements.first(),
        "output" => placements.last(),
        layer => placements
            .iter()
            .find(|p| p.name == layer || p.name.split('+').any(|part| part == layer)),
    }?;
    let frame = block_frame(p);
    let label = 0.12;
    // Vectors have class names on the left and bars on the right.
    let sides = if p.tiles.is_empty() { 4.0 * BAR_LENGTH } else { 0.0 };
    let center = p.center + frame.y_axis.truncate() * (label / 2.0);
    Some(Camera::facing(
        center,
        frame.z_axis.truncate(),
        p.size.x + sides,
        p.size.y + label,
        aspect,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::{LayoutKind, layout};
    use std::path::Path;

    fn model() -> Model {
        let json = r#"{"format": "netwalk-model/1", "name": "t", "weights": "w.safetensors",
            "input": {"name": "image", "shape": [1, 6, 6]},
            "classes": ["zero", "one", "two"],
            "layers": [{"name": "conv", "op": "conv2d", "out_channels": 2, "kernel": 3},
                       {"name": "flat", "op": "flatten"},
                       {"name": "fc", "op": "dense", "out_features": 3}]}"#;
        Model::parse(json, Path::new("/x/model.json")).expect("valid")
    }

    #[test]
    fn neuron_cells_are_where_the_tiles_put_them() {
        let p = layout(&model(), LayoutKind::Grid);
        let conv = &p[1];
        // Tile of 4×4 cells 0.04 m wide: cell (0, 0) is the top-left one.
        let t = &conv.tiles[1];
        let (c, edge) = neuron_cell(conv, &[1, 0, 0]).expect("cell");
        let top_left = t.world_from_tile.transform_point3(Vec3::new(-0.5, 0.5, 0.0));
        assert!((edge - 0.01).abs() < 1e-6, "{edge}");
        assert!((c - (top_left + Vec3::new(0.005, -0.005, 0.0))).length() < 1e-6);
        assert!(neuron_cell(conv, &[2, 0, 0]).is_none());
        assert!(neuron_cell(conv, &[0, 4, 0]).is_none());
        let fc = &p[2];
        assert_eq!(neuron_cell(fc, &[2]).map(|c| c.0), Some(fc.neurons[2].center));
        // The picture input: every channel is the one tile.
        assert!(neuron_cell(&p[0], &[0, 5, 5]).is_some());
    }

    #[test]
    fn labels_name_every_block_and_bars_highlight_the_prediction() {
        let m = model();
        let p = layout(&m, LayoutKind::Grid);
        let input = vec![0.5f32; 36];
        let conv = vec![1.0f32; 32];
        let out = [0.1f32, 0.7, 0.2];
        let blocks = [
            BlockValues {
                values: &input,
                colormap: Colormap::Grey,
                scale: 1.0,
            },
            BlockValues {
                values: &conv,
                colormap: Colormap::Sequential,
                scale: 1.0,
            },
            BlockValues {
                values: &out,
                colormap: Colormap::Sequential,
                scale: 1.0 / 0.7,
            },
        ];
        let mut list = DrawList::default();
        labels(&m, &p, &blocks, &mut list);
        // Three bars (solid quads), the predicted one ("one", 0.7) in the highlight color.
        let bars: Vec<&TileInstance> = list
            .tiles
            .iter()
            .filter(|t| t.colormap == Colormap::Solid as u32)
            .collect();
        assert_eq!(bars.len(), 3);
        assert_eq!(bars[1].offset, pack_srgb(PREDICTED_COLOR));
        assert_eq!(bars[0].offset, pack_srgb(BAR_COLOR));
        // Bar length is the value: 0.7 · BAR_LENGTH.
        assert!((bars[1].world_from_tile[0][0] - 0.7 * BAR_LENGTH).abs() < 1e-5);
        // Glyphs: names + details (what made the block, its shape and range) of 3 blocks + 3 class
        // labels, all above/beside their blocks.
        let atlas = Atlas::get();
        let count = |s: &str| s.chars().filter(|c| !c.is_whitespace()).count();
        let want = count("image")
            + count("1×6×6 · input")
            + count("conv")
            + count("conv 3×3 · 2×4×4 · 0…1.00")
            + count("fc")
            + count("dense · 3 · 0…0.70")
            + count("zero 0.10")
            + count("one 0.70")
            + count("two 0.20");
        assert_eq!(list.glyphs.len(), want);
        let name_y = list.glyphs[0].origin[1];
        assert!(name_y > p[0].center.y + p[0].size.y / 2.0);
        assert!(atlas.measure("image") > 0.0);
    }

    #[test]
    fn change_marks_are_as_long_as_the_change() {
        let p = layout(&model(), LayoutKind::Grid);
        let mut list = DrawList::default();
        change_marks(&p, &[0.0, 0.5, 2.0], "init", &mut list);
        assert_eq!(list.tiles.len(), 3);
        assert!((list.tiles[1].world_from_tile[0][0] - 0.5 * CHANGE_LENGTH).abs() < 1e-6);
        // More than 100 % is drawn full length; the label says the real number.
        assert!((list.tiles[2].world_from_tile[0][0] - CHANGE_LENGTH).abs() < 1e-6);
        assert!(list.tiles.iter().all(|t| t.offset == pack_srgb(CHANGE_COLOR)));
        let count = |s: &str| s.chars().filter(|c| !c.is_whitespace()).count();
        let want = count("Δ 0% since init") + count("Δ 50% since init") + count("Δ 200% since init");
        assert_eq!(list.glyphs.len(), want);
    }

    #[test]
    fn floor_covers_the_network_and_outlines_the_play_area() {
        let lines = floor(Vec3::new(-0.5, 1.0, -6.0), Vec3::new(0.5, 2.0, -1.0), (3.0, 3.0));
        let play: Vec<&LineInstance> = lines.iter().filter(|l| l.color[..3] == PLAY_AREA_COLOR).collect();
        assert_eq!(play.len(), 4);
        assert!(play.iter().all(|l| l.a[0].abs() == 1.5 && l.a[2].abs() == 1.5));
        let min_z = lines.iter().map(|l| l.a[2].min(l.b[2])).fold(f32::MAX, f32::min);
        assert!(min_z <= -6.0);
        assert!(lines.iter().all(|l| l.a[1] < 0.01 && l.b[1] < 0.01));
    }

    #[test]
    fn connections_are_colored_by_sign_and_sized_by_contribution() {
        let lines = connection_lines(Vec3::ZERO, &[(Vec3::X, 2.0), (Vec3::Y, -1.0), (Vec3::Z, 0.0)]);
        assert_eq!(lines[0].color[..3], POSITIVE_COLOR);
        assert_eq!(lines[1].color[..3], NEGATIVE_COLOR);
        assert!(lines[0].a[3] > lines[1].a[3] && lines[1].a[3] > lines[2].a[3]);
        assert_eq!(short(1234.5), "1234");
        assert_eq!(short(0.001234), "1.23e-3");
    }
}

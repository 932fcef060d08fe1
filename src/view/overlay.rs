//! The per-frame overlay drawn over the network: hover and selection outlines, the receptive
//! field, the selected neuron's connections to its strongest inputs, pointer rays, the sample
//! tray and the inspect panel (text, and the kernel as a small image). Plain data from the
//! scene's [`SceneDraw`], no Vulkan.

use glam::{Mat4, Vec3};

use super::annotate::{
    FIELD_COLOR, HOVER_COLOR, LABEL_COLOR, NEGATIVE_COLOR, POSITIVE_COLOR, SELECT_COLOR, connection_lines, neuron_cell,
    pointer, solid_quad,
};
use crate::gfx::colormap::{self, Colormap};
use crate::gfx::text::{Align, Atlas};
use crate::gfx::{DrawList, LineInstance, TileInstance};
use crate::scene::draw::PANEL_SIZE;
use crate::scene::{Highlight, PanelDraw, SceneDraw};

/// Panel background and its border (sRGB).
pub const PANEL_COLOR: [f32; 3] = [0.1, 0.11, 0.14];
pub const PANEL_BORDER: [f32; 3] = [0.3, 0.34, 0.4];
/// Outline of the grabbed block.
pub const GRAB_COLOR: [f32; 3] = [0.4, 0.8, 1.0];

/// Outlines of a highlight's quads (each maps the unit quad onto the marked cells).
fn outline(h: &Highlight, width: f32, color: [f32; 3], list: &mut DrawList) {
    for q in &h.quads {
        let corners =
            [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)].map(|(x, y)| q.transform_point3(Vec3::new(x, y, 0.0)));
        for k in 0..4 {
            list.lines
                .push(LineInstance::new(corners[k], corners[(k + 1) % 4], width, color));
        }
    }
}

/// A box's 12 edges.
fn box_edges(lo: Vec3, hi: Vec3, width: f32, color: [f32; 3], list: &mut DrawList) {
    let c = |i: usize| Vec3::select(glam::BVec3::new(i & 1 != 0, i & 2 != 0, i & 4 != 0), hi, lo);
    for (a, b) in [
        (0, 1),
        (2, 3),
        (4, 5),
        (6, 7),
        (0, 2),
        (1, 3),
        (4, 6),
        (5, 7),
        (0, 4),
        (1, 5),
        (2, 6),
        (3, 7),
    ] {
        list.lines.push(LineInstance::new(c(a), c(b), width, color));
    }
}

/// The overlay of one frame. `tray_tiles` are the sample tray's tiles (made by the caller, who
/// knows where the samples' values are).
pub fn build(scene: &SceneDraw, tray_tiles: Vec<TileInstance>) -> DrawList {
    let mut list = DrawList {
        tiles: tray_tiles,
        ..DrawList::default()
    };
    for b in &scene.blocks {
        if b.grabbed {
            box_edges(b.bounds.0, b.bounds.1, 0.004, GRAB_COLOR, &mut list);
        }
    }
    for (_, h) in &scene.hovered {
        outline(h, 0.0015, HOVER_COLOR, &mut list);
    }
    for h in &scene.receptive_field {
        outline(h, 0.002, FIELD_COLOR, &mut list);
    }
    if let Some(h) = &scene.selected {
        outline(h, 0.003, SELECT_COLOR, &mut list);
    }
    for t in &scene.tray {
        if t.hovered || t.current {
            let color = if t.current { SELECT_COLOR } else { HOVER_COLOR };
            let quads = Highlight {
                block: 0,
                neuron: None,
                quads: vec![t.stage_from_tile * Mat4::from_scale(Vec3::new(1.1, 1.1, 1.0))],
            };
            outline(&quads, 0.002, color, &mut list);
        }
    }
    if let Some(p) = &scene.panel {
        connections(scene, p, &mut list);
        panel(p, &mut list);
    }
    for r in &scene.rays {
        pointer(r.origin, r.end, r.hit, &mut list);
    }
    list
}

/// Lines from the selected neuron to its strongest inputs where they are shown.
fn connections(scene: &SceneDraw, p: &PanelDraw, list: &mut DrawList) {
    let cell = |block: usize, index: &[usize]| {
        scene
            .blocks
            .get(block)
            .and_then(|b| neuron_cell(&b.placement, index))
            .map(|(c, _)| c)
    };
    let Some(from) = cell(p.panel.neuron.block, &p.panel.neuron.index) else {
        return;
    };
    let inputs: Vec<(Vec3, f32)> = p
        .panel
        .inputs
        .iter()
        .filter_map(|i| {
            let shown = i.shown.as_ref()?;
            Some((cell(shown.block, &shown.index)?, i.contribution.unwrap_or(i.activation)))
        })
        .collect();
    list.lines.extend(connection_lines(from, &inputs));
}

/// A number for the panel: 4 significant digits.
fn num(v: f32) -> String {
    let a = v.abs();
    if a != 0.0 && !(0.001..10000.0).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn index_text(index: &[usize]) -> String {
    let parts: Vec<String> = index.iter().map(usize::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// The inspect panel: a dark card with the neuron's numbers, its top inputs and its kernel.
fn panel(p: &PanelDraw, list: &mut DrawList) {
    let atlas = Atlas::get();
    let (w, h) = PANEL_SIZE;
    let frame = p.stage_from_panel;
    // Panel units: meters from its center, x right, y up, on its front face.
    let at = |x: f32, y: f32| frame * Mat4::from_translation(Vec3::new(x, y, 0.001));
    list.tiles
        .push(solid_quad(frame * Mat4::from_scale(Vec3::new(w, h, 1.0)), PANEL_COLOR));
    let corners = [
        (-w / 2.0, -h / 2.0),
        (w / 2.0, -h / 2.0),
        (w / 2.0, h / 2.0),
        (-w / 2.0, h / 2.0),
    ]
    .map(|(x, y)| frame.transform_point3(Vec3::new(x, y, 0.0005)));
    for k in 0..4 {
        list.lines
            .push(LineInstance::new(corners[k], corners[(k + 1) % 4], 0.002, PANEL_BORDER));
    }
    let panel = &p.panel;
    let left = -w / 2.0 + 0.015;
    let mut y = h / 2.0 - 0.03;
    let mut line = |text: &str, cap: f32, color: [f32; 3], y: &mut f32| {
        list.glyphs.extend(atlas.layout(
            text,
            at(left, *y),
            cap,
            Align::Left,
            [color[0], color[1], color[2], 1.0],
        ));
        *y -= cap * 1.75;
    };
    line(
        &format!("{} {}", panel.layer, index_text(&panel.neuron.index)),
        0.014,
        LABEL_COLOR,
        &mut y,
    );
    let mut numbers = format!("activation {}", num(panel.activation));
    if let Some(pre) = panel.pre_activation {
        numbers += &format!("   pre-activation {}", num(pre));
    }
    if let Some(b) = panel.bias {
        numbers += &format!("   bias {}", num(b));
    }
    line(&numbers, 0.009, LABEL_COLOR, &mut y);
    line(
        &format!(
            "{} inputs; strongest {}: weight × activation",
            panel.input_count,
            panel.inputs.len()
        ),
        0.008,
        [0.62, 0.66, 0.72],
        &mut y,
    );
    for i in &panel.inputs {
        let text = match (i.weight, i.contribution) {
            (Some(w), Some(c)) => format!(
                "{}{}  {} × {} = {}",
                i.layer,
                index_text(&i.index),
                num(w),
                num(i.activation),
                num(c)
            ),
            _ => format!("{}{}  {}", i.layer, index_text(&i.index), num(i.activation)),
        };
        let color = match i.contribution {
            Some(c) if c < 0.0 => NEGATIVE_COLOR,
            Some(_) => POSITIVE_COLOR,
            None => LABEL_COLOR,
        };
        line(&text, 0.008, color, &mut y);
    }
    // The kernel: each input channel's h×w weights as a little diverging-colored image, in a
    // column at the panel's right edge (at most 8 channels).
    if let Some(k) = &panel.kernel {
        let max = k
            .values
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
        let cell = (0.08 / k.w.max(k.h) as f32).min(0.012);
        let channels = k.channels.min(8);
        let right = w / 2.0 - 0.015;
        for c in 0..channels {
            let top = h / 2.0 - 0.03 - c as f32 * (k.h as f32 * cell + 0.006);
            for y in 0..k.h {
                for x in 0..k.w {
                    let v = k.values[(c * k.h + y) * k.w + x];
                    let center = Vec3::new(
                        right - (k.w - x) as f32 * cell + cell / 2.0,
                        top - y as f32 * cell - cell / 2.0,
                        0.001,
                    );
                    let quad = frame * Mat4::from_translation(center) * Mat4::from_scale(Vec3::new(cell, cell, 1.0));
                    list.tiles
                        .push(solid_quad(quad, colormap::color(Colormap::Diverging, v, scale)));
                }
            }
        }
    }
}

/// Timeline panel size (meters) and curve colors.
pub const TIMELINE_SIZE: (f32, f32) = (0.5, 0.25);
pub const ACCURACY_COLOR: [f32; 3] = [0.35, 0.85, 0.45];
pub const LOSS_COLOR: [f32; 3] = [0.95, 0.55, 0.25];
pub const MARKER_COLOR: [f32; 3] = [1.0, 1.0, 1.0];

/// Where the curve area of the timeline panel is, in panel units (meters from its center).
fn curve_box() -> (glam::Vec2, glam::Vec2) {
    let (w, h) = TIMELINE_SIZE;
    (
        glam::Vec2::new(-w / 2.0 + 0.02, -h / 2.0 + 0.04),
        glam::Vec2::new(w / 2.0 - 0.02, h / 2.0 - 0.06),
    )
}

/// The x (panel units) of a timeline position on the curve, for `n` checkpoints.
pub fn timeline_x(position: f32, n: usize) -> f32 {
    let (lo, hi) = curve_box();
    lo.x + (hi.x - lo.x) * position / (n.max(2) - 1) as f32
}

/// The training timeline: held-out accuracy (green, 0..1) and training loss (orange, scaled to
/// its largest value) per checkpoint, the current position as a white marker, and the nearest
/// checkpoint's label. `position` `None`: the final weights (the end).
pub fn timeline_panel(
    stage_from_panel: Mat4,
    info: &[crate::nn::timeline::CheckpointInfo],
    position: Option<f32>,
    playing: bool,
    list: &mut DrawList,
) {
    let n = info.len();
    if n == 0 {
        return;
    }
    let (w, h) = TIMELINE_SIZE;
    let frame = stage_from_panel;
    list.tiles
        .push(solid_quad(frame * Mat4::from_scale(Vec3::new(w, h, 1.0)), PANEL_COLOR));
    let at = |x: f32, y: f32| frame.transform_point3(Vec3::new(x, y, 0.001));
    let (lo, hi) = curve_box();
    let y_of = |v: f32| lo.y + (hi.y - lo.y) * v.clamp(0.0, 1.0);
    // Axes.
    list.lines
        .push(LineInstance::new(at(lo.x, lo.y), at(hi.x, lo.y), 0.0015, PANEL_BORDER));
    list.lines
        .push(LineInstance::new(at(lo.x, lo.y), at(lo.x, hi.y), 0.0015, PANEL_BORDER));
    let max_loss = info.iter().filter_map(|c| c.train_loss).fold(0f32, f32::max);
    // Held-out accuracy as it is (0..1); loss scaled to its largest value.
    let accuracy: Vec<Option<f32>> = info.iter().map(|c| c.heldout_accuracy).collect();
    let loss: Vec<Option<f32>> = info
        .iter()
        .map(|c| c.train_loss.filter(|_| max_loss > 0.0).map(|l| l / max_loss))
        .collect();
    for (values, color) in [(accuracy, ACCURACY_COLOR), (loss, LOSS_COLOR)] {
        let points: Vec<Option<Vec3>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| v.map(|v| at(timeline_x(i as f32, n), y_of(v))))
            .collect();
        for pair in points.windows(2) {
            if let [Some(a), Some(b)] = pair {
                list.lines.push(LineInstance::new(*a, *b, 0.003, color));
            }
        }
    }
    let p = position.unwrap_or((n - 1) as f32).clamp(0.0, (n - 1) as f32);
    let x = timeline_x(p, n);
    list.lines.push(LineInstance::new(
        at(x, lo.y - 0.01),
        at(x, hi.y + 0.01),
        0.003,
        MARKER_COLOR,
    ));
    let atlas = Atlas::get();
    let nearest = (p.round() as usize).min(n - 1);
    let acc = info[nearest]
        .heldout_accuracy
        .map_or(String::new(), |a| format!("  held-out accuracy {:.1}%", a * 100.0));
    let title = format!("training: {} ({p:.2}){acc}", info[nearest].label);
    let rgba = |c: [f32; 3]| [c[0], c[1], c[2], 1.0];
    let text_at = |x: f32, y: f32| frame * Mat4::from_translation(Vec3::new(x, y, 0.001));
    list.glyphs.extend(atlas.layout(
        &title,
        text_at(-w / 2.0 + 0.02, h / 2.0 - 0.035),
        0.012,
        Align::Left,
        rgba(LABEL_COLOR),
    ));
    list.glyphs.extend(atlas.layout(
        &info[0].label,
        text_at(lo.x, lo.y - 0.025),
        0.009,
        Align::Left,
        rgba(LABEL_COLOR),
    ));
    list.glyphs.extend(atlas.layout(
        &info[n - 1].label,
        text_at(hi.x, lo.y - 0.025),
        0.009,
        Align::Right,
        rgba(LABEL_COLOR),
    ));
    // The play state, and how to change it.
    let state = if playing { PLAYING_TEXT } else { PAUSED_TEXT };
    list.glyphs.extend(atlas.layout(
        state,
        text_at((lo.x + hi.x) / 2.0, lo.y - 0.025),
        0.009,
        Align::Center,
        rgba(if playing { MARKER_COLOR } else { LABEL_COLOR }),
    ));
}

/// The timeline panel's play-state line.
pub const PLAYING_TEXT: &str = "playing (Space / left stick up: pause)";
pub const PAUSED_TEXT: &str = "Space / left stick up: play";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfx::colormap::pack_srgb;
    use crate::input::Hand;
    use crate::scene::RayDraw;

    #[test]
    fn the_timeline_panel_draws_both_curves_and_the_marker_at_the_position() {
        use crate::nn::timeline::CheckpointInfo;
        let info: Vec<CheckpointInfo> = (0..5)
            .map(|i| CheckpointInfo {
                label: format!("c{i}"),
                heldout_accuracy: Some(0.2 * i as f32),
                train_loss: Some(2.0 - 0.4 * i as f32),
                ..CheckpointInfo::default()
            })
            .collect();
        let mut list = DrawList::default();
        timeline_panel(Mat4::IDENTITY, &info, Some(2.5), false, &mut list);
        let count = |c: [f32; 3]| list.lines.iter().filter(|l| l.color[..3] == c).count();
        assert_eq!(
            (count(ACCURACY_COLOR), count(LOSS_COLOR), count(MARKER_COLOR)),
            (4, 4, 1)
        );
        let marker = list
            .lines
            .iter()
            .find(|l| l.color[..3] == MARKER_COLOR)
            .expect("marker");
        assert!((marker.a[0] - timeline_x(2.5, 5)).abs() < 1e-6);
        // Halfway along the curve's width at 2 of 4 steps, the accuracy curve passes 0.4 of its height.
        let (lo, hi) = curve_box();
        let acc: Vec<&LineInstance> = list.lines.iter().filter(|l| l.color[..3] == ACCURACY_COLOR).collect();
        assert!((acc[2].a[0] - (lo.x + hi.x) / 2.0).abs() < 1e-6);
        assert!((acc[2].a[1] - (lo.y + 0.4 * (hi.y - lo.y))).abs() < 1e-6);
        assert_eq!(list.tiles.len(), 1);
        assert!(!list.glyphs.is_empty());
    }

    #[test]
    fn highlights_become_outlines_in_their_colors() {
        let quad = Mat4::from_translation(Vec3::new(0.0, 1.0, -2.0)) * Mat4::from_scale(Vec3::new(0.02, 0.02, 1.0));
        let h = Highlight {
            block: 1,
            neuron: Some(vec![0, 1, 2]),
            quads: vec![quad],
        };
        let scene = SceneDraw {
            hovered: vec![(Hand::Right, h.clone())],
            selected: Some(h.clone()),
            receptive_field: vec![h],
            rays: vec![RayDraw {
                hand: Hand::Right,
                origin: Vec3::new(0.2, 1.3, -0.5),
                end: Vec3::new(0.0, 1.0, -2.0),
                hit: true,
            }],
            ..SceneDraw::default()
        };
        let list = build(&scene, Vec::new());
        // 4 edges each for hover, field, selection; the ray; its hit dot.
        assert_eq!(list.lines.len(), 13);
        let by_color = |c: [f32; 3]| list.lines.iter().filter(|l| l.color[..3] == c).count();
        assert_eq!(
            (by_color(HOVER_COLOR), by_color(FIELD_COLOR), by_color(SELECT_COLOR)),
            (4, 4, 4)
        );
        // The selection outline runs along the quad's edges: corners ±0.01 around (0, 1, -2).
        let sel: Vec<&LineInstance> = list.lines.iter().filter(|l| l.color[..3] == SELECT_COLOR).collect();
        assert!((sel[0].a[0] + 0.01).abs() < 1e-6 && (sel[0].a[1] - 0.99).abs() < 1e-6);
        assert_eq!(list.cubes.len(), 1);
        assert_eq!(list.cubes[0].value, pack_srgb(crate::view::annotate::RAY_COLOR));
    }
}

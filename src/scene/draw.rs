//! What the renderer reads from the scene each frame: [`SceneDraw`], plain data in stage space
//! (meters, +Y up). Built by [`scene_draw`] after [`super::systems::update`].
//!
//! - `blocks[k]`: block `k` (0 = the input) as it stands now: `placement` has every tile and cube
//!   in stage space with fold and layout applied (pass `placements()` to `gfx::NetworkDraw::new`,
//!   whose value order it keeps), `stage_from_block` its rigid placement (with the root's scale),
//!   `bounds` its stage-space box, and flags for highlighting.
//! - Highlights are lists of quads: each `Mat4` maps the unit quad (−0.5..0.5 in x and y, z = 0,
//!   facing +Z) onto the marked cells in stage space, lifted 2 mm in front of the tile or cube face.
//!   `hovered`: one entry per hand pointing at a block (no quads in a gap between tiles);
//!   `selected`: the selected neuron; `receptive_field`: its receptive field in each earlier
//!   block (the last entry is the previous block).
//! - `rays`: one per tracked hand, from the aim pose to the hit point (`hit`) or 10 m out.
//! - `tray`: the sample tray, one tile per bundled sample (draw sample `sample`'s image on the
//!   unit quad mapped by `stage_from_tile`, row 0 at +y like a tile), `hovered` when a ray points
//!   at it, `current` for the sample last chosen.
//! - `drawing`: the input block is in draw mode (the user paints the input on it).
//! - `panel`: the inspect panel's data and `stage_from_panel`, a pose for a 0.4 m × 0.3 m panel
//!   (unit quad scaled by the renderer) standing to the right of the selected block, facing the
//!   same way.

use glam::{Mat4, Quat, Vec3};

use super::inspect::{self, Panel};
use super::layout::{LayerPlacement, LayoutKind};
use super::world::{Fold, GrabTarget, Layout, NeuronRef, Placed, Scene, TRAY_TILE, TrayItem};
use crate::input::Hand;

#[derive(Debug, Clone, PartialEq)]
pub struct BlockDraw {
    /// Stage-space tiles and cubes (and center, scaled size).
    pub placement: LayerPlacement,
    /// Block space (facing +Z) to stage space.
    pub stage_from_block: Mat4,
    /// Stage-space axis-aligned bounds (min, max) of the block's current box.
    pub bounds: (Vec3, Vec3),
    pub layout: LayoutKind,
    /// Fold animation: 0 expanded … 1 folded.
    pub fold: f32,
    pub hovered: bool,
    pub selected: bool,
    pub grabbed: bool,
}

/// Marked cells of one block.
#[derive(Debug, Clone, PartialEq)]
pub struct Highlight {
    pub block: usize,
    /// The neuron marked (`[c, y, x]` or `[i]`), if one.
    pub neuron: Option<Vec<usize>>,
    /// Stage-space quads (see the module documentation).
    pub quads: Vec<Mat4>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RayDraw {
    pub hand: Hand,
    pub origin: Vec3,
    pub end: Vec3,
    pub hit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrayDraw {
    pub sample: usize,
    pub stage_from_tile: Mat4,
    pub hovered: bool,
    pub current: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PanelDraw {
    pub panel: Panel,
    pub stage_from_panel: Mat4,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SceneDraw {
    pub blocks: Vec<BlockDraw>,
    pub hovered: Vec<(Hand, Highlight)>,
    pub selected: Option<Highlight>,
    pub receptive_field: Vec<Highlight>,
    pub rays: Vec<RayDraw>,
    pub tray: Vec<TrayDraw>,
    /// Draw mode is on for the input block (show it as a canvas).
    pub drawing: bool,
    pub panel: Option<PanelDraw>,
}

impl SceneDraw {
    /// The blocks' stage-space placements, in block order (for `gfx::NetworkDraw::new`).
    pub fn placements(&self) -> Vec<LayerPlacement> {
        self.blocks.iter().map(|b| b.placement.clone()).collect()
    }
}

/// Panel size the pose in [`PanelDraw`] is made for (meters, before the root's scale).
pub const PANEL_SIZE: (f32, f32) = (0.4, 0.3);

pub fn scene_draw(scene: &Scene) -> SceneDraw {
    let mut out = SceneDraw::default();
    let grabbed: Vec<hecs::Entity> = scene
        .hands
        .iter()
        .filter_map(|h| match h.grab {
            Some(GrabTarget::Block { entity, .. }) => Some(entity),
            _ => None,
        })
        .collect();
    for (k, &e) in scene.blocks.iter().enumerate() {
        let (Some(placement), Some(bounds), Some(placed)) = (scene.placement(k), scene.bounds(k), scene.placed(k))
        else {
            continue;
        };
        out.blocks.push(BlockDraw {
            placement,
            stage_from_block: placed.to_mat4(),
            bounds,
            layout: scene.world.get::<&Layout>(e).map(|l| l.0).unwrap_or_default(),
            fold: scene.world.get::<&Fold>(e).map(|f| f.progress).unwrap_or(0.0),
            hovered: scene
                .hands
                .iter()
                .any(|h| h.hover.as_ref().is_some_and(|h| h.entity == e)),
            selected: scene.selection.as_ref().is_some_and(|s| s.block == k),
            grabbed: grabbed.contains(&e),
        });
    }
    let quads = |block: usize, local: &dyn Fn(&LayerPlacement) -> Vec<Mat4>| -> Vec<Mat4> {
        match (scene.geometry(block), scene.placed(block)) {
            (Some(g), Some(p)) => {
                let m = p.to_mat4();
                local(&g.local).into_iter().map(|q| m * q).collect()
            }
            _ => Vec::new(),
        }
    };
    let neuron = |n: &NeuronRef| Highlight {
        block: n.block,
        neuron: Some(n.index.clone()),
        quads: quads(n.block, &|l| inspect::neuron_quads(l, &n.index)),
    };
    for hand in Hand::BOTH {
        let state = &scene.hands[super::world::hand_slot(hand)];
        if let Some(h) = &state.hover {
            let hl = match &h.neuron {
                Some(index) => neuron(&NeuronRef {
                    block: h.block,
                    index: index.clone(),
                }),
                None => Highlight {
                    block: h.block,
                    neuron: None,
                    quads: Vec::new(),
                },
            };
            out.hovered.push((hand, hl));
        }
        if let Some((origin, end)) = state.ray {
            out.rays.push(RayDraw {
                hand,
                origin,
                end,
                hit: state.hover.is_some(),
            });
        }
    }
    out.selected = scene.selection.as_ref().map(neuron);
    out.drawing = scene.canvas.is_some();
    for &e in &scene.tray {
        let (Ok(item), Ok(placed)) = (scene.world.get::<&TrayItem>(e), scene.world.get::<&Placed>(e)) else {
            continue;
        };
        out.tray.push(TrayDraw {
            sample: item.sample,
            stage_from_tile: placed.0.to_mat4() * Mat4::from_scale(Vec3::new(TRAY_TILE, TRAY_TILE, 1.0)),
            hovered: scene.hands.iter().any(|h| h.tray == Some(item.sample)),
            current: scene.sample == Some(item.sample),
        });
    }
    if let Some(panel) = scene.panel() {
        out.receptive_field = panel
            .receptive_field
            .iter()
            .map(|(b, region)| Highlight {
                block: *b,
                neuron: None,
                quads: quads(*b, &|l| inspect::region_quads(l, region)),
            })
            .collect();
        let block = panel.neuron.block;
        if let (Some(g), Some(p)) = (scene.geometry(block), scene.placed(block)) {
            // To the block's right, level with its top, a little in front of it.
            let local = Vec3::new(g.max.x + 0.05 + PANEL_SIZE.0 / 2.0, g.max.y - PANEL_SIZE.1 / 2.0, 0.05);
            let stage_from_panel = p.to_mat4() * Mat4::from_rotation_translation(Quat::IDENTITY, local);
            out.panel = Some(PanelDraw {
                panel,
                stage_from_panel,
            });
        }
    }
    out
}

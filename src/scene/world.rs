//! The scene's hecs world: one entity per displayed block, the network root and the inspect panel,
//! and the rapier colliders that follow the blocks.

use glam::Vec3;
use hecs::{Entity, World};
use rapier3d::prelude::ColliderHandle;

use super::inspect::Panel;
use super::layout::{self, BlockSpec, LayerPlacement, LayoutKind};
pub use super::network::{Network, NeuronRef};
use super::picking::Picking;
use super::room::{self, Scale, Stage};
use super::transform::Transform;
use crate::input::Hand;
use crate::nn::Model;

/// A displayed block: its position among the blocks (0 = the input) and what it shows.
#[derive(Debug, Clone)]
pub struct Block {
    pub index: usize,
    pub spec: BlockSpec,
}

/// `root_from_block`: where the block stands on the network root.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Local(pub Transform);

/// `stage_from_block` (= `stage_from_root * root_from_block`), updated by [`sync`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed(pub Transform);

/// Grid or linear arrangement of the block's tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout(pub LayoutKind);

/// How long a fold or expand takes.
pub const FOLD_SECONDS: f32 = 0.25;

/// Folded or not, and where the animation is: `progress` runs from 0 (expanded) to 1 (folded)
/// towards `folded` in [`FOLD_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Fold {
    pub folded: bool,
    pub progress: f32,
}

impl Fold {
    pub fn target(&self) -> f32 {
        if self.folded { 1.0 } else { 0.0 }
    }
    pub fn animating(&self) -> bool {
        self.progress != self.target()
    }
}

/// The block's current arrangement in block space (fold and layout applied) and its bounds
/// there; rebuilt by [`sync`] when `key` (layout, fold progress) changes.
#[derive(Debug, Clone)]
pub struct Geometry {
    pub local: LayerPlacement,
    pub min: Vec3,
    pub max: Vec3,
    key: Option<(LayoutKind, u32)>,
}

/// On the blocks made by expanding a multi-layer block into its steps: the block they came from
/// (folding them back makes it again).
#[derive(Debug, Clone)]
pub struct StepOf(pub BlockSpec);

/// A bundled sample on the sample tray, item `sample` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrayItem {
    pub sample: usize,
    pub count: usize,
}

/// Most samples a tray holds.
pub const MAX_TRAY: usize = 16;
/// Edge of a tray tile and the gap between tiles (meters, before the root's scale).
pub const TRAY_TILE: f32 = 0.06;
pub const TRAY_GAP: f32 = 0.015;

/// Where tray item `k` of `n` stands in the input block's space: a row under the block.
pub fn tray_offset(k: usize, n: usize, input_min_y: f32) -> Vec3 {
    let pitch = TRAY_TILE + TRAY_GAP;
    Vec3::new(
        (k as f32 - (n as f32 - 1.0) / 2.0) * pitch,
        input_min_y - 0.05 - TRAY_TILE / 2.0,
        0.0,
    )
}

/// The block can be grabbed.
#[derive(Debug, Clone, Copy)]
pub struct Grabbable;

/// Pointed at by at least one hand this frame; `neuron` is the one under the first hand's ray.
#[derive(Debug, Clone, PartialEq)]
pub struct Hovered {
    pub hands: Vec<Hand>,
    pub neuron: Option<Vec<usize>>,
}

/// Holds the selected neuron.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    pub index: Vec<usize>,
}

/// The block's collider.
#[derive(Debug, Clone, Copy)]
pub struct Body(pub ColliderHandle);

/// The network root: one transform places the whole network in the stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkRoot(pub Transform);

/// The inspect panel's content: the selected neuron explained, if any.
#[derive(Debug, Clone, Default)]
pub struct InspectPanel(pub Option<Panel>);

/// A checkpoint of the model's timeline whose weights are shown.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRef {
    /// The checkpoint nearest to `position`, and its label.
    pub index: usize,
    pub label: String,
    /// Where on the timeline the weights are: checkpoint `i` at `i`, a mix between them.
    pub position: f32,
}

/// What a hand's ray hits.
#[derive(Debug, Clone, PartialEq)]
pub struct PickHit {
    pub entity: Entity,
    pub block: usize,
    /// Distance along the ray and the point hit (stage space).
    pub distance: f32,
    pub point: Vec3,
    /// The neuron under the ray; `None` in the gaps between tiles or cubes.
    pub neuron: Option<Vec<usize>>,
}

/// What a hand holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GrabTarget {
    /// A block, which keeps this pose relative to the grip.
    Block { entity: Entity, grip_from_block: Transform },
    /// Squeezing in empty space: with the other hand squeezing too, the network root is held.
    Nothing,
}

/// Both hands on the network: the hands' positions and the root when the second hand closed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoHandGrab {
    pub left: Vec3,
    pub right: Vec3,
    pub root: Transform,
}

#[derive(Debug, Clone, Default)]
pub struct HandState {
    pub hover: Option<PickHit>,
    pub grab: Option<GrabTarget>,
    /// Where the ray was cast from and where it ends (its hit, or [`RAY_LENGTH`] away).
    pub ray: Option<(Vec3, Vec3)>,
    /// The sample tray item the ray points at (then `hover` is `None`).
    pub tray: Option<usize>,
}

/// Rays that hit nothing are drawn this long; picking looks this far.
pub const RAY_LENGTH: f32 = 10.0;

/// The whole scene state. The hecs world holds the blocks, the root and the panel; the rest is
/// per-hand interaction state and settings.
pub struct Scene {
    pub world: World,
    pub picking: Picking,
    pub root: Entity,
    pub panel: Entity,
    /// Block entities in display order (`Block::index`).
    pub blocks: Vec<Entity>,
    /// Each block's rank in the graph ([`layout::ranks`]): parallel branches share one.
    pub ranks: Vec<usize>,
    pub stage: Stage,
    pub scale: Scale,
    pub hands: [HandState; 2],
    pub two_hand: Option<TwoHandGrab>,
    /// The selected neuron (its block also has [`Selected`]).
    pub selection: Option<NeuronRef>,
    /// The checkpoint whose weights are shown; `None`: the model's final weights.
    pub checkpoint: Option<CheckpointRef>,
    /// The timeline plays: its position moves forward by itself (see `systems::scrub`).
    pub playing: bool,
    /// The sample tray's items (see [`Scene::set_sample_tray`]).
    pub tray: Vec<Entity>,
    /// The bundled sample last chosen on the tray; `None`: the input the scene started with.
    pub sample: Option<usize>,
    /// Drawing on the input: the raw input values (as given, before normalization) being drawn,
    /// `None` when not in draw mode (see `systems`).
    pub canvas: Option<Vec<f32>>,
}

impl Scene {
    /// Spawns the blocks of `model`, arranged for `scale` in `stage`.
    pub fn new(model: &Model, stage: Stage, scale: Scale) -> Scene {
        let mut world = World::new();
        let mut picking = Picking::default();
        let root = world.spawn((NetworkRoot(Transform::IDENTITY),));
        let panel = world.spawn((InspectPanel(None),));
        let specs = layout::blocks(model);
        let ranks = layout::ranks(model, &specs);
        let mut blocks = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            blocks.push(spawn_block(
                &mut world,
                &mut picking,
                Block { index, spec },
                Transform::IDENTITY,
                LayoutKind::Grid,
                Fold::default(),
            ));
        }
        let mut scene = Scene {
            world,
            picking,
            root,
            panel,
            blocks,
            ranks,
            stage,
            scale,
            hands: Default::default(),
            two_hand: None,
            selection: None,
            checkpoint: None,
            playing: false,
            tray: Vec::new(),
            sample: None,
            canvas: None,
        };
        scene.arrange();
        scene
    }

    /// Puts every block back on its path place (walk-in) or row (tabletop) for the current scale,
    /// sizes taken from the blocks' default (grid, expanded) arrangement.
    pub fn arrange(&mut self) {
        let sizes: Vec<_> = self
            .blocks
            .iter()
            .map(|&e| {
                let b = self.world.get::<&Block>(e).expect("block entity");
                layout::local_placement(&b.spec, LayoutKind::Grid, 0.0).size
            })
            .collect();
        let (stage_from_root, root_from_blocks) = room::arrange(&sizes, &self.ranks, &self.stage, self.scale);
        if let Ok(mut r) = self.world.get::<&mut NetworkRoot>(self.root) {
            r.0 = stage_from_root;
        }
        for (&e, t) in self.blocks.iter().zip(root_from_blocks) {
            if let Ok(mut l) = self.world.get::<&mut Local>(e) {
                l.0 = t;
            }
        }
        sync(&mut self.world, &mut self.picking);
    }

    /// Switches between walk-in and tabletop scale (re-arranging the blocks).
    pub fn set_scale(&mut self, scale: Scale) {
        self.scale = scale;
        self.two_hand = None;
        self.arrange();
    }

    /// Puts `count` bundled samples (0..count) on a tray: a row of small tiles under the input
    /// block that follows it. Pointing at one and pressing select makes it the input
    /// ([`super::systems::FrameEvents::sample`]). Replaces any tray there was.
    pub fn set_sample_tray(&mut self, count: usize) {
        for e in std::mem::take(&mut self.tray) {
            if let Ok(body) = self.world.get::<&Body>(e).map(|b| b.0) {
                self.picking.remove(body);
            }
            let _ = self.world.despawn(e);
        }
        for sample in 0..count.min(MAX_TRAY) {
            let e = self.world.spawn((
                TrayItem {
                    sample,
                    count: count.min(MAX_TRAY),
                },
                Placed(Transform::IDENTITY),
            ));
            let body = self.picking.add(e);
            let _ = self.world.insert_one(e, Body(body));
            self.tray.push(e);
        }
        sync(&mut self.world, &mut self.picking);
    }

    /// Records which checkpoint's weights are shown (`None`: the final weights) and returns it;
    /// the caller loads those weights and re-runs the forward pass, then re-explains the
    /// selection (`systems::refresh_selection`). An index past the timeline is refused (`None`).
    pub fn set_checkpoint(&mut self, model: &Model, index: Option<usize>) -> Option<&CheckpointRef> {
        self.checkpoint = index.and_then(|i| {
            model.checkpoints.get(i).map(|c| CheckpointRef {
                index: i,
                label: c.label.clone(),
                position: i as f32,
            })
        });
        self.checkpoint.as_ref()
    }

    /// Records a continuous timeline position (clamped to the checkpoints; none: `None`).
    pub fn set_timeline_position(&mut self, model: &Model, position: f32) -> Option<&CheckpointRef> {
        let n = model.checkpoints.len();
        if n == 0 || !position.is_finite() {
            return None;
        }
        let position = position.clamp(0.0, (n - 1) as f32);
        let index = (position.round() as usize).min(n - 1);
        self.checkpoint = Some(CheckpointRef {
            index,
            label: model.checkpoints[index].label.clone(),
            position,
        });
        self.checkpoint.as_ref()
    }

    pub fn block_entity(&self, block: usize) -> Option<Entity> {
        self.blocks.get(block).copied()
    }

    pub fn stage_from_root(&self) -> Transform {
        self.world
            .get::<&NetworkRoot>(self.root)
            .map(|r| r.0)
            .unwrap_or_default()
    }

    /// `stage_from_block` of block `block`.
    pub fn placed(&self, block: usize) -> Option<Transform> {
        let e = self.block_entity(block)?;
        self.world.get::<&Placed>(e).ok().map(|p| p.0)
    }

    /// Block `block`'s current arrangement in block space.
    pub fn geometry(&self, block: usize) -> Option<Geometry> {
        let e = self.block_entity(block)?;
        self.world.get::<&Geometry>(e).ok().map(|g| (*g).clone())
    }

    /// Block `block` as it stands now, in stage space.
    pub fn placement(&self, block: usize) -> Option<LayerPlacement> {
        let (g, p) = (self.geometry(block)?, self.placed(block)?);
        Some(layout::transformed(&g.local, p.to_mat4(), p.scale))
    }

    /// Stage-space bounds (min, max) of block `block`'s current box.
    pub fn bounds(&self, block: usize) -> Option<(Vec3, Vec3)> {
        let (g, p) = (self.geometry(block)?, self.placed(block)?);
        Some(box_bounds(&p, g.min, g.max))
    }

    pub fn panel(&self) -> Option<Panel> {
        self.world
            .get::<&InspectPanel>(self.panel)
            .ok()
            .and_then(|p| p.0.clone())
    }

    /// The entity and block index a hand holds, if it holds a block.
    pub fn grabbed(&self, hand: Hand) -> Option<(Entity, usize)> {
        match self.hands[hand_slot(hand)].grab {
            Some(GrabTarget::Block { entity, .. }) => {
                let b = self.world.get::<&Block>(entity).ok()?;
                Some((entity, b.index))
            }
            _ => None,
        }
    }
}

/// Spawns a block entity with its collider.
pub fn spawn_block(
    world: &mut World,
    picking: &mut Picking,
    block: Block,
    local: Transform,
    layout: LayoutKind,
    fold: Fold,
) -> Entity {
    let e = world.spawn((
        block,
        Local(local),
        Placed(Transform::IDENTITY),
        Layout(layout),
        fold,
        Grabbable,
    ));
    let body = picking.add(e);
    let _ = world.insert_one(e, Body(body));
    e
}

pub(crate) fn hand_slot(hand: Hand) -> usize {
    match hand {
        Hand::Left => 0,
        Hand::Right => 1,
    }
}

/// Stage-space axis-aligned bounds of the block-space box `min..max` placed by `t`.
pub fn box_bounds(t: &Transform, min: Vec3, max: Vec3) -> (Vec3, Vec3) {
    let mut lo = Vec3::splat(f32::INFINITY);
    let mut hi = Vec3::splat(f32::NEG_INFINITY);
    for k in 0..8 {
        let c = Vec3::new(
            if k & 1 == 0 { min.x } else { max.x },
            if k & 2 == 0 { min.y } else { max.y },
            if k & 4 == 0 { min.z } else { max.z },
        );
        let p = t.transform_point(c);
        (lo, hi) = (lo.min(p), hi.max(p));
    }
    (lo, hi)
}

/// Brings every block's geometry (after layout/fold changes), stage placement (after root or
/// block moves) and collider up to date, then the picking structure.
pub fn sync(world: &mut World, picking: &mut Picking) {
    let root = world
        .query_mut::<&NetworkRoot>()
        .into_iter()
        .next()
        .map(|r| r.0)
        .unwrap_or_default();
    let mut missing = Vec::new();
    for (e, (block, local, placed, layout, fold, geometry, body)) in world.query_mut::<(
        Entity,
        (
            &Block,
            &Local,
            &mut Placed,
            &Layout,
            &Fold,
            Option<&mut Geometry>,
            &Body,
        ),
    )>() {
        let key = Some((layout.0, fold.progress.to_bits()));
        let fresh;
        let g = match geometry {
            Some(g) if g.key == key => &*g,
            Some(g) => {
                *g = build_geometry(&block.spec, layout.0, fold.progress);
                &*g
            }
            None => {
                fresh = build_geometry(&block.spec, layout.0, fold.progress);
                missing.push((e, fresh.clone()));
                &fresh
            }
        };
        placed.0 = root * local.0;
        let center = placed.0.transform_point((g.min + g.max) / 2.0);
        let half = (g.max - g.min) / 2.0 * placed.0.scale;
        picking.set_box(body.0, center, placed.0.rotation, half);
    }
    for (e, g) in missing {
        let _ = world.insert_one(e, g);
    }
    // The sample tray hangs under the input block.
    let input = world
        .query_mut::<(&Block, &Placed, &Geometry)>()
        .into_iter()
        .find(|(b, _, _)| b.index == 0)
        .map(|(_, p, g)| (p.0, g.min.y));
    if let Some((stage_from_input, min_y)) = input {
        for (item, placed, body) in world.query_mut::<(&TrayItem, &mut Placed, &Body)>() {
            placed.0 = stage_from_input * Transform::from_translation(tray_offset(item.sample, item.count, min_y));
            let half = Vec3::new(TRAY_TILE, TRAY_TILE, 0.0) / 2.0 * placed.0.scale;
            picking.set_box(body.0, placed.0.translation, placed.0.rotation, half);
        }
    }
    picking.refresh();
}

fn build_geometry(spec: &BlockSpec, kind: LayoutKind, fold: f32) -> Geometry {
    let local = layout::local_placement(spec, kind, fold);
    let (min, max) = layout::extent(&local);
    Geometry {
        local,
        min,
        max,
        key: Some((kind, fold.to_bits())),
    }
}

/// The neuron of block-space geometry `local` under the ray `origin + t·dir` (block space), and
/// its `t`: the nearest tile cell or cube the ray passes through.
pub fn neuron_under_ray(local: &LayerPlacement, origin: Vec3, dir: Vec3) -> Option<(Vec<usize>, f32)> {
    let mut best: Option<(Vec<usize>, f32)> = None;
    let mut consider = |index: Vec<usize>, t: f32| {
        if t >= 0.0 && best.as_ref().is_none_or(|(_, b)| t < *b) {
            best = Some((index, t));
        }
    };
    for tile in &local.tiles {
        let tile_from_block = tile.world_from_tile.inverse();
        let o = tile_from_block.transform_point3(origin);
        let d = tile_from_block.transform_vector3(dir);
        if d.z.abs() < 1e-9 {
            continue;
        }
        let t = -o.z / d.z;
        let p = o + d * t;
        if p.x.abs() > 0.5 || p.y.abs() > 0.5 {
            continue;
        }
        let col = (((p.x + 0.5) * tile.w as f32) as usize).min(tile.w - 1);
        let row = (((0.5 - p.y) * tile.h as f32) as usize).min(tile.h - 1);
        consider(vec![tile.channel, row, col], t);
    }
    for n in &local.neurons {
        let half = Vec3::splat(n.size / 2.0);
        if let Some(t) = ray_box(origin, dir, n.center - half, n.center + half) {
            consider(vec![n.index], t);
        }
    }
    best
}

/// Entry distance of a ray into an axis-aligned box (0 when it starts inside).
fn ray_box(origin: Vec3, dir: Vec3, min: Vec3, max: Vec3) -> Option<f32> {
    let inv = dir.recip();
    let (a, b) = ((min - origin) * inv, (max - origin) * inv);
    let (near, far) = (a.min(b).max_element(), a.max(b).min_element());
    (near <= far && far >= 0.0 && !near.is_nan()).then_some(near.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Shape, Source};

    fn spec(shape: Shape) -> BlockSpec {
        BlockSpec {
            source: Source::Layer(0),
            name: "b".into(),
            shape,
            layers: vec![0],
            what: String::new(),
        }
    }

    /// Center of pixel (y, x) of `tile`, in the tile's space.
    fn pixel(tile: &layout::TileRect, y: usize, x: usize) -> Vec3 {
        let u = (x as f32 + 0.5) / tile.w as f32 - 0.5;
        let v = 0.5 - (y as f32 + 0.5) / tile.h as f32;
        tile.world_from_tile.transform_point3(Vec3::new(u, v, 0.0))
    }

    #[test]
    fn a_ray_through_a_pixel_resolves_to_its_channel_row_and_column() {
        for kind in [LayoutKind::Grid, LayoutKind::Linear] {
            let local = layout::local_placement(&spec(Shape::Chw(5, 6, 4)), kind, 0.0);
            for (c, y, x) in [(0, 0, 0), (3, 5, 3), (4, 2, 1)] {
                let p = pixel(&local.tiles[c], y, x);
                // Straight on and at a slant.
                for from in [p + Vec3::Z, p + Vec3::new(0.3, -0.2, 0.5)] {
                    let (index, t) = neuron_under_ray(&local, from, p - from).unwrap();
                    assert_eq!(index, vec![c, y, x], "{kind:?} from {from}");
                    assert!((t - 1.0).abs() < 1e-4);
                }
            }
            // Between two tiles: nothing.
            let gap = (local.tiles[0]
                .world_from_tile
                .transform_point3(Vec3::new(0.5, 0.0, 0.0))
                + local.tiles[1]
                    .world_from_tile
                    .transform_point3(Vec3::new(-0.5, 0.0, 0.0)))
                / 2.0;
            assert!(neuron_under_ray(&local, gap + Vec3::Z, Vec3::NEG_Z).is_none());
        }
    }

    #[test]
    fn a_folded_stack_answers_with_its_front_tile_and_cubes_by_index() {
        let local = layout::local_placement(&spec(Shape::Chw(4, 3, 3)), LayoutKind::Grid, 1.0);
        let (index, _) = neuron_under_ray(&local, Vec3::new(0.0, 0.0, 1.0), Vec3::NEG_Z).unwrap();
        assert_eq!(index, vec![0, 1, 1]);
        // From behind, the back tile is nearest.
        let (index, _) = neuron_under_ray(&local, Vec3::new(0.0, 0.0, -1.0), Vec3::Z).unwrap();
        assert_eq!(index, vec![3, 1, 1]);
        let flat = layout::local_placement(&spec(Shape::Flat(40)), LayoutKind::Grid, 0.0);
        for n in &flat.neurons {
            let from = n.center + Vec3::new(0.05, 0.05, 1.0);
            assert_eq!(neuron_under_ray(&flat, from, n.center - from).unwrap().0, vec![n.index]);
        }
    }
}

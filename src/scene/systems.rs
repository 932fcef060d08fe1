//! The interaction systems, run once per frame by [`update`] in this order: reset (menu), hover
//! (ray-pick), grab (one hand: a block; both hands: the network root), then per hand: drawing on
//! the input, fold/expand and layout switch of the pointed-at block, select, trace, scale switch,
//! expand into steps; last the fold animation and [`sync`].
//!
//! Controls per hand: `select` picks the neuron under the ray (on empty space: clears the
//! selection; on the sample tray: asks for that sample as the input, [`FrameEvents::sample`]);
//! `grab` holds the pointed-at block (both hands squeezing: the whole network, scaled by the
//! change of the hands' distance and turned about +Y by the change of their direction); `fold`
//! folds/expands and `layout` switches grid/linear of the pointed-at block; `menu` resets the
//! layout. On the input block, `layout` toggles draw mode instead: `select` held paints the pixels
//! under the ray (a 3×3 brush of 1.0, [`FrameEvents::input`]) and `fold` clears the picture.
//! A right thumbstick flick left walks the selection back to its strongest input (trace), a flick
//! right switches walk-in/tabletop scale; the left thumbstick's x scrubs the training timeline
//! and its flick up plays/pauses it ([`scrub`]); a flick down (either hand) expands the pointed-at block into its steps
//! (`conv1+relu1` → `conv1`, `relu1`) or folds a step back into its block.

use glam::{Quat, Vec2, Vec3};
use hecs::{CommandBuffer, Entity};

use super::inspect;
use super::layout::{BlockSpec, LayoutKind};
use super::network::{Network, NeuronRef};
use super::room::Scale;
use super::transform::Transform;
use super::world::{
    Block, FOLD_SECONDS, Fold, Geometry, GrabTarget, Grabbable, Hovered, InspectPanel, Layout, Local, NetworkRoot,
    PickHit, Placed, RAY_LENGTH, Scene, Selected, StepOf, TrayItem, TwoHandGrab, hand_slot, neuron_under_ray,
    spawn_block, sync,
};
use crate::input::{Button, Hand, InputSnapshot, Pose};
use crate::nn::{NnError, Source};

/// Thumbstick deflection that counts as a flick.
pub const FLICK: f32 = 0.7;

/// What the frame produced for the outside world.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameEvents {
    /// Hands whose ray entered a new block this frame (a short haptic pulse in XR).
    pub haptic: Vec<Hand>,
    /// A bundled sample was chosen on the tray: run the network on it, then
    /// [`refresh_selection`] with the new activations.
    pub sample: Option<usize>,
    /// The input was drawn on: run the network on these raw input values (as given, before
    /// normalization), then [`refresh_selection`].
    pub input: Option<Vec<f32>>,
    /// The timeline was scrubbed to this position: load the weights there (interpolated between
    /// checkpoints), rerun the network, then [`refresh_selection`].
    pub timeline: Option<f32>,
}

/// Checkpoints per second at full thumbstick deflection.
pub const SCRUB_SPEED: f32 = 2.0;
/// Checkpoints per second while the timeline plays.
pub const PLAY_SPEED: f32 = 1.0;
/// Thumbstick deflection below which the timeline stays put.
pub const SCRUB_DEADZONE: f32 = 0.2;

/// The left thumbstick's x scrubs the training timeline continuously (right: later), and
/// `InputSnapshot::scrub` steps it (the mouse wheel). From the final weights, the first scrub
/// starts at the last checkpoint. A flick up of the left thumbstick plays or pauses: playing
/// moves forward [`PLAY_SPEED`] checkpoints a second and stops at the last one (played from the
/// end, it starts over); scrubbing by hand pauses it.
pub fn scrub(
    scene: &mut Scene,
    net: &Network,
    input: &InputSnapshot,
    prev: &InputSnapshot,
    dt: f32,
    events: &mut FrameEvents,
) {
    let n = net.model.checkpoints.len();
    if n == 0 {
        scene.playing = false;
        return;
    }
    let end = (n - 1) as f32;
    let x = input.hand(Hand::Left).thumbstick.x;
    let stick = if x.is_finite() && x.abs() >= SCRUB_DEADZONE {
        x * SCRUB_SPEED * dt
    } else {
        0.0
    };
    let by_hand = stick + if input.scrub.is_finite() { input.scrub } else { 0.0 };
    let mut start = scene.checkpoint.as_ref().map_or(end, |c| c.position);
    // With the left grip held, the stick's y sets the edge bundling instead (see `app`).
    if input.flicked(prev, Hand::Left, Vec2::Y, FLICK) && !input.hand(Hand::Left).grab {
        scene.playing = !scene.playing && n > 1;
        if scene.playing && start >= end {
            start = 0.0;
            if let Some(c) = scene.set_timeline_position(net.model, start) {
                events.timeline = Some(c.position);
            }
        }
    }
    if by_hand != 0.0 {
        scene.playing = false;
    }
    let step = if scene.playing { PLAY_SPEED * dt } else { by_hand };
    if step == 0.0 {
        return;
    }
    let moved = scene.checkpoint.is_none() || (start > 0.0 && step < 0.0) || (start < end && step > 0.0);
    if moved && let Some(c) = scene.set_timeline_position(net.model, start + step) {
        events.timeline = Some(c.position);
        if c.position >= end {
            scene.playing = false;
        }
    }
}

/// Runs one frame of every system (see the module documentation). `prev` is the previous
/// frame's input (for button edges), `dt` the frame time in seconds.
pub fn update(
    scene: &mut Scene,
    net: &Network,
    input: &InputSnapshot,
    prev: &InputSnapshot,
    dt: f32,
) -> Result<FrameEvents, NnError> {
    let mut events = FrameEvents::default();
    if Hand::BOTH.iter().any(|&h| input.pressed(prev, h, Button::Menu)) {
        reset(scene, net)?;
    }
    hover(scene, input, &mut events);
    grab(scene, input, prev);
    scrub(scene, net, input, prev, dt, &mut events);
    for hand in Hand::BOTH {
        let target = scene.hands[hand_slot(hand)].hover.as_ref().map(|h| h.entity);
        let on_input = scene.hands[hand_slot(hand)]
            .hover
            .as_ref()
            .is_some_and(|h| h.block == 0);
        if on_input && draw(scene, net, input, prev, hand, &mut events) {
            continue;
        }
        if let Some(e) = target {
            if input.pressed(prev, hand, Button::Fold) {
                toggle_fold(&mut scene.world, e);
            }
            if input.pressed(prev, hand, Button::Layout) {
                toggle_layout(&mut scene.world, e);
            }
        }
        if input.pressed(prev, hand, Button::Select) {
            if let Some(sample) = scene.hands[hand_slot(hand)].tray {
                scene.sample = Some(sample);
                // A new picture: the drawing (of the old one) ends.
                scene.canvas = None;
                events.sample = Some(sample);
            } else {
                let hit = scene.hands[hand_slot(hand)].hover.clone();
                select(
                    scene,
                    net,
                    hit.and_then(|h| h.neuron.map(|index| NeuronRef { block: h.block, index })),
                )?;
            }
        }
        // After the buttons above: it replaces block entities (and clears the hovers).
        if let Some(e) = target
            && input.flicked(prev, hand, Vec2::NEG_Y, FLICK)
        {
            let block = scene.world.get::<&Block>(e).map(|b| b.index).ok();
            if let Some(block) = block {
                toggle_steps(scene, net, block)?;
            }
        }
        // The left thumbstick's x scrubs the timeline; its flicks are the right hand's.
        if hand == Hand::Right && input.flicked(prev, hand, Vec2::NEG_X, FLICK) {
            trace(scene, net)?;
        }
        if hand == Hand::Right && input.flicked(prev, hand, Vec2::X, FLICK) {
            let next = match scene.scale {
                Scale::WalkIn => Scale::Tabletop,
                Scale::Tabletop => Scale::WalkIn,
            };
            scene.set_scale(next);
        }
    }
    animate_folds(&mut scene.world, dt);
    sync(&mut scene.world, &mut scene.picking);
    Ok(events)
}

/// Half-width of the drawing brush in pixels (3×3).
pub const BRUSH: usize = 1;

/// Draw mode on the input block for `hand` (which points at it): `layout` toggles it, `select`
/// held paints, `fold` clears. Returns whether the hand's buttons were used up here.
fn draw(
    scene: &mut Scene,
    net: &Network,
    input: &InputSnapshot,
    prev: &InputSnapshot,
    hand: Hand,
    events: &mut FrameEvents,
) -> bool {
    if input.pressed(prev, hand, Button::Layout) {
        scene.canvas = match scene.canvas {
            Some(_) => None,
            None => Some(raw_input(net)),
        };
        return true;
    }
    let Some(canvas) = scene.canvas.as_mut() else {
        return false;
    };
    let mut changed = false;
    if input.pressed(prev, hand, Button::Fold) {
        canvas.iter_mut().for_each(|v| *v = 0.0);
        changed = true;
    }
    let pixel = scene.hands[hand_slot(hand)]
        .hover
        .as_ref()
        .and_then(|h| h.neuron.clone());
    if input.hand(hand).select
        && let (Some([_, y, x]), crate::nn::Shape::Chw(c, h, w)) = (pixel.as_deref(), net.model.input.shape)
    {
        for ch in 0..c {
            for yy in y.saturating_sub(BRUSH)..=(y + BRUSH).min(h - 1) {
                for xx in x.saturating_sub(BRUSH)..=(x + BRUSH).min(w - 1) {
                    let v = &mut canvas[(ch * h + yy) * w + xx];
                    changed |= *v != 1.0;
                    *v = 1.0;
                }
            }
        }
    }
    if changed {
        events.input = Some(canvas.clone());
    }
    input.hand(hand).select || input.pressed(prev, hand, Button::Fold)
}

/// The network's input as given (normalization undone).
fn raw_input(net: &Network) -> Vec<f32> {
    let spec = &net.model.input;
    let plane = match spec.shape {
        crate::nn::Shape::Chw(_, h, w) => h * w,
        crate::nn::Shape::Flat(_) => net.acts.input.len().max(1),
    };
    let pick = |v: &[f32], c: usize, default: f32| match v {
        [] => default,
        [x] => *x,
        v => v.get(c).copied().unwrap_or(default),
    };
    net.acts
        .input
        .iter()
        .enumerate()
        .map(|(i, x)| x * pick(&spec.std, i / plane, 1.0) + pick(&spec.mean, i / plane, 0.0))
        .collect()
}

/// The block and neuron under a ray (stage space), if any.
pub fn pick(scene: &Scene, origin: Vec3, dir: Vec3) -> Option<PickHit> {
    let dir = dir.try_normalize()?;
    let (entity, distance) = scene.picking.cast(origin, dir, RAY_LENGTH)?;
    let block = scene.world.get::<&Block>(entity).ok()?.index;
    let placed = scene.world.get::<&Placed>(entity).ok()?.0;
    let geometry = scene.world.get::<&Geometry>(entity).ok()?;
    let block_from_stage = placed.inverse();
    let neuron = neuron_under_ray(
        &geometry.local,
        block_from_stage.transform_point(origin),
        block_from_stage.transform_vector(dir),
    )
    .map(|(index, _)| index);
    Some(PickHit {
        entity,
        block,
        distance,
        point: origin + dir * distance,
        neuron,
    })
}

/// Casts each tracked hand's aim ray; marks the pointed-at blocks [`Hovered`].
pub fn hover(scene: &mut Scene, input: &InputSnapshot, events: &mut FrameEvents) {
    let mut hovered: Vec<(Entity, Hand, Option<Vec<usize>>)> = Vec::new();
    for hand in Hand::BOTH {
        let h = input.hand(hand);
        let slot = hand_slot(hand);
        if !h.tracked {
            scene.hands[slot].hover = None;
            scene.hands[slot].ray = None;
            scene.hands[slot].tray = None;
            continue;
        }
        let (origin, dir) = (h.aim.position, h.aim.forward());
        // The tray first: its items are not blocks.
        let tray = scene
            .picking
            .cast(origin, dir, RAY_LENGTH)
            .and_then(|(e, d)| Some((scene.world.get::<&TrayItem>(e).ok()?.sample, d)));
        scene.hands[slot].tray = tray.map(|t| t.0);
        if let Some((_, d)) = tray {
            scene.hands[slot].hover = None;
            scene.hands[slot].ray = Some((origin, origin + dir * d));
            continue;
        }
        let hit = pick(scene, origin, dir);
        let before = scene.hands[slot].hover.as_ref().map(|h| h.entity);
        if let Some(hit) = &hit {
            if before != Some(hit.entity) {
                events.haptic.push(hand);
            }
            hovered.push((hit.entity, hand, hit.neuron.clone()));
        }
        let end = hit.as_ref().map_or(origin + dir * RAY_LENGTH, |h| h.point);
        scene.hands[slot].ray = Some((origin, end));
        scene.hands[slot].hover = hit;
    }
    let mut cmd = CommandBuffer::new();
    for (e, _) in scene.world.query_mut::<(Entity, &Hovered)>() {
        cmd.remove_one::<Hovered>(e);
    }
    let mut marks: Vec<(Entity, Hovered)> = Vec::new();
    for (e, hand, neuron) in hovered {
        match marks.iter_mut().find(|(m, _)| *m == e) {
            Some((_, h)) => h.hands.push(hand),
            None => marks.push((
                e,
                Hovered {
                    hands: vec![hand],
                    neuron,
                },
            )),
        }
    }
    for (e, h) in marks {
        cmd.insert_one(e, h);
    }
    cmd.run_on(&mut scene.world);
}

fn grip_transform(p: &Pose) -> Transform {
    Transform::from_rotation_translation(p.orientation, p.position)
}

/// Grab presses and releases, then moves what is held: a block follows its hand's grip rigidly
/// (keeping its offset); with both hands squeezing, the network root is scaled and turned.
pub fn grab(scene: &mut Scene, input: &InputSnapshot, prev: &InputSnapshot) {
    for hand in Hand::BOTH {
        let slot = hand_slot(hand);
        if !input.hand(hand).grab && scene.hands[slot].grab.is_some() {
            scene.hands[slot].grab = None;
            if scene.two_hand.take().is_some() {
                // The other hand stays closed but holds nothing until it opens again.
                let other = 1 - slot;
                if scene.hands[other].grab.is_some() {
                    scene.hands[other].grab = Some(GrabTarget::Nothing);
                }
            }
        }
    }
    for hand in Hand::BOTH {
        let slot = hand_slot(hand);
        if !input.pressed(prev, hand, Button::Grab) || !input.hand(hand).tracked {
            continue;
        }
        let other = 1 - slot;
        if scene.hands[other].grab.is_some() {
            // Second hand: both hands now hold the network; a block held by the first stays put.
            scene.hands[other].grab = Some(GrabTarget::Nothing);
            scene.hands[slot].grab = Some(GrabTarget::Nothing);
            scene.two_hand = Some(TwoHandGrab {
                left: input.hand(Hand::Left).grip.position,
                right: input.hand(Hand::Right).grip.position,
                root: scene.stage_from_root(),
            });
            continue;
        }
        let target = scene.hands[slot]
            .hover
            .as_ref()
            .filter(|h| scene.world.get::<&Grabbable>(h.entity).is_ok())
            .and_then(|h| {
                let placed = scene.world.get::<&Placed>(h.entity).ok()?.0;
                Some(GrabTarget::Block {
                    entity: h.entity,
                    grip_from_block: grip_transform(&input.hand(hand).grip).inverse() * placed,
                })
            });
        scene.hands[slot].grab = Some(target.unwrap_or(GrabTarget::Nothing));
    }
    if let Some(start) = scene.two_hand {
        let (l, r) = (
            input.hand(Hand::Left).grip.position,
            input.hand(Hand::Right).grip.position,
        );
        let root = two_hand_root(&start, l, r);
        if let Ok(mut rt) = scene.world.get::<&mut NetworkRoot>(scene.root) {
            rt.0 = root;
        }
        return;
    }
    let root = scene.stage_from_root();
    for hand in Hand::BOTH {
        if let Some(GrabTarget::Block {
            entity,
            grip_from_block,
        }) = scene.hands[hand_slot(hand)].grab
        {
            let stage_from_block = grip_transform(&input.hand(hand).grip) * grip_from_block;
            if let Ok(mut l) = scene.world.get::<&mut Local>(entity) {
                l.0 = root.inverse() * stage_from_block;
            }
        }
    }
}

/// The root after the hands moved from `start` to `left`, `right`: scaled by the change of their
/// distance, turned about +Y by the change of their horizontal direction, about their midpoint.
pub fn two_hand_root(start: &TwoHandGrab, left: Vec3, right: Vec3) -> Transform {
    let (d0, d1) = (start.right - start.left, right - left);
    let scale = if d0.length() > 1e-3 {
        (d1.length() / d0.length()).clamp(0.05, 20.0)
    } else {
        1.0
    };
    let angle = |d: Vec3| (-d.z).atan2(d.x);
    let yaw = if Vec2::new(d0.x, d0.z).length() > 1e-3 && Vec2::new(d1.x, d1.z).length() > 1e-3 {
        angle(d1) - angle(d0)
    } else {
        0.0
    };
    let (m0, m1) = ((start.left + start.right) / 2.0, (left + right) / 2.0);
    let about = Transform {
        translation: m1,
        rotation: Quat::from_rotation_y(yaw),
        scale,
    };
    about * Transform::from_translation(-m0) * start.root
}

pub fn toggle_fold(world: &mut hecs::World, e: Entity) {
    if let Ok(mut f) = world.get::<&mut Fold>(e) {
        f.folded = !f.folded;
    }
}

pub fn toggle_layout(world: &mut hecs::World, e: Entity) {
    if let Ok(mut l) = world.get::<&mut Layout>(e) {
        l.0 = match l.0 {
            LayoutKind::Grid => LayoutKind::Linear,
            LayoutKind::Linear => LayoutKind::Grid,
        };
    }
}

/// Every block in `kind` layout, laid out again at once: what pressing `layout` on each block
/// does by the end of the next [`update`], for callers that render without running a frame
/// (`snapshot --linear`).
pub fn set_all_layouts(scene: &mut Scene, kind: LayoutKind) {
    for &e in &scene.blocks {
        if let Ok(mut l) = scene.world.get::<&mut Layout>(e) {
            l.0 = kind;
        }
    }
    sync(&mut scene.world, &mut scene.picking);
}

/// Moves every fold animation `dt` seconds on (a whole fold takes [`FOLD_SECONDS`]).
pub fn animate_folds(world: &mut hecs::World, dt: f32) {
    let step = (dt / FOLD_SECONDS).max(0.0);
    for f in world.query_mut::<&mut Fold>() {
        let target = f.target();
        f.progress = if f.progress < target {
            (f.progress + step).min(target)
        } else {
            (f.progress - step).max(target)
        };
    }
}

/// Whether any block is still folding or expanding.
pub fn animating(world: &mut hecs::World) -> bool {
    world.query_mut::<&Fold>().into_iter().any(|f| f.animating())
}

/// Every block back to its place, expanded, grid, steps folded back into their blocks; the root
/// to its place; grabs let go.
pub fn reset(scene: &mut Scene, net: &Network) -> Result<(), NnError> {
    while let Some(k) = (0..scene.blocks.len()).find(|&k| scene.world.get::<&StepOf>(scene.blocks[k]).is_ok()) {
        toggle_steps(scene, net, k)?;
    }
    for (layout, fold) in scene.world.query_mut::<(&mut Layout, &mut Fold)>() {
        layout.0 = LayoutKind::Grid;
        *fold = Fold::default();
    }
    for h in &mut scene.hands {
        if h.grab.is_some() {
            h.grab = Some(GrabTarget::Nothing);
        }
    }
    scene.two_hand = None;
    scene.arrange();
    Ok(())
}

fn specs(scene: &Scene) -> Vec<BlockSpec> {
    scene
        .blocks
        .iter()
        .filter_map(|&e| scene.world.get::<&Block>(e).ok().map(|b| b.spec.clone()))
        .collect()
}

/// Selects neuron `n` (or nothing) and fills the inspect panel from the model's neuron query.
pub fn select(scene: &mut Scene, net: &Network, n: Option<NeuronRef>) -> Result<(), NnError> {
    let panel = match &n {
        Some(n) => Some(inspect::explain(net, &specs(scene), n)?),
        None => None,
    };
    let mut cmd = CommandBuffer::new();
    for (e, _) in scene.world.query_mut::<(Entity, &Selected)>() {
        cmd.remove_one::<Selected>(e);
    }
    if let Some(n) = &n
        && let Some(e) = scene.block_entity(n.block)
    {
        cmd.insert_one(e, Selected { index: n.index.clone() });
    }
    cmd.run_on(&mut scene.world);
    if let Ok(mut p) = scene.world.get::<&mut InspectPanel>(scene.panel) {
        p.0 = panel;
    }
    scene.selection = n;
    Ok(())
}

/// One step back from the selected neuron: selects its strongest input (largest
/// |weight × activation|, or its only input) where that input is displayed. Returns whether the
/// selection moved (not at the input, not without a selection).
pub fn trace(scene: &mut Scene, net: &Network) -> Result<bool, NnError> {
    let Some(panel) = scene.panel() else { return Ok(false) };
    let Some(next) = panel.inputs.iter().find_map(|i| i.shown.clone()) else {
        return Ok(false);
    };
    select(scene, net, Some(next))?;
    Ok(true)
}

/// Selects input `k` of the panel's list (where it is displayed): what choosing an input on the
/// panel does. Returns whether the selection moved.
pub fn select_input(scene: &mut Scene, net: &Network, k: usize) -> Result<bool, NnError> {
    let Some(next) = scene
        .panel()
        .and_then(|p| p.inputs.get(k).and_then(|i| i.shown.clone()))
    else {
        return Ok(false);
    };
    select(scene, net, Some(next))?;
    Ok(true)
}

/// Re-explains the selection (after the activations or weights changed: new input, checkpoint).
pub fn refresh_selection(scene: &mut Scene, net: &Network) -> Result<(), NnError> {
    let n = scene.selection.clone();
    select(scene, net, n)
}

/// Gap between the steps of an expanded block, side by side (meters, block space).
pub const STEP_GAP: f32 = 0.1;

/// Expands block `block` into its steps (`conv1+relu1` → `conv1`, `relu1`: one block per layer,
/// side by side where the block stood, the last step showing the block's values), or folds a
/// step back into its block. Returns whether anything changed (single-layer blocks have no
/// steps). Block indices after it shift; the selection follows its neuron.
pub fn toggle_steps(scene: &mut Scene, net: &Network, block: usize) -> Result<bool, NnError> {
    let Some(e) = scene.block_entity(block) else {
        return Ok(false);
    };
    let group = scene.world.get::<&StepOf>(e).ok().map(|s| s.0.clone());
    match group {
        Some(group) => merge_steps(scene, net, &group),
        None => split_steps(scene, net, block),
    }
}

fn split_steps(scene: &mut Scene, net: &Network, block: usize) -> Result<bool, NnError> {
    let e = scene.blocks[block];
    let spec = scene.world.get::<&Block>(e).expect("block entity").spec.clone();
    if spec.layers.len() < 2 {
        return Ok(false);
    }
    let local = scene.world.get::<&Local>(e).map(|l| l.0).unwrap_or_default();
    let kind = scene.world.get::<&Layout>(e).map(|l| l.0).unwrap_or_default();
    let fold = scene.world.get::<&Fold>(e).map(|f| *f).unwrap_or_default();
    let steps: Vec<BlockSpec> = spec
        .layers
        .iter()
        .map(|&i| {
            let l = &net.model.layers[i];
            BlockSpec {
                source: Source::Layer(i),
                name: l.name.clone(),
                shape: l.shape,
                layers: vec![i],
                what: crate::nn::describe::layer(net.model, l),
            }
        })
        .collect();
    let width = super::layout::local_placement(&spec, kind, fold.progress).size.x;
    let n = steps.len();
    let mut spawned = Vec::with_capacity(n);
    for (j, step) in steps.into_iter().enumerate() {
        let x = (j as f32 - (n as f32 - 1.0) / 2.0) * (width + STEP_GAP);
        let at = local * Transform::from_translation(Vec3::new(x, 0.0, 0.0));
        let s = spawn_block(
            &mut scene.world,
            &mut scene.picking,
            Block { index: 0, spec: step },
            at,
            kind,
            fold,
        );
        let _ = scene.world.insert_one(s, StepOf(spec.clone()));
        spawned.push(s);
    }
    despawn_block(scene, e);
    scene.blocks.splice(block..=block, spawned);
    let shift = |b: usize| {
        if b > block {
            b + n - 1
        } else if b == block {
            block + n - 1
        } else {
            b
        }
    };
    restructure(scene, net, shift)?;
    Ok(true)
}

fn merge_steps(scene: &mut Scene, net: &Network, group: &BlockSpec) -> Result<bool, NnError> {
    let members: Vec<usize> = (0..scene.blocks.len())
        .filter(|&k| {
            scene
                .world
                .get::<&StepOf>(scene.blocks[k])
                .is_ok_and(|s| s.0.name == group.name)
        })
        .collect();
    let (Some(&first), Some(&last)) = (members.first(), members.last()) else {
        return Ok(false);
    };
    let e0 = scene.blocks[first];
    let kind = scene.world.get::<&Layout>(e0).map(|l| l.0).unwrap_or_default();
    let fold = scene.world.get::<&Fold>(e0).map(|f| *f).unwrap_or_default();
    // Where the steps stand now: their mean position, the first one's orientation.
    let locals: Vec<Transform> = members
        .iter()
        .filter_map(|&k| scene.world.get::<&Local>(scene.blocks[k]).ok().map(|l| l.0))
        .collect();
    let mut at = locals[0];
    at.translation = locals.iter().map(|l| l.translation).sum::<Vec3>() / locals.len() as f32;
    let merged = spawn_block(
        &mut scene.world,
        &mut scene.picking,
        Block {
            index: 0,
            spec: group.clone(),
        },
        at,
        kind,
        fold,
    );
    for &k in members.iter().rev() {
        let e = scene.blocks.remove(k);
        despawn_block(scene, e);
    }
    scene.blocks.insert(first, merged);
    let n = members.len();
    let shift = |b: usize| {
        if b > last {
            b + 1 - n
        } else if b >= first {
            first
        } else {
            b
        }
    };
    restructure(scene, net, shift)?;
    Ok(true)
}

fn despawn_block(scene: &mut Scene, e: Entity) {
    if let Ok(body) = scene.world.get::<&super::world::Body>(e).map(|b| b.0) {
        scene.picking.remove(body);
    }
    let _ = scene.world.despawn(e);
}

/// After blocks were replaced: renumber them, move the selection with `shift` (old block index →
/// new), drop hovers and grabs of blocks that are gone, re-explain the selection.
fn restructure(scene: &mut Scene, net: &Network, shift: impl Fn(usize) -> usize) -> Result<(), NnError> {
    for (k, &e) in scene.blocks.iter().enumerate() {
        if let Ok(mut b) = scene.world.get::<&mut Block>(e) {
            b.index = k;
        }
    }
    for h in &mut scene.hands {
        h.hover = None;
        if let Some(GrabTarget::Block { entity, .. }) = h.grab
            && !scene.world.contains(entity)
        {
            h.grab = Some(GrabTarget::Nothing);
        }
    }
    sync(&mut scene.world, &mut scene.picking);
    let selection = scene.selection.take().map(|n| NeuronRef {
        block: shift(n.block),
        index: n.index,
    });
    select(scene, net, selection)
}

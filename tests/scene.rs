//! The scene systems on the bundled demo with scripted input: hover, select, grab, fold, layout
//! switch, inspect, trace, scale, reset.

use glam::{Quat, Vec3};
use netwalk::input::{Hand, InputSnapshot, Pose};
use netwalk::nn::{self, Activations, Model, Source, Weights};
use netwalk::scene::systems::{self, update};
use netwalk::scene::world::{Fold, Hovered, Layout};
use netwalk::scene::{self, LayoutKind, Network, NeuronRef, Scale, Scene, Stage};

struct Demo {
    model: Model,
    weights: Weights,
    acts: Activations,
}

impl Demo {
    fn load() -> Demo {
        let model = Model::load(&nn::demo::demo_dir().unwrap()).unwrap();
        let weights = Weights::load(&model).unwrap();
        let samples = nn::Samples::load(&model, model.samples.as_ref().unwrap()).unwrap();
        let acts = nn::forward(&model, &weights, samples.image(0)).unwrap();
        Demo { model, weights, acts }
    }
    fn net(&self) -> Network<'_> {
        Network {
            model: &self.model,
            weights: &self.weights,
            acts: &self.acts,
        }
    }
    fn scene(&self) -> Scene {
        Scene::new(&self.model, Stage::default(), Scale::WalkIn)
    }
}

/// Block indices of the demo: image, conv1+relu1, pool1, conv2+relu2, pool2, fc1+relu3, fc2, softmax.
const CONV1: usize = 1;
const POOL1: usize = 2;
const CONV2: usize = 3;
const POOL2: usize = 4;
const FC1: usize = 5;
const SOFTMAX: usize = 7;

/// Plays frames through the scene, keeping the previous snapshot for edges.
struct Player<'a> {
    demo: &'a Demo,
    scene: Scene,
    prev: InputSnapshot,
    now: InputSnapshot,
    /// What the last frame asked of the app.
    events: systems::FrameEvents,
}

impl<'a> Player<'a> {
    fn new(demo: &'a Demo) -> Self {
        Player {
            demo,
            scene: demo.scene(),
            prev: InputSnapshot::default(),
            now: InputSnapshot::default(),
            events: Default::default(),
        }
    }
    fn frame(&mut self, dt: f32, change: impl FnOnce(&mut InputSnapshot)) {
        change(&mut self.now);
        self.now.time += dt;
        let now = self.now;
        self.events = update(&mut self.scene, &self.demo.net(), &now, &self.prev, dt).unwrap();
        self.prev = now;
    }
    fn aim(&mut self, hand: Hand, from: Vec3, at: Vec3) {
        self.frame(1.0 / 90.0, |s| {
            let h = s.hand_mut(hand);
            h.tracked = true;
            h.aim = Pose::looking_at(from, at).unwrap();
            h.grip = h.aim;
        });
    }
    fn set(&mut self, hand: Hand, f: impl FnOnce(&mut netwalk::input::HandInput)) {
        self.frame(1.0 / 90.0, |s| f(s.hand_mut(hand)));
    }
    fn click(&mut self, hand: Hand, button: fn(&mut netwalk::input::HandInput) -> &mut bool) {
        self.set(hand, |h| *button(h) = true);
        self.set(hand, |h| *button(h) = false);
    }
    fn wait(&mut self, seconds: f32) {
        let n = (seconds * 90.0).round() as usize;
        for _ in 0..n {
            self.frame(1.0 / 90.0, |_| {});
        }
    }
}

/// A point `d` meters in front of block `b`'s face (along its normal), slightly off-axis.
fn in_front(scene: &Scene, b: usize, at: Vec3, d: f32) -> Vec3 {
    let placed = scene.placed(b).unwrap();
    at + placed.rotation * Vec3::new(0.03, -0.02, 1.0).normalize() * d
}

/// Stage position of pixel (y, x) of tile `tile` of block `b`, from the layout's own tiles.
fn pixel(scene: &Scene, b: usize, tile: usize, y: usize, x: usize) -> Vec3 {
    let p = scene.placement(b).unwrap();
    let t = &p.tiles[tile];
    let u = (x as f32 + 0.5) / t.w as f32 - 0.5;
    let v = 0.5 - (y as f32 + 0.5) / t.h as f32;
    t.world_from_tile.transform_point3(Vec3::new(u, v, 0.0))
}

fn select(h: &mut netwalk::input::HandInput) -> &mut bool {
    &mut h.select
}
fn fold(h: &mut netwalk::input::HandInput) -> &mut bool {
    &mut h.fold
}
fn layout(h: &mut netwalk::input::HandInput) -> &mut bool {
    &mut h.layout
}
fn menu(h: &mut netwalk::input::HandInput) -> &mut bool {
    &mut h.menu
}

fn tile_center(scene: &Scene, b: usize, k: usize) -> Vec3 {
    scene.placement(b).unwrap().tiles[k]
        .world_from_tile
        .transform_point3(Vec3::ZERO)
}

#[test]
fn pointing_at_a_block_hovers_it_and_selects_the_neuron_under_the_ray() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    // Every block's center, from 0.3 m in front: that block is hovered, no other.
    for b in 0..p.scene.blocks.len() {
        let (lo, hi) = p.scene.bounds(b).unwrap();
        let center = (lo + hi) / 2.0;
        let from = in_front(&p.scene, b, center, 0.3);
        p.aim(Hand::Right, from, center);
        let hovered: Vec<usize> = p
            .scene
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, e)| p.scene.world.get::<&Hovered>(**e).is_ok())
            .map(|(k, _)| k)
            .collect();
        assert_eq!(hovered, vec![b], "aiming at block {b}'s center");
    }
    // Exact pixels of feature maps, and cubes.
    for (b, tile, y, x) in [(CONV1, 5, 3, 20), (CONV1, 0, 27, 0), (CONV2, 15, 13, 6), (0, 0, 9, 17)] {
        let target = pixel(&p.scene, b, tile, y, x);
        p.aim(Hand::Right, in_front(&p.scene, b, target, 0.4), target);
        p.click(Hand::Right, select);
        assert_eq!(
            p.scene.selection,
            Some(NeuronRef {
                block: b,
                index: vec![tile, y, x]
            })
        );
    }
    for i in [0, 37, 63] {
        let cube = p.scene.placement(FC1).unwrap().neurons[i].center;
        p.aim(Hand::Left, in_front(&p.scene, FC1, cube, 0.25), cube);
        p.click(Hand::Left, select);
        assert_eq!(
            p.scene.selection,
            Some(NeuronRef {
                block: FC1,
                index: vec![i]
            })
        );
    }
    // The render read-out marks it; selecting empty space clears.
    let draw = scene::scene_draw(&p.scene);
    let sel = draw.selected.unwrap();
    assert_eq!((sel.block, sel.quads.len()), (FC1, 1));
    assert!(draw.blocks[FC1].selected && draw.blocks[FC1].hovered);
    assert!(draw.rays.iter().any(|r| r.hand == Hand::Left && r.hit));
    p.aim(Hand::Left, Vec3::new(0.0, 1.4, 0.0), Vec3::new(0.0, 5.0, 0.0));
    p.click(Hand::Left, select);
    assert_eq!(p.scene.selection, None);
    assert!(p.scene.panel().is_none());
}

#[test]
fn a_grabbed_block_follows_the_hand_rigidly_and_stays_where_released() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let before: Vec<_> = (0..p.scene.blocks.len()).map(|b| p.scene.placed(b).unwrap()).collect();
    let center = before[POOL1].translation;
    let from = in_front(&p.scene, POOL1, center, 0.5);
    p.aim(Hand::Right, from, center);
    p.set(Hand::Right, |h| h.grab = true);
    assert_eq!(p.scene.grabbed(Hand::Right).map(|g| g.1), Some(POOL1));
    // Translate the hand: the block moves by the same displacement.
    let delta = Vec3::new(0.1, -0.2, 0.3);
    p.aim(Hand::Right, from + delta, center + delta);
    let moved = p.scene.placed(POOL1).unwrap();
    assert!(
        (moved.translation - (center + delta)).length() < 1e-4,
        "{}",
        moved.translation
    );
    assert!(moved.rotation.angle_between(before[POOL1].rotation) < 1e-4);
    // Turn the hand about its grip: the block swings around the grip, keeping its offset.
    let turn = Quat::from_rotation_y(0.5);
    let grip = from + delta;
    let dir = turn * (center - from);
    p.aim(Hand::Right, grip, grip + dir);
    let swung = p.scene.placed(POOL1).unwrap();
    assert!((swung.translation - (grip + turn * (center - from))).length() < 1e-3);
    assert!(swung.rotation.angle_between(turn * before[POOL1].rotation) < 1e-3);
    // Release, then move the hand away: it stays.
    p.set(Hand::Right, |h| h.grab = false);
    assert_eq!(p.scene.grabbed(Hand::Right), None);
    p.aim(Hand::Right, Vec3::new(0.0, 1.0, 0.0), Vec3::new(0.0, 1.0, -1.0));
    assert_eq!(p.scene.placed(POOL1).unwrap(), swung);
    for b in (0..before.len()).filter(|&b| b != POOL1) {
        assert_eq!(p.scene.placed(b).unwrap(), before[b], "block {b} did not move");
    }
    // Its collider went along: a ray at the new center picks it.
    let hit = systems::pick(
        &p.scene,
        in_front(&p.scene, POOL1, swung.translation, 0.3),
        swung.translation - in_front(&p.scene, POOL1, swung.translation, 0.3),
    )
    .unwrap();
    assert_eq!(hit.block, POOL1);
}

#[test]
fn two_hands_scale_and_turn_the_whole_network() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let before: Vec<_> = (0..p.scene.blocks.len())
        .map(|b| p.scene.placed(b).unwrap().translation)
        .collect();
    let (l0, r0) = (Vec3::new(-0.2, 1.0, -0.3), Vec3::new(0.2, 1.0, -0.3));
    // Pointing at the floor: nothing under either ray.
    p.aim(Hand::Left, l0, l0 - Vec3::Y);
    p.aim(Hand::Right, r0, r0 - Vec3::Y);
    p.set(Hand::Left, |h| h.grab = true);
    p.set(Hand::Right, |h| h.grab = true);
    assert!(p.scene.two_hand.is_some());
    // Hands twice as far apart, turned 90° (right hand now towards -Z of the left), midpoint moved.
    let mid1 = Vec3::new(0.1, 1.1, -0.2);
    let (l1, r1) = (mid1 + Vec3::new(0.0, 0.0, 0.4), mid1 + Vec3::new(0.0, 0.0, -0.4));
    p.frame(1.0 / 90.0, |s| {
        s.hand_mut(Hand::Left).grip.position = l1;
        s.hand_mut(Hand::Right).grip.position = r1;
    });
    let turn = Quat::from_rotation_y(std::f32::consts::FRAC_PI_2);
    let mid0 = (l0 + r0) / 2.0;
    for (b, old) in before.iter().enumerate() {
        let want = mid1 + turn * ((*old - mid0) * 2.0);
        let got = p.scene.placed(b).unwrap().translation;
        assert!((got - want).length() < 1e-3, "block {b}: {got} vs {want}");
    }
    assert!((p.scene.stage_from_root().scale - 2.0).abs() < 1e-4);
    // Letting go of one hand ends it; the network stays.
    p.set(Hand::Left, |h| h.grab = false);
    assert!(p.scene.two_hand.is_none());
    let after = p.scene.placed(0).unwrap();
    p.frame(1.0 / 90.0, |s| s.hand_mut(Hand::Right).grip.position += Vec3::X);
    assert_eq!(p.scene.placed(0).unwrap(), after);
}

#[test]
fn folding_shrinks_the_collider_so_a_ray_through_the_old_footprint_misses() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let entity = p.scene.blocks[CONV2];
    let body = p.scene.world.get::<&netwalk::scene::world::Body>(entity).unwrap().0;
    let (_, _, half_open) = p.scene.picking.get_box(body).unwrap();
    let (lo, hi) = p.scene.bounds(CONV2).unwrap();
    // Tile 0 (top left of the 4×4 grid) is hit before folding.
    let target = tile_center(&p.scene, CONV2, 0);
    let from = in_front(&p.scene, CONV2, target, 0.3);
    p.aim(Hand::Left, from, target);
    let hit = p.scene.hands[0].hover.clone().unwrap();
    assert_eq!((hit.block, hit.neuron.as_ref().map(|n| n[0])), (CONV2, Some(0)));
    p.click(Hand::Left, fold);
    // Animated: part way after 0.1 s, done within 0.3 s.
    p.wait(0.1);
    let mid = *p.scene.world.get::<&Fold>(entity).unwrap();
    assert!(mid.folded && mid.progress > 0.0 && mid.progress < 1.0, "{mid:?}");
    p.wait(0.2);
    assert_eq!(p.scene.world.get::<&Fold>(entity).unwrap().progress, 1.0);
    let (_, _, half_folded) = p.scene.picking.get_box(body).unwrap();
    // Folded: one 0.14 m tile wide and high, 16 tiles deep.
    let tile = 14.0 * 0.01;
    assert!(
        (half_folded.x - tile / 2.0).abs() < 1e-4 && (half_folded.y - tile / 2.0).abs() < 1e-4,
        "{half_folded}"
    );
    assert!(half_folded.x < half_open.x / 3.0);
    assert!((half_folded.z - 15.0 * 0.01 / 2.0).abs() < 1e-4);
    let (flo, fhi) = p.scene.bounds(CONV2).unwrap();
    assert!(fhi.y - flo.y < (hi.y - lo.y) / 3.0);
    // The same ray no longer reaches this block.
    let now = systems::pick(&p.scene, from, target - from);
    assert!(now.as_ref().is_none_or(|h| h.block != CONV2), "{now:?}");
    // A ray at the stack's center hits its front tile.
    let c = p.scene.placed(CONV2).unwrap().translation;
    let hit = systems::pick(
        &p.scene,
        in_front(&p.scene, CONV2, c, 0.3),
        c - in_front(&p.scene, CONV2, c, 0.3),
    )
    .unwrap();
    assert_eq!((hit.block, hit.neuron.map(|n| n[0])), (CONV2, Some(0)));
    // Expanding brings the footprint back.
    p.aim(Hand::Left, in_front(&p.scene, CONV2, c, 0.3), c);
    p.click(Hand::Left, fold);
    p.wait(0.3);
    assert_eq!(p.scene.bounds(CONV2).unwrap(), (lo, hi));
    assert_eq!(systems::pick(&p.scene, from, target - from).unwrap().block, CONV2);
}

#[test]
fn layout_switch_moves_tile_k_where_the_linear_layout_puts_it() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let entity = p.scene.blocks[CONV1];
    let c = p.scene.placed(CONV1).unwrap();
    p.aim(
        Hand::Right,
        in_front(&p.scene, CONV1, c.translation, 0.3),
        c.translation,
    );
    p.click(Hand::Right, layout);
    assert_eq!(p.scene.world.get::<&Layout>(entity).unwrap().0, LayoutKind::Linear);
    // 8 tiles of 0.28 m, 20 % gaps, in one row centered on the block: tile k at x = (k − 3.5)·pitch.
    let pitch = 0.28 * 1.2;
    for k in 0..8 {
        let want = c.transform_point(Vec3::new((k as f32 - 3.5) * pitch, 0.0, 0.0));
        let got = tile_center(&p.scene, CONV1, k);
        assert!((got - want).length() < 1e-4, "tile {k}: {got} vs {want}");
    }
    // The collider follows: a ray at the far right tile hits it, tile 7.
    let t7 = pixel(&p.scene, CONV1, 7, 10, 10);
    let hit = systems::pick(
        &p.scene,
        in_front(&p.scene, CONV1, t7, 0.3),
        t7 - in_front(&p.scene, CONV1, t7, 0.3),
    )
    .unwrap();
    assert_eq!((hit.block, hit.neuron), (CONV1, Some(vec![7, 10, 10])));
    // Menu resets the layout.
    p.click(Hand::Right, menu);
    assert_eq!(p.scene.world.get::<&Layout>(entity).unwrap().0, LayoutKind::Grid);
}

fn offset(model: &Model, src: Source, index: &[usize]) -> usize {
    model.source_shape(src).offset(index).unwrap()
}

#[test]
fn the_inspect_panel_equals_the_models_neuron_query() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let m = &demo.model;
    let target = pixel(&p.scene, CONV1, 5, 3, 20);
    p.aim(Hand::Right, in_front(&p.scene, CONV1, target, 0.4), target);
    p.click(Hand::Right, select);
    let panel = p.scene.panel().unwrap();
    let conv1 = m.layer_index("conv1").unwrap();
    let relu1 = m.layer_index("relu1").unwrap();
    let q = nn::query::neuron(m, &demo.weights, &demo.acts, conv1, &[5, 3, 20]).unwrap();
    assert_eq!(panel.layer, "conv1");
    // The block shows the relu's value; the conv explains it.
    assert_eq!(
        panel.activation,
        demo.acts.layers[relu1][offset(m, Source::Layer(relu1), &[5, 3, 20])]
    );
    assert_eq!(panel.activation, q.value.max(0.0));
    assert_eq!((panel.pre_activation, panel.bias), (q.pre_activation, q.bias));
    assert_eq!(panel.input_count, q.inputs.len());
    assert_eq!(panel.inputs.len(), 9);
    for (a, b) in panel.inputs.iter().zip(&q.inputs) {
        assert_eq!(
            (a.source, &a.index, a.weight, a.activation),
            (b.source, &b.index, b.weight, b.activation)
        );
        assert_eq!(a.layer, "image");
        assert_eq!(
            a.shown,
            Some(NeuronRef {
                block: 0,
                index: b.index.clone()
            })
        );
    }
    // The kernel image: the 3×3 weights of output channel 5, the same ones the query lists.
    let k = panel.kernel.unwrap();
    assert_eq!((k.channels, k.h, k.w), (1, 3, 3));
    for i in &q.inputs {
        let (ky, kx) = (i.index[1] + 1 - 3, i.index[2] + 1 - 20);
        assert_eq!(Some(k.values[ky * 3 + kx]), i.weight);
    }
    // The receptive field in the input: the 3×3 window, lit by one quad.
    assert_eq!(panel.receptive_field.len(), 1);
    let draw = scene::scene_draw(&p.scene);
    assert_eq!(draw.receptive_field.len(), 1);
    assert_eq!(
        (draw.receptive_field[0].block, draw.receptive_field[0].quads.len()),
        (0, 1)
    );
    let q0 = draw.receptive_field[0].quads[0];
    let centre = q0.transform_point3(Vec3::ZERO);
    let want = pixel(&p.scene, 0, 0, 3, 20);
    assert!((centre - want).length() < 0.005, "{centre} vs {want}");
    assert!(draw.panel.is_some());

    // A dense neuron: inputs come from `flatten`, shown in the pool2 block.
    let cube = p.scene.placement(FC1).unwrap().neurons[11].center;
    p.aim(Hand::Right, in_front(&p.scene, FC1, cube, 0.3), cube);
    p.click(Hand::Right, select);
    let panel = p.scene.panel().unwrap();
    let fc1 = m.layer_index("fc1").unwrap();
    let q = nn::query::neuron(m, &demo.weights, &demo.acts, fc1, &[11]).unwrap();
    assert_eq!(
        (panel.layer.as_str(), panel.pre_activation, panel.bias),
        ("fc1", q.pre_activation, q.bias)
    );
    assert_eq!(panel.input_count, 784);
    let pool2 = m.layer_index("pool2").unwrap();
    for i in &panel.inputs {
        assert_eq!(i.layer, "flatten");
        let shown = i.shown.clone().unwrap();
        assert_eq!(shown.block, POOL2);
        let off = offset(m, Source::Layer(pool2), &shown.index);
        assert_eq!(demo.acts.layers[pool2][off], i.activation);
    }
}

#[test]
fn trace_walks_back_to_the_input() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let digit = demo
        .acts
        .layers
        .last()
        .unwrap()
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    systems::select(
        &mut p.scene,
        &demo.net(),
        Some(NeuronRef {
            block: SOFTMAX,
            index: vec![digit],
        }),
    )
    .unwrap();
    let mut path = vec![p.scene.selection.clone().unwrap()];
    for _ in 0..10 {
        let expected = p.scene.panel().unwrap().inputs.iter().find_map(|i| i.shown.clone());
        // Thumbstick flick left steps back.
        p.set(Hand::Right, |h| h.thumbstick.x = -1.0);
        p.set(Hand::Right, |h| h.thumbstick.x = 0.0);
        let now = p.scene.selection.clone().unwrap();
        if now == *path.last().unwrap() {
            break;
        }
        assert_eq!(Some(now.clone()), expected);
        path.push(now);
    }
    let blocks: Vec<usize> = path.iter().map(|n| n.block).collect();
    assert_eq!(blocks, vec![7, 6, 5, 4, 3, 2, 1, 0], "{path:?}");
    // At the input there is nothing further back.
    assert!(!systems::trace(&mut p.scene, &demo.net()).unwrap());
    assert_eq!(p.scene.panel().unwrap().layer, "image");
}

#[test]
fn tabletop_scale_fits_the_network_in_front_of_the_user_and_still_picks_exactly() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    p.set(Hand::Right, |h| h.thumbstick.x = 1.0);
    assert_eq!(p.scene.scale, Scale::Tabletop);
    let mut lo = Vec3::splat(f32::INFINITY);
    let mut hi = Vec3::splat(f32::NEG_INFINITY);
    for b in 0..p.scene.blocks.len() {
        let (a, c) = p.scene.bounds(b).unwrap();
        (lo, hi) = (lo.min(a), hi.max(c));
    }
    assert!(hi.x - lo.x <= 0.9 + 1e-3, "{lo} {hi}");
    assert!(hi.z < 0.0 && lo.z > -1.0 && lo.y > 0.5 && hi.y < 1.6, "{lo} {hi}");
    let target = pixel(&p.scene, CONV2, 9, 4, 11);
    p.aim(Hand::Right, in_front(&p.scene, CONV2, target, 0.2), target);
    p.click(Hand::Right, select);
    assert_eq!(
        p.scene.selection,
        Some(NeuronRef {
            block: CONV2,
            index: vec![9, 4, 11]
        })
    );
}

#[test]
fn menu_resets_moves_folds_and_layouts() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let fresh: Vec<_> = (0..p.scene.blocks.len()).map(|b| p.scene.bounds(b).unwrap()).collect();
    let c = p.scene.placed(CONV2).unwrap().translation;
    let from = in_front(&p.scene, CONV2, c, 0.4);
    p.aim(Hand::Right, from, c);
    p.click(Hand::Right, fold);
    p.click(Hand::Right, layout);
    p.set(Hand::Right, |h| h.grab = true);
    p.aim(Hand::Right, from + Vec3::X, c + Vec3::X);
    p.set(Hand::Right, |h| h.grab = false);
    p.wait(0.3);
    assert_ne!(p.scene.bounds(CONV2).unwrap(), fresh[CONV2]);
    p.click(Hand::Right, menu);
    for (b, want) in fresh.iter().enumerate() {
        assert_eq!(p.scene.bounds(b).unwrap(), *want, "block {b}");
    }
}

#[test]
fn the_render_read_out_places_every_tile_and_cube_in_its_block() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let c = p.scene.placed(CONV2).unwrap().translation;
    p.aim(Hand::Right, in_front(&p.scene, CONV2, c, 0.4), c);
    p.click(Hand::Right, fold);
    p.wait(0.1); // mid-animation
    let draw = scene::scene_draw(&p.scene);
    assert_eq!(draw.blocks.len(), 8);
    // The renderer's own draw list accepts the placements as they are: one instance per tile/cube.
    let list = netwalk::gfx::NetworkDraw::new(&demo.model, &demo.acts, &draw.placements()).list;
    let flat =
        netwalk::gfx::NetworkDraw::new(&demo.model, &demo.acts, &scene::layout(&demo.model, LayoutKind::Grid)).list;
    assert_eq!(
        (list.tiles.len(), list.cubes.len()),
        (flat.tiles.len(), flat.cubes.len())
    );
    for (k, b) in draw.blocks.iter().enumerate() {
        let (lo, hi) = b.bounds;
        let inside = |q: Vec3| q.cmpge(lo - 1e-4).all() && q.cmple(hi + 1e-4).all();
        for t in &b.placement.tiles {
            for corner in [Vec3::new(-0.5, -0.5, 0.0), Vec3::new(0.5, 0.5, 0.0)] {
                assert!(inside(t.world_from_tile.transform_point3(corner)), "block {k}");
            }
        }
        assert!(b.placement.neurons.iter().all(|n| inside(n.center)), "block {k}");
        assert_eq!(b.stage_from_block, p.scene.placed(k).unwrap().to_mat4());
    }
    assert!(draw.blocks[CONV2].fold > 0.0 && draw.blocks[CONV2].fold < 1.0 && draw.blocks[CONV2].hovered);
    assert_eq!(draw.rays.len(), 1);
    let ray = draw.rays[0];
    assert!(ray.hit && (ray.end - ray.origin).length() < 0.5);
}

#[test]
fn entering_a_block_asks_for_one_haptic_pulse() {
    let demo = Demo::load();
    let mut scene = demo.scene();
    let c = scene.placed(POOL1).unwrap().translation;
    let mut s = InputSnapshot::default();
    let h = s.hand_mut(Hand::Left);
    h.tracked = true;
    h.aim = Pose::looking_at(in_front(&scene, POOL1, c, 0.3), c).unwrap();
    let prev = InputSnapshot::default();
    let first = update(&mut scene, &demo.net(), &s, &prev, 0.01).unwrap();
    assert_eq!(first.haptic, vec![Hand::Left]);
    let again = update(&mut scene, &demo.net(), &s, &s, 0.01).unwrap();
    assert!(again.haptic.is_empty());
}

fn names(scene: &Scene) -> Vec<String> {
    scene
        .blocks
        .iter()
        .map(|&e| {
            scene
                .world
                .get::<&netwalk::scene::world::Block>(e)
                .unwrap()
                .spec
                .name
                .clone()
        })
        .collect()
}

#[test]
fn a_block_expands_into_its_steps_and_folds_back() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let fresh: Vec<_> = (0..p.scene.blocks.len()).map(|b| p.scene.bounds(b).unwrap()).collect();
    let m = &demo.model;
    // Select a conv1+relu1 neuron, then flick down on the block.
    let target = pixel(&p.scene, CONV1, 2, 10, 11);
    p.aim(Hand::Right, in_front(&p.scene, CONV1, target, 0.4), target);
    p.click(Hand::Right, select);
    let value = p.scene.panel().unwrap().activation;
    p.set(Hand::Right, |h| h.thumbstick.y = -1.0);
    p.set(Hand::Right, |h| h.thumbstick.y = 0.0);
    assert_eq!(
        names(&p.scene),
        [
            "image",
            "conv1",
            "relu1",
            "pool1",
            "conv2+relu2",
            "pool2",
            "fc1+relu3",
            "fc2",
            "softmax"
        ]
    );
    // Side by side where the block stood, facing the same way.
    let (a, b) = (p.scene.placed(1).unwrap(), p.scene.placed(2).unwrap());
    let old = (fresh[CONV1].0 + fresh[CONV1].1) / 2.0;
    assert!(((a.translation + b.translation) / 2.0 - old).length() < 1e-4);
    assert!(a.rotation.angle_between(b.rotation) < 1e-5);
    let side = a.rotation.inverse() * (b.translation - a.translation);
    assert!(side.x > 0.9 && side.y.abs() < 1e-4 && side.z.abs() < 1e-4, "{side}");
    // The selection moved to the step showing the same values (relu1), the panel re-explained.
    assert_eq!(
        p.scene.selection,
        Some(NeuronRef {
            block: 2,
            index: vec![2, 10, 11]
        })
    );
    let panel = p.scene.panel().unwrap();
    assert_eq!((panel.layer.as_str(), panel.activation), ("relu1", value));
    assert_eq!(
        panel.inputs[0].shown,
        Some(NeuronRef {
            block: 1,
            index: vec![2, 10, 11]
        })
    );
    // The conv step shows the conv's own values.
    let conv_pixel = pixel(&p.scene, 1, 2, 10, 11);
    p.aim(Hand::Right, in_front(&p.scene, 1, conv_pixel, 0.4), conv_pixel);
    p.click(Hand::Right, select);
    let panel = p.scene.panel().unwrap();
    let conv1 = m.layer_index("conv1").unwrap();
    assert_eq!(panel.layer, "conv1");
    assert_eq!(Some(panel.activation), panel.pre_activation);
    assert_eq!(panel.activation, demo.acts.layers[conv1][(2 * 28 + 10) * 28 + 11]);
    // Flick down on a step: the block again, where it was.
    p.set(Hand::Right, |h| h.thumbstick.y = -1.0);
    p.set(Hand::Right, |h| h.thumbstick.y = 0.0);
    assert_eq!(names(&p.scene).len(), 8);
    assert_eq!(
        p.scene.selection,
        Some(NeuronRef {
            block: CONV1,
            index: vec![2, 10, 11]
        })
    );
    for (k, want) in fresh.iter().enumerate() {
        let got = p.scene.bounds(k).unwrap();
        assert!(
            (got.0 - want.0).length() < 1e-4 && (got.1 - want.1).length() < 1e-4,
            "block {k}"
        );
    }
    // Single-layer blocks have no steps; the menu folds any expanded block back.
    assert!(!systems::toggle_steps(&mut p.scene, &demo.net(), POOL1).unwrap());
    assert!(systems::toggle_steps(&mut p.scene, &demo.net(), FC1).unwrap());
    assert_eq!(names(&p.scene)[FC1..FC1 + 2], ["fc1", "relu3"]);
    p.click(Hand::Right, menu);
    assert_eq!(names(&p.scene)[FC1], "fc1+relu3");
    assert_eq!(p.scene.picking.len(), 8);
}

#[test]
fn choosing_an_input_on_the_panel_selects_it_where_it_is_shown() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let net = demo.net();
    systems::select(
        &mut p.scene,
        &net,
        Some(NeuronRef {
            block: CONV2,
            index: vec![4, 6, 7],
        }),
    )
    .unwrap();
    let panel = p.scene.panel().unwrap();
    assert_eq!(panel.input_count, 8 * 9);
    let third = panel.inputs[2].clone();
    assert!(systems::select_input(&mut p.scene, &net, 2).unwrap());
    let now = p.scene.selection.clone().unwrap();
    assert_eq!(
        now,
        NeuronRef {
            block: POOL1,
            index: third.index.clone()
        }
    );
    assert_eq!(p.scene.panel().unwrap().activation, third.activation);
    assert!(!systems::select_input(&mut p.scene, &net, 99).unwrap());
    assert_eq!(p.scene.selection, Some(now));
}

#[test]
fn the_chosen_checkpoint_is_kept_in_the_state() {
    let demo = Demo::load();
    let mut scene = demo.scene();
    let net = demo.net();
    assert_eq!(
        scene::replay::state_json(&scene, &net)["checkpoint"],
        serde_json::Value::Null
    );
    let label = demo.model.checkpoints[3].label.clone();
    assert_eq!(
        scene.set_checkpoint(&demo.model, Some(3)).map(|c| c.label.clone()),
        Some(label.clone())
    );
    assert_eq!(
        scene::replay::state_json(&scene, &net)["checkpoint"],
        serde_json::json!({"index": 3, "label": label, "position": 3.0})
    );
    assert!(scene.set_checkpoint(&demo.model, Some(999)).is_none());
    assert_eq!(scene.checkpoint, None);
}

/// A residual network (adds, batchnorm, global pooling): every block gets a place, a collider and
/// a pickable neuron, and a trace from the logits reaches the input.
#[test]
fn a_resnet_lays_out_picks_and_traces_back_to_the_input() {
    let (model, weights) = nn::synthetic::build("resnet18", 3).unwrap();
    let raw: Vec<f32> = (0..model.input.shape.elements())
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    let acts = nn::forward(&model, &weights, &raw).unwrap();
    let net = Network {
        model: &model,
        weights: &weights,
        acts: &acts,
    };
    let mut scene = Scene::new(&model, Stage::default(), Scale::Tabletop);
    let n = scene.blocks.len();
    assert!(n > 20, "{n} blocks");
    assert_eq!(scene.picking.len(), n);
    // The center of every block's first tile or cube picks that block.
    for b in 0..n {
        let p = scene.placement(b).unwrap();
        let at = p
            .tiles
            .first()
            .map(|t| t.world_from_tile.transform_point3(Vec3::ZERO))
            .unwrap_or_else(|| p.neurons[0].center);
        let from = in_front(&scene, b, at, 0.05);
        let hit = systems::pick(&scene, from, at - from).unwrap();
        assert_eq!(hit.block, b, "block {b} ({})", p.name);
        assert!(hit.neuron.is_some());
    }
    let last = n - 1;
    systems::select(
        &mut scene,
        &net,
        Some(NeuronRef {
            block: last,
            index: vec![0],
        }),
    )
    .unwrap();
    let mut steps = 0;
    while systems::trace(&mut scene, &net).unwrap() {
        steps += 1;
        assert!(steps < 200);
    }
    assert_eq!(scene.selection.as_ref().map(|s| s.block), Some(0));
}

#[test]
fn choosing_a_sample_on_the_tray_asks_for_it_and_the_tray_follows_the_input() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    p.scene.set_sample_tray(10);
    assert_eq!(p.scene.picking.len(), 8 + 10);
    let draw = scene::scene_draw(&p.scene);
    assert_eq!(draw.tray.len(), 10);
    // Under the input block, left to right.
    let (lo, _) = p.scene.bounds(0).unwrap();
    let item = |d: &scene::SceneDraw, k: usize| d.tray[k].stage_from_tile.transform_point3(Vec3::ZERO);
    assert!(item(&draw, 0).y < lo.y && item(&draw, 1).x > item(&draw, 0).x);
    let t3 = item(&draw, 3);
    p.aim(Hand::Right, in_front(&p.scene, 0, t3, 0.3), t3);
    assert_eq!(p.scene.hands[1].tray, Some(3));
    assert!(p.scene.hands[1].hover.is_none());
    p.set(Hand::Right, |h| h.select = true);
    assert_eq!(p.scene.sample, Some(3));
    let draw = scene::scene_draw(&p.scene);
    assert!(draw.tray[3].hovered && draw.tray[3].current && !draw.tray[2].current);
    p.set(Hand::Right, |h| h.select = false);
    // Moving the input block carries the tray along.
    let c = p.scene.placed(0).unwrap().translation;
    let from = in_front(&p.scene, 0, c, 0.4);
    p.aim(Hand::Right, from, c);
    p.set(Hand::Right, |h| h.grab = true);
    p.aim(Hand::Right, from + Vec3::Y * 0.2, c + Vec3::Y * 0.2);
    let moved = item(&scene::scene_draw(&p.scene), 3);
    assert!((moved - (t3 + Vec3::Y * 0.2)).length() < 1e-4);
    // And picking follows it.
    p.set(Hand::Right, |h| h.grab = false);
    p.aim(Hand::Right, in_front(&p.scene, 0, moved, 0.3), moved);
    assert_eq!(p.scene.hands[1].tray, Some(3));
}

#[test]
fn drawing_on_the_input_paints_the_pixels_under_the_ray() {
    let demo = Demo::load();
    let mut p = Player::new(&demo);
    let c = p.scene.placed(0).unwrap().translation;
    let from = in_front(&p.scene, 0, c, 0.4);
    p.aim(Hand::Right, from, c);
    p.click(Hand::Right, layout);
    assert!(p.scene.canvas.is_some() && scene::scene_draw(&p.scene).drawing);
    // The canvas starts as the input as given: the sample's own pixels.
    let samples = nn::Samples::load(&demo.model, demo.model.samples.as_ref().unwrap()).unwrap();
    let start = p.scene.canvas.clone().unwrap();
    assert!(start.iter().zip(samples.image(0)).all(|(a, b)| (a - b).abs() < 1e-5));
    // Clear, then drag along row 5 from column 10 to 12.
    p.click(Hand::Right, fold);
    assert_eq!(p.scene.canvas.as_ref().unwrap().iter().sum::<f32>(), 0.0);
    let at = |p: &Player, x: usize| pixel(&p.scene, 0, 0, 5, x);
    p.aim(Hand::Right, in_front(&p.scene, 0, at(&p, 10), 0.4), at(&p, 10));
    p.set(Hand::Right, |h| h.select = true);
    let first = p.events.input.clone().expect("painting asks for a new input");
    p.aim(Hand::Right, in_front(&p.scene, 0, at(&p, 12), 0.4), at(&p, 12));
    let painted = p.events.input.clone().unwrap();
    p.set(Hand::Right, |h| h.select = false);
    // A 3×3 brush at (5, 10) then (5, 12): rows 4..=6, columns 9..=13.
    let want: Vec<f32> = (0..28 * 28)
        .map(|i| {
            if (4..=6).contains(&(i / 28)) && (9..=13).contains(&(i % 28)) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    assert_eq!(painted, want);
    assert_eq!(first.iter().sum::<f32>(), 9.0);
    // Painting does not select; leaving draw mode makes select inspect again.
    assert_eq!(p.scene.selection, None);
    p.click(Hand::Right, layout);
    assert!(p.scene.canvas.is_none());
    p.click(Hand::Right, select);
    assert_eq!(p.scene.selection.map(|s| s.block), Some(0));
}

/// The CNN through every op real CNNs add (tests/fixtures/ops_model.json): prelu, a layer scale
/// (mul by a same-shape constant) and a transposed conv's activation fold into their conv blocks,
/// two-input binary ops are blocks of their own; every block's neurons are explained, and a trace
/// from the output reaches the input.
#[test]
fn cnn_ops_lay_out_explain_and_trace_back_to_the_input() {
    let model = Model::parse(
        include_str!("fixtures/ops_model.json"),
        std::path::Path::new("<cnn ops>/model.json"),
    )
    .unwrap();
    let weights = nn::synthetic::random_weights(&model, 5).unwrap();
    let raw: Vec<f32> = (0..model.input.shape.elements())
        .map(|i| (i % 11) as f32 / 10.0)
        .collect();
    let acts = nn::forward(&model, &weights, &raw).unwrap();
    let net = Network {
        model: &model,
        weights: &weights,
        acts: &acts,
    };
    let specs = scene::layout::blocks(&model);
    let names: Vec<&str> = specs.iter().map(|b| b.name.as_str()).collect();
    for folded in ["conv1+prelu1", "rowmap+rowscale", "deconv+deconv_relu", "fc+fc_prelu"] {
        assert!(names.contains(&folded), "{folded} not in {names:?}");
    }
    // Each block's label says what made it (the input's says "input" by its colormap range).
    let what = |name: &str| specs.iter().find(|b| b.name == name).map(|b| b.what.as_str());
    assert_eq!(what("conv1+prelu1"), Some("conv 3×3 → prelu"));
    assert_eq!(what("se"), Some("× channel gate"));
    assert_eq!(what("deconv+deconv_relu"), Some("transposed conv 3×3 /2 → relu"));
    assert_eq!(specs[0].what, "");
    for own in [
        "se",
        "outer",
        "sum3",
        "shuffle",
        "half",
        "ln",
        "padded",
        "up_bilinear",
        "deconv_g",
    ] {
        assert!(names.contains(&own), "{own} not in {names:?}");
    }
    for (b, spec) in specs.iter().enumerate().skip(1) {
        for off in [0, spec.shape.elements() / 2, spec.shape.elements() - 1] {
            let n = NeuronRef {
                block: b,
                index: spec.shape.index_of(off),
            };
            let panel = scene::inspect::explain(&net, &specs, &n).unwrap();
            assert!(panel.layer_index.is_some(), "{}", spec.name);
            if spec.name.starts_with("deconv") {
                // A transposed conv's kernel: its group's input channels' taps.
                let k = panel.kernel.as_ref().expect("a transposed conv's kernel");
                let want = match spec.name.as_str() {
                    "deconv_g" => (1, 2, 3),
                    "deconv_crop" => (3, 2, 2),
                    _ => (3, 3, 3),
                };
                assert_eq!((k.channels, k.h, k.w), want, "{}", spec.name);
                assert_eq!(k.values.len(), k.channels * k.h * k.w);
            }
        }
    }
    let mut scene = Scene::new(&model, Stage::default(), Scale::Tabletop);
    let last = scene.blocks.len() - 1;
    systems::select(
        &mut scene,
        &net,
        Some(NeuronRef {
            block: last,
            index: vec![0],
        }),
    )
    .unwrap();
    let mut steps = 0;
    while systems::trace(&mut scene, &net).unwrap() {
        steps += 1;
        assert!(steps < 200);
    }
    assert_eq!(scene.selection.as_ref().map(|s| s.block), Some(0));
}

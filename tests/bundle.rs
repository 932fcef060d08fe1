//! Edge bundling of fully connected layers: the edges extracted from the model (values,
//! aggregation, budget), and the GPU bundler on a real device (lavapipe on CI) with validation on:
//! endpoints stay fixed, strength 0 is straight, full bundling contracts compatible edges by a
//! factor computed from the setup and the schedule, results do not depend on the edges' order,
//! incremental updates. The drawn edges' pixels are in tests/bundle_draw.rs.
//!
//! Without a Vulkan device the GPU tests fail under CI and print a skip note elsewhere.

mod bundle_support;
mod common;

use std::path::Path;

use bundle_support::{curves_at, finish, fully_connected, renderer, row, two_bundles};
use glam::{Vec2, Vec3};
use netwalk::gfx::RgbaImage;
use netwalk::gfx::bundle::{self, BundleStyle, EdgeInstance, GRID, GRID_MARGIN, SEGMENTS};
use netwalk::nn::edges::{self, EdgeValue};
use netwalk::nn::{self, Activations, Model};
use netwalk::scene::edges::{EdgeOptions, SceneEdges};
use netwalk::scene::{self, LayoutKind, NeuronRef};

fn mean_pairwise(points: &[Vec3]) -> f32 {
    let mut sum = 0.0;
    let mut n = 0;
    for i in 0..points.len() {
        for j in i + 1..points.len() {
            sum += points[i].distance(points[j]);
            n += 1;
        }
    }
    sum / n as f32
}

#[test]
fn endpoints_stay_fixed_and_strength_zero_is_straight() {
    let Some(mut r) = renderer() else { return };
    let e = two_bundles();
    r.set_edges(&e).expect("upload");
    let time = r.bundle_now().expect("bundle");
    assert!(time.is_some(), "lavapipe has timestamps; the bundle ran");
    let bundled = curves_at(&mut r, 1.0);
    let straight = curves_at(&mut r, 0.0);
    assert_eq!(bundled.len(), e.edges.len());
    let mut moved = 0f32;
    for ((edge, b), s) in e.edges.iter().zip(&bundled).zip(&straight) {
        assert_eq!(b.len(), SEGMENTS as usize + 1);
        for c in [b, s] {
            assert!(c[0].distance(edge.a) < 1e-6, "source end moved: {} vs {}", c[0], edge.a);
            assert!(c[SEGMENTS as usize].distance(edge.b) < 1e-5, "target end moved");
        }
        for (k, p) in s.iter().enumerate() {
            let want = edge.a.lerp(edge.b, k as f32 / SEGMENTS as f32);
            assert!(
                p.distance(want) < 1e-5,
                "strength 0, point {k}: {p} is not on the line ({want})"
            );
        }
        moved = moved.max(b.iter().zip(s).map(|(p, q)| p.distance(*q)).fold(0.0, f32::max));
    }
    // Not a vacuous pass: bundling did move the interior points.
    assert!(moved > 0.01, "bundling moved nothing ({moved} m)");
    finish(r);
}

/// `n × n` points over a `width`-wide square facing +Z around `center`.
fn square(center: Vec3, width: f32, n: usize) -> Vec<Vec3> {
    let side = row(Vec3::ZERO, width, n);
    side.iter()
        .flat_map(|x| side.iter().map(move |y| center + Vec3::new(x.x, y.x, 0.0)))
        .collect()
}

#[test]
fn full_bundling_contracts_compatible_edges_by_the_computed_factor() {
    let Some(mut r) = renderer() else { return };
    // One layer pair: 6×6 sources in a 0.6 m square at z = 0, all connected to 6×6 targets in a
    // 0.6 m square at z = −1.2: every edge is compatible with every other.
    let mut e = SceneEdges::default();
    let sources = square(Vec3::new(0.0, 1.4, 0.0), 0.6, 6);
    let targets = square(Vec3::new(0.0, 1.4, -1.2), 0.6, 6);
    fully_connected(&sources, &targets, 0, &mut e);
    r.set_edges(&e).expect("upload");
    let bundled = curves_at(&mut r, 1.0);
    let mid = SEGMENTS as usize / 2;
    let before = mean_pairwise(&e.edges.iter().map(|e| (e.a + e.b) / 2.0).collect::<Vec<_>>());
    let after = mean_pairwise(&bundled.iter().map(|c| c[mid]).collect::<Vec<_>>());
    // The grid the bundler uses for this group: the endpoints span 0.6 m each way; with the
    // margins the grid is that wide, in GRID cells.
    let instances: Vec<EdgeInstance> = e
        .edges
        .iter()
        .map(|p| EdgeInstance {
            a: p.a.extend(f32::from_bits(p.group)).to_array(),
            b: p.b.extend(0.0).to_array(),
        })
        .collect();
    let cell = 0.6 * (1.0 + 2.0 * GRID_MARGIN) / GRID as f32;
    let frame = bundle::group_frames(&instances, 1, &e.max_abs())[0];
    assert!((frame.cell() - cell).abs() < 1e-5, "cell {} vs {cell}", frame.cell());
    // Fixed-step gradient ascent on a unimodal density: a midpoint ends within the last step of
    // the mode (once there it overshoots by at most a step), plus a cell for the density's
    // discretization; two midpoints are within twice that of each other.
    let last = *bundle::full_schedule().last().expect("iterations");
    let resolution = 2.0 * (last.step + 1.0) * cell;
    let factor = before / resolution;
    assert!(factor > 3.0, "the setup should allow a real contraction ({factor})");
    assert!(
        after <= before / factor,
        "mean midpoint distance {after} m after bundling, {before} m before: expected a drop by {factor}x"
    );
    eprintln!(
        "contraction: {before} -> {after} (bound {}, factor {factor})",
        before / factor
    );
    finish(r);
}

#[test]
fn separate_bundles_stay_apart() {
    let Some(mut r) = renderer() else { return };
    let e = two_bundles();
    r.set_edges(&e).expect("upload");
    let bundled = curves_at(&mut r, 1.0);
    let mid = SEGMENTS as usize / 2;
    let half = e.edges.len() / 2;
    let centroid = |c: &[Vec<Vec3>]| c.iter().map(|c| c[mid]).sum::<Vec3>() / c.len() as f32;
    // No edge joins them and the kernel is far narrower than the gap: they keep their 1 m apart.
    let gap = centroid(&bundled[..half]).distance(centroid(&bundled[half..]));
    assert!(
        (gap - 1.0).abs() < 0.05,
        "the bundles moved towards each other: {gap} m apart"
    );
    finish(r);
}

#[test]
fn results_do_not_depend_on_edge_order() {
    let Some(mut r) = renderer() else { return };
    let e = two_bundles();
    r.set_edges(&e).expect("upload");
    let first = curves_at(&mut r, 1.0);
    // The same edges in another order (a fixed permutation: reversed, then interleaved).
    let n = e.edges.len();
    let order: Vec<usize> = (0..n).map(|i| if i % 2 == 0 { n - 1 - i / 2 } else { i / 2 }).collect();
    let mut shuffled = e.clone();
    shuffled.edges = order.iter().map(|&i| e.edges[i]).collect();
    shuffled.values = order.iter().map(|&i| e.values[i]).collect();
    r.set_edges(&shuffled).expect("upload");
    let second = curves_at(&mut r, 1.0);
    for (k, &i) in order.iter().enumerate() {
        assert_eq!(
            second[k], first[i],
            "edge {i} (at {k} when shuffled) bundled differently"
        );
    }
    finish(r);
}

#[test]
fn new_values_update_the_bundle_incrementally() {
    let Some(mut r) = renderer() else { return };
    let mut e = two_bundles();
    r.set_edges(&e).expect("upload");
    r.bundle_now().expect("full");
    let before = curves_at(&mut r, 1.0);
    // The left bundle's first source becomes far the strongest: its edges pull the others.
    for (edge, v) in e.edges.iter().zip(e.values.iter_mut()) {
        // Left of -0.55 m: only the left bundle's first source (its row spans -0.56 .. -0.44).
        if edge.a.x < -0.55 {
            *v = 10.0;
        }
    }
    r.set_edge_values(&e).expect("values");
    let time = r.bundle_now().expect("incremental");
    assert!(time.is_some(), "the update ran");
    let after = curves_at(&mut r, 1.0);
    let changed = before
        .iter()
        .zip(&after)
        .flat_map(|(b, a)| b.iter().zip(a).map(|(p, q)| p.distance(*q)))
        .fold(0.0, f32::max);
    assert!(changed > 1e-4, "new values changed nothing");
    for (edge, c) in e.edges.iter().zip(&after) {
        assert!(c[0].distance(edge.a) < 1e-6 && c[SEGMENTS as usize].distance(edge.b) < 1e-5);
    }
    // Nothing pending any more: a second call has nothing to do.
    assert_eq!(r.bundle_now().expect("nothing"), None);
    finish(r);
}

fn parse(layers: &str, input: &str) -> Model {
    let json = format!(
        r#"{{"format": "netwalk-model/1", "name": "t", "weights": "w.safetensors",
            "input": {{"name": "image", "shape": {input}}}, "layers": [{layers}]}}"#
    );
    Model::parse(&json, Path::new("/nonexistent/model.json")).expect("valid test model")
}

#[test]
fn synthetic_mlps_have_the_edge_counts_the_benchmark_needs() {
    let count = |name: &str| {
        let (model, _) = nn::synthetic::build(name, 1).expect("synthetic");
        edges::dense_layers(&model)
            .iter()
            .map(|&l| model.layers[l].fan_in().unwrap_or(0) * model.layers[l].shape.elements())
            .sum::<usize>()
    };
    assert_eq!(count("mlp-784-81-49-10"), 784 * 81 + 81 * 49 + 49 * 10);
    assert!(count("mlp-1024-1024-10") >= 1_000_000);
    assert!(nn::synthetic::build("mlp-5", 1).is_err(), "one width is no MLP");
    assert!(nn::synthetic::build("mlp-5-x", 1).is_err());
}

#[test]
fn conv_to_dense_edges_aggregate_by_channel_and_add_up_to_the_pre_activation() {
    // A 2×3×3 map, flattened, into 2 outputs: 18 sources, aggregated when over 4.
    let model = parse(
        r#"{"name": "flat", "op": "flatten"}, {"name": "fc", "op": "dense", "out_features": 2}"#,
        "[2, 3, 3]",
    );
    let weights = nn::synthetic::random_weights(&model, 3).expect("weights");
    let input: Vec<f32> = (0..18).map(|i| (i as f32 * 0.37).sin()).collect();
    let acts = nn::forward(&model, &weights, &input).expect("forward");
    let w: Vec<f32> = weights.layers[1]
        .weight
        .as_ref()
        .expect("weight")
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("values");
    let b: Vec<f32> = weights.layers[1]
        .bias
        .as_ref()
        .expect("bias")
        .to_vec1()
        .expect("bias values");
    let full = edges::dense_edges(&model, &weights, &acts, 1, EdgeValue::Weight, 100).expect("edges");
    assert!(!full.aggregated && full.sources == 18 && full.targets == 2 && full.len() == 36);
    assert_eq!(full.value(5, 1), w[18 + 5]);
    let agg = edges::dense_edges(&model, &weights, &acts, 1, EdgeValue::Weight, 4).expect("edges");
    assert!(agg.aggregated && agg.sources == 2);
    let sum: f32 = w[9..18].iter().sum();
    assert!((agg.value(1, 0) - sum).abs() < 1e-5, "channel 1's weights summed");
    let imp = edges::dense_edges(&model, &weights, &acts, 1, EdgeValue::Importance, 4).expect("edges");
    assert_eq!(b.len(), 2, "two outputs");
    for (o, bias) in b.iter().enumerate() {
        // The channels' contributions plus the bias are the output's pre-activation.
        let pre = imp.value(0, o) + imp.value(1, o) + bias;
        assert!(
            (pre - acts.layers[1][o]).abs() < 1e-4,
            "output {o}: {pre} vs {}",
            acts.layers[1][o]
        );
    }
    assert!(
        edges::dense_edges(&model, &weights, &acts, 0, EdgeValue::Weight, 4).is_err(),
        "flatten has no edges"
    );
}

fn mlp() -> (Model, nn::Weights, Activations) {
    let model = parse(
        r#"{"name": "fc1", "op": "dense", "out_features": 6}, {"name": "relu", "op": "relu"},
           {"name": "fc2", "op": "dense", "out_features": 3}"#,
        "[5]",
    );
    let weights = nn::synthetic::random_weights(&model, 5).expect("weights");
    let acts = nn::forward(&model, &weights, &[0.5, -1.0, 0.25, 2.0, 1.0]).expect("forward");
    (model, weights, acts)
}

#[test]
fn scene_edges_join_the_cubes_and_drop_the_weakest_over_budget_counting_them() {
    let (model, weights, acts) = mlp();
    let placements = scene::layout(&model, LayoutKind::Grid);
    let all = SceneEdges::build(&model, &weights, &acts, &placements, &EdgeOptions::default()).expect("edges");
    assert_eq!(all.edges.len(), 5 * 6 + 6 * 3);
    assert_eq!(all.dropped, 0);
    assert_eq!(all.layers.len(), 2);
    // fc1's edge from input 4 to output 2 joins those cubes.
    let l = &all.layers[0];
    let (src, dst) = (&placements[l.source_block], &placements[l.target_block]);
    let e = all.edges[l.kept.clone()]
        .iter()
        .position(|e| e.source == 4 && e.target == 2)
        .expect("edge");
    assert_eq!(all.edges[e].a, src.neurons[4].center);
    assert_eq!(all.edges[e].b, dst.neurons[2].center);
    // fc2 reads the relu: its edges leave the fc1+relu block.
    assert_eq!(all.layers[1].source_block, all.layers[0].target_block);
    // Over budget: the 10 strongest stay, 38 are dropped and counted.
    let options = EdgeOptions {
        budget: 10,
        ..EdgeOptions::default()
    };
    let some = SceneEdges::build(&model, &weights, &acts, &placements, &options).expect("edges");
    assert_eq!((some.edges.len(), some.dropped), (10, 38));
    let weakest_kept = some.values.iter().map(|v| v.abs()).fold(f32::INFINITY, f32::min);
    let strongest_overall = {
        let mut m: Vec<f32> = all.values.iter().map(|v| v.abs()).collect();
        m.sort_by(|a, b| b.total_cmp(a));
        m
    };
    assert_eq!(weakest_kept, strongest_overall[9]);
    // New weights, same edges: values follow the weights' new values.
    let other = nn::synthetic::random_weights(&model, 6).expect("weights");
    let values = some.revalue(&model, &other, &acts, &options).expect("revalue");
    let fresh = SceneEdges::build(&model, &other, &acts, &placements, &EdgeOptions::default()).expect("edges");
    for (edge, v) in some.edges.iter().zip(&values) {
        let layer = &fresh.layers[edge.group as usize];
        let i = fresh.edges[layer.kept.clone()]
            .iter()
            .position(|f| f.source == edge.source && f.target == edge.target)
            .expect("same edge");
        assert_eq!(*v, fresh.values[layer.kept.start + i]);
    }
    // Under a threshold of half the largest |value|: the hidden ones are counted.
    let max = all.max_abs();
    let hidden = all
        .edges
        .iter()
        .zip(&all.values)
        .filter(|(e, v)| v.abs() < 0.5 * max[e.group as usize])
        .count();
    assert!(hidden > 0);
    assert_eq!(all.below_threshold(0.5), hidden);
}

#[test]
fn a_selected_neuron_owns_its_incoming_and_outgoing_edges() {
    let (model, weights, acts) = mlp();
    let placements = scene::layout(&model, LayoutKind::Grid);
    let all = SceneEdges::build(&model, &weights, &acts, &placements, &EdgeOptions::default()).expect("edges");
    // Neuron 2 of fc1+relu: 5 edges in (fc1), 3 out (fc2).
    let block = all.layers[0].target_block;
    let mine = all.touching(&NeuronRef { block, index: vec![2] }, &model);
    assert_eq!(mine.len(), 5 + 3);
    for &i in &mine {
        let e = &all.edges[i as usize];
        assert!(
            (e.group == 0 && e.target == 2) || (e.group == 1 && e.source == 2),
            "{e:?}"
        );
    }
}

#[test]
fn the_left_grip_and_stick_set_the_bundling_strength_and_keep_play_pause_apart() {
    use netwalk::input::{Hand, InputSnapshot};
    let mut app = common::demo_app(0, scene::Stage::default());
    let start = app.bundle_style.strength;
    let sweep = netwalk::app::BUNDLE_SWEEP_SECONDS;
    let mut frame = InputSnapshot::default();
    let run = |frame: &mut InputSnapshot, seconds: f32, app: &mut netwalk::app::App| {
        for _ in 0..(seconds * 90.0).round() as usize {
            frame.time += 1.0 / 90.0;
            app.step(frame).expect("step");
        }
    };
    // Grip held, stick down for 0.5 s: a quarter of the sweep less; the timeline does not play.
    frame.hand_mut(Hand::Left).grab = true;
    frame.hand_mut(Hand::Left).thumbstick = Vec2::new(0.0, -1.0);
    run(&mut frame, 0.5, &mut app);
    let lowered = app.bundle_style.strength;
    assert!((lowered - (start - 0.5 / sweep)).abs() < 0.02, "{start} -> {lowered}");
    assert!(!app.scene.playing);
    // Up, long enough to reach the top: clamped at 1.
    frame.hand_mut(Hand::Left).thumbstick = Vec2::new(0.0, 1.0);
    run(&mut frame, sweep, &mut app);
    assert_eq!(app.bundle_style.strength, 1.0);
    assert!(!app.scene.playing, "with the grip held, up is not play");
    // Without the grip the stick's flick up plays the timeline and leaves the strength alone.
    frame.hand_mut(Hand::Left).grab = false;
    frame.hand_mut(Hand::Left).thumbstick = Vec2::ZERO;
    run(&mut frame, 0.1, &mut app);
    frame.hand_mut(Hand::Left).thumbstick = Vec2::new(0.0, 1.0);
    run(&mut frame, 0.1, &mut app);
    assert!(app.scene.playing);
    assert_eq!(app.bundle_style.strength, 1.0);
    // The desktop's `]` / `[` (InputSnapshot::bundle) sweep it the same way.
    frame.hand_mut(Hand::Left).thumbstick = Vec2::ZERO;
    frame.bundle = -1.0;
    run(&mut frame, 1.0, &mut app);
    assert!((app.bundle_style.strength - (1.0 - 1.0 / sweep)).abs() < 0.02);
}

#[test]
fn moved_edges_keep_their_bundle_and_follow_the_move() {
    let Some(mut r) = renderer() else { return };
    let mut e = SceneEdges::default();
    fully_connected(
        &square(Vec3::new(0.0, 1.4, 0.0), 0.6, 5),
        &square(Vec3::new(0.0, 1.4, -1.2), 0.6, 5),
        0,
        &mut e,
    );
    r.set_edges(&e).expect("upload");
    let before = curves_at(&mut r, 1.0);
    let spread = |curves: &[Vec<Vec3>], shift: Vec3| {
        let mid = SEGMENTS as usize / 2;
        mean_pairwise(&curves.iter().map(|c| c[mid] - shift).collect::<Vec<_>>())
    };
    let straight = mean_pairwise(&e.edges.iter().map(|e| (e.a + e.b) / 2.0).collect::<Vec<_>>());
    assert!(spread(&before, Vec3::ZERO) < 0.5 * straight, "bundled at all");
    // The whole layer pair moves 0.3 m sideways (a dragged network): same edges, new places.
    let shift = Vec3::new(0.3, 0.0, 0.0);
    for p in &mut e.edges {
        p.a += shift;
        p.b += shift;
    }
    r.move_edges(&e).expect("move");
    let after = curves_at(&mut r, 1.0);
    for (edge, c) in e.edges.iter().zip(&after) {
        assert!(
            c[0].distance(edge.a) < 1e-5 && c[SEGMENTS as usize].distance(edge.b) < 1e-5,
            "ends follow the move"
        );
    }
    // Still bundled, about as tight as before the move (an update goes on from the last shape).
    let (b, a) = (spread(&before, Vec3::ZERO), spread(&after, shift));
    assert!(
        a < 0.5 * straight && (a - b).abs() < 0.25 * straight,
        "spread {b} before, {a} after, straight {straight}"
    );
    finish(r);
    // Not a recompute from straight lines: that gives other curves (those of a fresh bundler).
    let Some(mut fresh) = renderer() else { return };
    fresh.set_edges(&e).expect("upload");
    let anew = curves_at(&mut fresh, 1.0);
    let differ = after
        .iter()
        .zip(&anew)
        .flat_map(|(x, y)| x.iter().zip(y))
        .any(|(p, q)| p.distance(*q) > 1e-4);
    assert!(differ, "the moved bundle was recomputed from straight lines");
    finish(fresh);
}

#[test]
fn i_switches_the_edges_to_importance_and_t_steps_the_threshold() {
    use netwalk::input::InputSnapshot;
    let mut app = common::demo_app(0, scene::Stage::default());
    let mut frame = InputSnapshot::default();
    let eye = Vec3::new(0.0, 1.6, 0.0);
    let step = |frame: &mut InputSnapshot, app: &mut netwalk::app::App| {
        frame.time += 1.0 / 90.0;
        app.step(frame).expect("step");
        let _ = app.frame(eye);
    };
    step(&mut frame, &mut app);
    let weights = app.edges().expect("the demo has dense layers").values.clone();
    assert_eq!(app.edge_options.value, netwalk::nn::edges::EdgeValue::Weight);
    // I pressed (held for two frames: one switch), then released.
    frame.edge_value = true;
    step(&mut frame, &mut app);
    step(&mut frame, &mut app);
    frame.edge_value = false;
    step(&mut frame, &mut app);
    assert_eq!(app.edge_options.value, netwalk::nn::edges::EdgeValue::Importance);
    let importance = app.edges().expect("edges").values.clone();
    assert_eq!(importance.len(), weights.len());
    assert_ne!(importance, weights, "importance values are weight × activation");
    // Each T press steps the threshold, wrapping round to none.
    let mut seen = Vec::new();
    for _ in 0..netwalk::app::EDGE_THRESHOLDS.len() {
        frame.edge_threshold = true;
        step(&mut frame, &mut app);
        frame.edge_threshold = false;
        step(&mut frame, &mut app);
        seen.push(app.bundle_style.threshold);
    }
    let mut want = netwalk::app::EDGE_THRESHOLDS[1..].to_vec();
    want.push(0.0);
    assert_eq!(seen, want);
}

#[test]
fn the_demo_snapshot_shows_its_dense_layers_bundled_where_the_curves_run() {
    let Some(mut r) = renderer() else { return };
    let mut app = common::demo_app(3, scene::Stage::default());
    let (width, height) = (640, 480);
    let camera = app.overview(width as f32 / height as f32);
    // Without edges: the same scene with the bundle drawn at strength 0 and threshold 1 hides all.
    app.upload(&mut r, camera.eye).expect("upload");
    let curves = r.bundle_curves().expect("bundle");
    let edges = app.edges().expect("the demo has dense layers").clone();
    assert_eq!(curves.len(), edges.edges.len());
    let with = r.render_offscreen(width, height, &[camera]).expect("render").remove(0);
    r.set_bundle_style(&BundleStyle {
        threshold: 2.0,
        ..app.bundle_style
    })
    .expect("style");
    let without = r.render_offscreen(width, height, &[camera]).expect("render").remove(0);
    finish(r);
    // The strongest edge of each layer pair: a quarter and half way along its bundled curve (the
    // GPU's own points, projected), the picture is lit by the edges (brighter than without them).
    let brightness = |img: &RgbaImage, p: Vec2| -> i32 {
        let px = img.pixel(p.x.round() as u32, p.y.round() as u32);
        px[..3].iter().map(|&c| i32::from(c)).sum()
    };
    let mut lit = 0;
    let mut looked = 0;
    for layer in &edges.layers {
        let mut strongest: Vec<usize> = layer.kept.clone().collect();
        strongest.sort_by(|&a, &b| edges.values[b].abs().total_cmp(&edges.values[a].abs()));
        for &e in strongest.iter().take(10) {
            for k in [SEGMENTS as usize / 4, SEGMENTS as usize / 2] {
                let Some(p) = camera.project(curves[e][k], width, height) else {
                    continue;
                };
                if p.x < 1.0 || p.y < 1.0 || p.x > width as f32 - 2.0 || p.y > height as f32 - 2.0 {
                    continue;
                }
                looked += 1;
                if brightness(&with, p) > brightness(&without, p) + 6 {
                    lit += 1;
                }
            }
        }
    }
    assert!(looked >= 20, "the curves are in view ({looked} points)");
    assert!(
        lit * 10 >= looked * 8,
        "{lit} of {looked} curve points lit by the edges"
    );
    // And where no curve runs (the top corners), the edges add nothing.
    for p in [Vec2::new(2.0, 2.0), Vec2::new(width as f32 - 3.0, 2.0)] {
        assert_eq!(brightness(&with, p), brightness(&without, p));
    }
}

#[test]
fn in_xr_layout_and_fold_on_empty_space_switch_the_edges_value_and_threshold() {
    use netwalk::input::{Hand, InputSnapshot, Pose};
    let mut app = common::demo_app(0, scene::Stage::default());
    let mut frame = InputSnapshot::default();
    // The left controller tracked, its ray straight up: nothing under it.
    let left = frame.hand_mut(Hand::Left);
    left.tracked = true;
    left.aim = Pose::looking_at(Vec3::new(0.0, 1.2, 0.0), Vec3::new(0.0, 5.0, 0.0)).expect("pose");
    left.grip = left.aim;
    let press = |frame: &mut InputSnapshot, app: &mut netwalk::app::App, set: fn(&mut InputSnapshot, bool)| {
        for down in [true, false] {
            set(frame, down);
            frame.time += 1.0 / 90.0;
            app.step(frame).expect("step");
        }
    };
    press(&mut frame, &mut app, |f, d| f.hand_mut(Hand::Left).layout = d);
    assert!(app.scene.hands[0].hover.is_none());
    assert_eq!(app.edge_options.value, netwalk::nn::edges::EdgeValue::Importance);
    press(&mut frame, &mut app, |f, d| f.hand_mut(Hand::Left).fold = d);
    assert_eq!(app.bundle_style.threshold, netwalk::app::EDGE_THRESHOLDS[1]);
    // Pointing at a block, fold folds it and leaves the edges alone.
    let block = app.placements()[1].clone();
    let from = block.center + Vec3::Z * 0.8;
    frame.hand_mut(Hand::Left).aim = Pose::looking_at(from, block.center).expect("pose");
    frame.time += 1.0 / 90.0;
    app.step(&frame).expect("step");
    assert!(app.scene.hands[0].hover.is_some(), "the ray is on block 1");
    press(&mut frame, &mut app, |f, d| f.hand_mut(Hand::Left).fold = d);
    assert_eq!(app.bundle_style.threshold, netwalk::app::EDGE_THRESHOLDS[1]);
    assert_eq!(app.edge_options.value, netwalk::nn::edges::EdgeValue::Importance);
}

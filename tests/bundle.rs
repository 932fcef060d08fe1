//! Edge bundling of fully connected layers: the edges extracted from the model (values,
//! aggregation, budget), and the GPU bundler on a real device (lavapipe on CI) with validation on:
//! endpoints stay fixed, strength 0 is straight, full bundling contracts compatible edges by a
//! factor computed from the setup and the schedule, results do not depend on the edges' order,
//! incremental updates, and pixels of the drawn edges where the projection says (mono, stereo).
//!
//! Without a Vulkan device the GPU tests fail under CI and print a skip note elsewhere.

mod common;

use std::path::Path;

use common::{in_ci, srgb8};
use glam::{Vec2, Vec3};
use netwalk::gfx::bundle::{self, BundleStyle, EdgeInstance, GRID, GRID_MARGIN, SEGMENTS};
use netwalk::gfx::{BACKGROUND_SRGB, Camera, GfxError, Renderer, RendererConfig, RgbaImage};
use netwalk::nn::edges::{self, EdgeValue};
use netwalk::nn::{self, Activations, Model};
use netwalk::scene::edges::{EdgeLayer, EdgeOptions, PlacedEdge, SceneEdges};
use netwalk::scene::{self, LayoutKind, NeuronRef};

/// A renderer with validation on, or `None` (after a note) when this machine has no Vulkan.
fn renderer() -> Option<Renderer> {
    match Renderer::new(&RendererConfig { validation: true }) {
        Ok(r) => Some(r),
        Err(e @ (GfxError::Loader(_) | GfxError::NoDevice(_) | GfxError::NoValidationLayer)) => {
            assert!(!in_ci(), "CI needs a Vulkan device for the bundling tests: {e}");
            eprintln!("SKIPPED (bundling test): {e}");
            None
        }
        Err(e) => panic!("cannot create the renderer: {e}"),
    }
}

/// Drops the renderer and checks that validation said nothing, during the test or at teardown.
#[track_caller]
fn finish(r: Renderer) {
    let log = r.validation_log();
    assert_eq!(r.validation_messages(), Vec::<String>::new(), "validation messages");
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new(), "validation messages at teardown");
}

/// A deterministic value in [-1, 1] for edge `i` (no RNG crate state to keep in sync).
fn value(i: usize) -> f32 {
    let x = ((i as u64 * 2654435761) % 2001) as f32 / 1000.0 - 1.0;
    if x.abs() < 0.05 { 0.5 } else { x }
}

/// One group: every source to every target, `a(s)` to `b(t)`.
fn fully_connected(sources: &[Vec3], targets: &[Vec3], group: u32, out: &mut SceneEdges) {
    let start = out.edges.len();
    for (t, &b) in targets.iter().enumerate() {
        for (s, &a) in sources.iter().enumerate() {
            out.edges.push(PlacedEdge {
                a,
                b,
                group,
                source: s as u32,
                target: t as u32,
            });
            out.values.push(value(out.values.len()));
        }
    }
    out.layers.push(EdgeLayer {
        layer: group as usize,
        name: format!("layer{group}"),
        source_block: group as usize,
        target_block: group as usize + 1,
        aggregated: false,
        total: out.edges.len() - start,
        kept: start..out.edges.len(),
    });
}

/// `n` points evenly spread over `width` along x around `center`.
fn row(center: Vec3, width: f32, n: usize) -> Vec<Vec3> {
    (0..n)
        .map(|i| center + Vec3::X * (width * (i as f32 / (n - 1) as f32 - 0.5)))
        .collect()
}

/// Two bundles side by side, 1 m apart, going 1 m from z = 0 to z = −1: within each, 8 sources
/// (0.12 m wide) all connect to 8 targets (0.12 m wide); nothing connects across.
fn two_bundles() -> SceneEdges {
    let mut e = SceneEdges::default();
    let start = e.edges.len();
    for x in [-0.5, 0.5] {
        let sources = row(Vec3::new(x, 1.4, 0.0), 0.12, 8);
        let targets = row(Vec3::new(x, 1.4, -1.0), 0.12, 8);
        for &b in &targets {
            for &a in &sources {
                e.edges.push(PlacedEdge {
                    a,
                    b,
                    group: 0,
                    source: 0,
                    target: 0,
                });
                e.values.push(value(e.values.len()));
            }
        }
    }
    e.layers.push(EdgeLayer {
        layer: 0,
        name: "pair".into(),
        source_block: 0,
        target_block: 1,
        aggregated: false,
        total: e.edges.len(),
        kept: start..e.edges.len(),
    });
    e
}

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

fn curves_at(r: &mut Renderer, strength: f32) -> Vec<Vec<Vec3>> {
    r.set_bundle_style(&BundleStyle {
        strength,
        ..BundleStyle::default()
    })
    .expect("style");
    r.bundle_curves().expect("curves")
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
            assert!(p.distance(want) < 1e-5, "strength 0, point {k}: {p} is not on the line ({want})");
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
    eprintln!("contraction: {before} -> {after} (bound {}, factor {factor})", before / factor);
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
    assert!((gap - 1.0).abs() < 0.05, "the bundles moved towards each other: {gap} m apart");
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
        assert_eq!(second[k], first[i], "edge {i} (at {k} when shuffled) bundled differently");
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
        if edge.a.x < 0.0 && edge.a.x < -0.5 - 0.05 {
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

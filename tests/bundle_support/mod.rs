//! What the bundling tests share: a validating renderer (and the check that it said nothing),
//! deterministic edge values, and edge sets of fully connected rows, and reading the curves back.
#![allow(dead_code)] // each test file uses some of these

use glam::Vec3;
use netwalk::gfx::bundle::BundleStyle;
use netwalk::gfx::{GfxError, Renderer, RendererConfig};
use netwalk::scene::edges::{EdgeLayer, PlacedEdge, SceneEdges};

use crate::common::in_ci;

/// A renderer with validation on, or `None` (after a note) when this machine has no Vulkan.
pub fn renderer() -> Option<Renderer> {
    match Renderer::new(&RendererConfig {
        validation: true,
        ..Default::default()
    }) {
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
pub fn finish(r: Renderer) {
    let log = r.validation_log();
    assert_eq!(r.validation_messages(), Vec::<String>::new(), "validation messages");
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new(), "validation messages at teardown");
}

/// A deterministic value in [-1, 1] for edge `i` (no RNG crate state to keep in sync).
pub fn value(i: usize) -> f32 {
    let x = ((i as u64 * 2654435761) % 2001) as f32 / 1000.0 - 1.0;
    if x.abs() < 0.05 { 0.5 } else { x }
}

/// One group: every source to every target, `a(s)` to `b(t)`.
pub fn fully_connected(sources: &[Vec3], targets: &[Vec3], group: u32, out: &mut SceneEdges) {
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
pub fn row(center: Vec3, width: f32, n: usize) -> Vec<Vec3> {
    (0..n)
        .map(|i| center + Vec3::X * (width * (i as f32 / (n - 1) as f32 - 0.5)))
        .collect()
}

/// Two bundles side by side, 1 m apart, going 1 m from z = 0 to z = −1: within each, 8 sources
/// (0.12 m wide) all connect to 8 targets (0.12 m wide); nothing connects across.
pub fn two_bundles() -> SceneEdges {
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

pub fn curves_at(r: &mut Renderer, strength: f32) -> Vec<Vec<Vec3>> {
    r.set_bundle_style(&BundleStyle {
        strength,
        ..BundleStyle::default()
    })
    .expect("style");
    r.bundle_curves().expect("curves")
}

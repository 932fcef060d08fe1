//! `netwalk bench`: forward-pass, render, live-training and edge-bundling benchmarks, and the
//! small statistics they share.
//!
//! Part of the command layer (like [`crate::cli`]): `anyhow` errors.

pub mod bundle;
pub mod forward;
pub mod render;
pub mod train;

use std::path::PathBuf;

use anyhow::Result;

use crate::nn::{self, Model, Weights};
use crate::{gfx, scene};

/// The `p` quantile (0..1) of `sorted`, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// The overview camera of `placements` at `width`×`height`, or both eyes of it (64 mm apart).
pub fn overview_views(
    placements: &[scene::LayerPlacement],
    (width, height): (u32, u32),
    stereo: bool,
) -> Vec<gfx::Camera> {
    let (min, max) = scene::layout::bounds(placements);
    eye_views(gfx::Camera::overview(min, max, width as f32 / height as f32), stereo)
}

/// `camera` alone, or both eyes of it (64 mm apart).
pub fn eye_views(camera: gfx::Camera, stereo: bool) -> Vec<gfx::Camera> {
    if stereo {
        camera.stereo(0.064).to_vec()
    } else {
        vec![camera]
    }
}

/// Median and p99 of durations, in milliseconds.
pub fn ms_stats(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// The model a benchmark runs (a synthetic one with random weights, or a model's own), its name,
/// and a fixed input.
pub fn bench_model(model: Option<PathBuf>, synthetic: Option<&str>) -> Result<(Model, Weights, String, Vec<f32>)> {
    let (model, weights, name) = match synthetic {
        Some(name) => {
            let (m, w) = nn::synthetic::build(name, 7)?;
            (m, w, format!("synthetic {name}"))
        }
        None => {
            let m = crate::cli::load_model(model)?;
            let w = Weights::load(&m)?;
            let n = m.name.clone();
            (m, w, n)
        }
    };
    let raw: Vec<f32> = (0..model.input.shape.elements())
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    Ok((model, weights, name, raw))
}

//! `netwalk bench bundle`: edge bundling time and the edges' cost in the frame.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::{bench_model, ms_stats, overview_views};
use crate::cli::check_validation;
use crate::nn::{self, Weights};
use crate::{gfx, scene};

/// `netwalk bench bundle`: edge bundling on the GPU, and the frame with and without the edges.
// Long (~165 lines) for a reason: the benchmark's phases in order (full recompute, incremental
// updates, frames, the report) share the edges, the renderer and every measurement; the frames
// are in `time_frames`.
pub fn bench_bundle(
    config: &gfx::RendererConfig,
    model: Option<PathBuf>,
    synthetic: Option<String>,
    iters: usize,
    frames: usize,
    ((width, height), stereo): ((u32, u32), bool),
    edge_scales: &[u32],
) -> Result<()> {
    let iters = iters.max(1);
    let warmup = 2;
    if let Some(bad) = edge_scales
        .iter()
        .find(|&&s| !(1..=gfx::edge_pass::MAX_SCALE).contains(&s))
    {
        bail!(
            "--edge-scale {bad}: each scale must be 1 to {}",
            gfx::edge_pass::MAX_SCALE
        );
    }
    let (model, weights, name, raw) = bench_model(model, synthetic.as_deref())?;
    // The "next checkpoint" of the incremental updates: other random weights, blended in.
    let other = nn::synthetic::random_weights(&model, 8)?;
    let acts = nn::forward(&model, &weights, &raw)?;
    let placements = scene::layout(&model, scene::LayoutKind::Grid);
    let mut renderer = gfx::Renderer::new(config)?;
    let log = renderer.validation_log();
    let options = scene::edges::EdgeOptions {
        budget: scene::edges::DEFAULT_EDGE_BUDGET.min(renderer.max_bundled_edges()),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let mut edges = scene::edges::SceneEdges::build(&model, &weights, &acts, &placements, &options)?;
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    if edges.edges.is_empty() {
        bail!("{name} has no dense layer to bundle");
    }
    renderer.set_edges(&edges)?;
    // The level of detail set_edges chose for these edges (what the frames below draw).
    let drawn = renderer.bundle_drawn_segments();
    // (The frames below may draw them at other scales; the level of detail stays this one.)
    let walked = renderer.edge_scale() > 1;
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let mut full = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        renderer.rebundle();
        let t = ms(renderer.bundle_now()?);
        if i >= warmup {
            full.extend(t);
        }
    }
    let (mut incremental, mut revalue) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for i in 0..warmup + iters {
        // A step of a scrub between the two weight sets.
        let t = (i % 10) as f32 / 10.0;
        let blended = Weights::lerp(&weights, &other, t).context("blend the weights")?;
        let started = std::time::Instant::now();
        edges.values = edges.revalue(&model, &blended, &acts, &options)?;
        let cpu = started.elapsed().as_secs_f64() * 1e3;
        renderer.set_edge_values(&edges)?;
        let gpu = ms(renderer.bundle_now()?);
        if i >= warmup {
            incremental.extend(gpu);
            revalue.push(cpu);
        }
    }
    // Drawing them: a frame of the network with the bundled edges against one without.
    let frame_times = if frames > 0 {
        let draw = gfx::NetworkDraw::new(&model, &acts, &placements);
        let views = overview_views(&placements, (width, height), stereo);
        renderer.set_network(&draw)?;
        Some(time_frames(
            &mut renderer,
            (width, height),
            &views,
            warmup + frames,
            warmup,
            edge_scales,
        )?)
    } else {
        None
    };
    let device = renderer.device_name().to_owned();
    let max_edges = renderer.max_bundled_edges();
    drop(renderer);
    check_validation("Vulkan", &log.messages())?;
    println!(
        "netwalk bench bundle {name} on {device}: {} edges bundled in {} layer pair(s), {} dropped (this device holds {max_edges}); {} segments per edge, {g}x{g} grid per slice; {iters} runs",
        edges.edges.len(),
        edges.layers.len(),
        edges.dropped,
        gfx::bundle::SEGMENTS,
        g = gfx::bundle::GRID,
    );
    let n = edges.edges.len() as u64;
    if walked {
        println!(
            "  drawn: {drawn} segments per edge, walked by the low-resolution edge pass ({:.2}M segments per view; budget {:.2}M)",
            (n * u64::from(drawn)) as f64 / 1e6,
            gfx::bundle::WALK_SEGMENT_BUDGET as f64 / 1e6,
        );
    } else {
        let per_edge = gfx::bundle::vertices_per_edge(drawn);
        println!(
            "  drawn: {drawn} segments per edge as ribbons ({per_edge} vertices per edge, {:.2}M per view; budget {:.2}M)",
            (n * per_edge) as f64 / 1e6,
            gfx::bundle::VERTEX_BUDGET as f64 / 1e6,
        );
    }
    for l in &edges.layers {
        let agg = if l.aggregated { ", aggregated by channel" } else { "" };
        println!("  {:<12} {} edges{agg}", l.name, l.kept.len());
    }
    let line = |what: &str, times: Vec<f64>, note: String| {
        if times.is_empty() {
            println!("  {what:<20} GPU n/a (no timestamp queries){note}");
        } else {
            let (m, p) = ms_stats(times);
            println!("  {what:<20} GPU median {m:.3} ms  p99 {p:.3} ms{note}");
        }
    };
    line(
        "full recompute",
        full,
        format!("  ({} iterations from straight lines)", gfx::bundle::FULL_ITERATIONS),
    );
    line(
        "incremental update",
        incremental,
        format!(
            "  ({} iterations from the last result, new values uploaded)",
            gfx::bundle::INCREMENTAL_SIGMAS.len()
        ),
    );
    let (rm, _) = ms_stats(revalue);
    println!("  CPU: edges extracted and placed {build_ms:.1} ms; revalued per update median {rm:.1} ms");
    if let Some((with, without)) = frame_times {
        let eyes = if stereo { "2 eyes × " } else { "" };
        println!(
            "  frame {eyes}{width}x{height} (default edge scale for {} edges: {}):",
            edges.edges.len(),
            gfx::auto_edge_scale(edges.edges.len() as u32)
        );
        for (scale, times) in with {
            let how = if scale == 1 {
                "full resolution, in the scene pass".to_owned()
            } else {
                format!("1/{scale} resolution, added to the scene")
            };
            line(
                &format!("  edges at 1/{scale}"),
                times,
                format!("  (network + bundled edges, {how})"),
            );
        }
        line("  without edges", without, String::new());
    }
    Ok(())
}

/// Frame GPU times (ms) with the edges at each scale drawn, and without them.
type EdgeFrames = (Vec<(u32, Vec<f64>)>, Vec<f64>);

/// GPU times of `runs` frames (the first `warmup` left out) with the bundled edges, at each of
/// `edge_scales` (none: the default scale), and without them; the edges are gone afterwards.
fn time_frames(
    renderer: &mut gfx::Renderer,
    (width, height): (u32, u32),
    views: &[gfx::Camera],
    runs: usize,
    warmup: usize,
    edge_scales: &[u32],
) -> Result<EdgeFrames> {
    let measure = |renderer: &mut gfx::Renderer| -> Result<Vec<f64>> {
        let mut gpu = Vec::with_capacity(runs);
        for i in 0..runs {
            let t = renderer.time_frame(width, height, views)?;
            if i >= warmup {
                gpu.extend(t.gpu.map(|d| d.as_secs_f64() * 1e3));
            }
        }
        Ok(gpu)
    };
    let scales: Vec<Option<u32>> = if edge_scales.is_empty() {
        vec![None]
    } else {
        edge_scales.iter().map(|&s| Some(s)).collect()
    };
    let mut with = Vec::new();
    for scale in scales {
        renderer.set_edge_scale(scale);
        with.push((renderer.edge_scale(), measure(renderer)?));
    }
    renderer.set_edges(&scene::edges::SceneEdges::default())?;
    let without = measure(renderer)?;
    Ok((with, without))
}

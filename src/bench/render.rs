//! `netwalk bench render`: offscreen frame time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{bench_model, ms_stats, overview_views};
use crate::cli::check_validation;
use crate::{gfx, nn, scene};

/// `netwalk bench render`: GPU and CPU record time of the network's frame against an empty one.
pub fn bench_render(
    config: &gfx::RendererConfig,
    model: Option<PathBuf>,
    synthetic: Option<String>,
    frames: usize,
    (width, height): (u32, u32),
    stereo: bool,
) -> Result<()> {
    let frames = frames.max(1);
    let (model, weights, name, raw) = bench_model(model, synthetic.as_deref())?;
    let acts = nn::forward(&model, &weights, &raw)?;
    let placements = scene::layout(&model, scene::LayoutKind::Grid);
    let draw = gfx::NetworkDraw::new(&model, &acts, &placements);
    let views = overview_views(&placements, (width, height), stereo);
    let mut renderer = gfx::Renderer::new(config)?;
    let log = renderer.validation_log();
    let measure = |renderer: &mut gfx::Renderer| -> Result<(Vec<f64>, Vec<f64>)> {
        let warmup = (frames / 10).clamp(2, 20);
        let (mut gpu, mut cpu) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
        for i in 0..warmup + frames {
            let t = renderer.time_frame(width, height, &views)?;
            if i >= warmup {
                cpu.push(t.record.as_secs_f64() * 1e3);
                gpu.extend(t.gpu.map(|g| g.as_secs_f64() * 1e3));
            }
        }
        Ok((gpu, cpu))
    };
    renderer.set_network(&draw)?;
    let calls = renderer.draw_calls();
    let (scene_gpu, scene_cpu) = measure(&mut renderer)?;
    renderer.set_draw_list(&gfx::DrawList::default())?;
    let (empty_gpu, empty_cpu) = measure(&mut renderer)?;
    renderer.set_draw_list(&draw.list)?;
    let half_gpu = if scene_gpu.is_empty() {
        1.0
    } else {
        ms_stats(scene_gpu.clone()).0 / 2.0
    };
    let flights = time_in_flight(&mut renderer, (width, height), &views, frames, half_gpu)?;
    let device = renderer.device_name().to_owned();
    drop(renderer);
    check_validation("Vulkan", &log.messages())?;
    let l = &draw.list;
    let eyes = if stereo { "2 eyes × " } else { "" };
    println!(
        "netwalk bench render {name}: {eyes}{width}x{height} on {device}; {} tiles, {} cubes, {} lines, {} glyphs, {} values; {calls} draw calls; {frames} frames",
        l.tiles.len(),
        l.cubes.len(),
        l.lines.len(),
        l.glyphs.len(),
        draw.values.len(),
    );
    let line = |what: &str, gpu: Vec<f64>, cpu: Vec<f64>| {
        let (cm, cp) = ms_stats(cpu);
        let gpu_text = if gpu.is_empty() {
            "GPU n/a (no timestamp queries)".to_owned()
        } else {
            let (gm, gp) = ms_stats(gpu);
            format!("GPU median {gm:.3} ms  p99 {gp:.3} ms")
        };
        println!("  {what:<6} {gpu_text};  CPU record median {cm:.3} ms  p99 {cp:.3} ms");
    };
    let ratio = match (scene_gpu.is_empty(), empty_gpu.is_empty()) {
        (false, false) => Some(ms_stats(scene_gpu.clone()).0 / ms_stats(empty_gpu.clone()).0),
        _ => None,
    };
    line("scene", scene_gpu, scene_cpu);
    line("empty", empty_gpu, empty_cpu);
    if let Some(r) = ratio {
        println!("  scene / empty GPU median: {r:.2}x");
    }
    print_in_flight(flights);
    Ok(())
}

/// The frames of one in-flight run: app work per frame (ms), slots, each frame's times.
type Flight = (f64, usize, Vec<gfx::FlightTimes>);

/// Frames in flight: the scene back to back without readback, an overlay upload per frame (as the
/// app's loops do), with 1 slot (each frame waits for its own fence after submitting) and 2 (a
/// frame waits for the one two before); without other CPU work and with `work_ms` of it (a spin
/// standing in for the app's per-frame work, which 2 slots overlap with the GPU). The last frame
/// (it drains the queue) is left out.
fn time_in_flight(
    renderer: &mut gfx::Renderer,
    (width, height): (u32, u32),
    views: &[gfx::Camera],
    frames: usize,
    work_ms: f64,
) -> Result<Vec<Flight>> {
    let mut flights = Vec::new();
    for (work_ms, in_flight) in [(0.0, 1), (0.0, 2), (work_ms, 1), (work_ms, 2)] {
        let warmup = (frames / 10).clamp(2, 20);
        let work = Duration::from_secs_f64(work_ms / 1e3);
        let mut app = |r: &mut gfx::Renderer, _: usize| {
            let started = Instant::now();
            while started.elapsed() < work {
                std::hint::spin_loop();
            }
            r.set_overlay(&gfx::DrawList::default())
        };
        let mut t = renderer.time_frames_in_flight(width, height, views, warmup + frames + 1, in_flight, &mut app)?;
        t.pop();
        flights.push((work_ms, in_flight, t.split_off(warmup)));
    }
    Ok(flights)
}

/// One line per in-flight run: CPU record, fence wait and wall time per frame (median, p99).
fn print_in_flight(flights: Vec<Flight>) {
    for (work_ms, in_flight, t) in flights {
        let stat =
            |f: fn(&gfx::FlightTimes) -> Duration| ms_stats(t.iter().map(|x| f(x).as_secs_f64() * 1e3).collect());
        let ((rm, rp), (wm, wp), (am, ap)) = (stat(|x| x.record), stat(|x| x.wait), stat(|x| x.wall));
        let mean_wall = t.iter().map(|x| x.wall.as_secs_f64()).sum::<f64>() / t.len().max(1) as f64;
        println!(
            "  {in_flight} in flight, app work {work_ms:.3} ms: CPU record median {rm:.3} ms  p99 {rp:.3} ms;  fence wait median {wm:.3} ms  p99 {wp:.3} ms;  wall median {am:.3} ms  p99 {ap:.3} ms ({:.0} frames/s)",
            1.0 / mean_wall.max(1e-9)
        );
    }
}

//! `netwalk bench render`: offscreen frame time.

use std::path::PathBuf;

use anyhow::Result;

use super::{bench_model, ms_stats};
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
    let (min, max) = scene::layout::bounds(&placements);
    let camera = gfx::Camera::overview(min, max, width as f32 / height as f32);
    let views = if stereo {
        camera.stereo(0.064).to_vec()
    } else {
        vec![camera]
    };
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
    Ok(())
}

//! `netwalk bench train`: frame time while training live in the background.

use anyhow::{Result, bail};

use super::{eye_views, ms_stats};
use crate::cli::check_validation;
use crate::{gfx, nn};

/// One run of `bench train`: frame times (ms) and the checkpoints that arrived meanwhile.
struct TrainRun {
    frames: Vec<f64>,
    checkpoints: usize,
}

/// `netwalk bench train`: the app's frame time while the demo trains live, against not training.
pub fn bench_train(
    config: &gfx::RendererConfig,
    seconds: f64,
    rounds: usize,
    (width, height): (u32, u32),
    stereo: bool,
    every: usize,
) -> Result<()> {
    if every == 0 || rounds == 0 {
        bail!("--every and --rounds must be at least 1");
    }
    if !(seconds.is_finite() && (0.5..=3600.0).contains(&seconds)) {
        bail!("--seconds must be in [0.5, 3600], got {seconds}");
    }
    let mut renderer = gfx::Renderer::new(config)?;
    let log = renderer.validation_log();
    let train_set = nn::Samples::load(&crate::cli::load_model(None)?, &nn::demo::demo_train_data()?)?;
    // training: None = not training; Some(worker) = training, the network rerun on the worker or not.
    let mut run = |training: Option<bool>| -> Result<TrainRun> {
        let mut app = crate::cli::build_app(None, &crate::cli::AppInput::default(), None)?;
        if training != Some(false) {
            app.start_recompute()?;
        }
        if training.is_some() {
            let cfg = nn::train::LiveConfig {
                every,
                ..nn::train::LiveConfig::default()
            };
            let heldout = crate::cli::load_samples(&app.model).ok();
            let feed = nn::live::train(&app.model, train_set.clone(), heldout, cfg)?;
            app.clear_timeline()?;
            app = app.with_feed(feed);
        }
        let camera = app.overview(width as f32 / height as f32);
        let views = eye_views(camera, stereo);
        let warmup = 20;
        let mut times = Vec::new();
        let mut input = crate::input::InputSnapshot::default();
        let begin = std::time::Instant::now();
        for i in 0.. {
            let start = std::time::Instant::now();
            input.time += 1.0 / 90.0;
            app.step(&input)?;
            app.upload(&mut renderer, camera.eye)?;
            renderer.time_frame(width, height, &views)?;
            if i >= warmup {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            if begin.elapsed().as_secs_f64() >= seconds && i >= warmup + 10 {
                break;
            }
        }
        let checkpoints = app.timeline.as_ref().map_or(0, |t| t.len());
        Ok(TrainRun {
            frames: times,
            checkpoints,
        })
    };
    let mut runs: [TrainRun; 3] = std::array::from_fn(|_| TrainRun {
        frames: Vec::new(),
        checkpoints: 0,
    });
    for _ in 0..rounds {
        for (i, training) in [None, Some(true), Some(false)].into_iter().enumerate() {
            let r = run(training)?;
            runs[i].frames.extend(r.frames);
            runs[i].checkpoints += r.checkpoints;
        }
    }
    let [idle, training, in_frame] = runs;
    let device = renderer.device_name().to_owned();
    drop(renderer);
    check_validation("Vulkan", &log.messages())?;
    let eyes = if stereo { "2 eyes × " } else { "" };
    println!(
        "netwalk bench train: demo, {eyes}{width}x{height} on {device}, {} CPU threads; {rounds} rounds of {seconds} s per run; a checkpoint every {every} steps",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let idle_frames = idle.frames.len();
    let (idle_median, idle_p99) = ms_stats(idle.frames);
    println!(
        "  not training                  {idle_frames:>6} frames, median {idle_median:.3} ms  p99 {idle_p99:.3} ms"
    );
    for (what, r) in [
        ("training, rerun on the worker", training),
        ("training, rerun in the frame ", in_frame),
    ] {
        let n = r.frames.len();
        let (median, p99) = ms_stats(r.frames);
        println!(
            "  {what} {n:>6} frames, median {median:.3} ms  p99 {p99:.3} ms  ({:+.1}% / {:+.1}% vs not training; {} checkpoints arrived)",
            (median / idle_median - 1.0) * 100.0,
            (p99 / idle_p99 - 1.0) * 100.0,
            r.checkpoints
        );
    }
    Ok(())
}

//! `netwalk run` (and `netwalk` alone): the network in a headset, a desktop window, or (no
//! display) a PNG overview.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::snapshot::{View, snapshot};
use super::{AppInput, Env, build_app, check_validation, load_samples, save_png};
use crate::app::App;
use crate::app::frame_loop::{XrLoopEnd, XrLoopOptions, run_xr_session};
use crate::bench::percentile;
use crate::input::Script;
use crate::xr::{XrOptions, XrSession};
use crate::{gfx, nn};

/// `netwalk run`'s arguments as given (see src/main.rs for each one's meaning).
pub struct RunCommand {
    pub model: Option<PathBuf>,
    pub mode: Mode,
    pub checkpoint: Option<String>,
    pub input: AppInput,
    /// The input script's file (loaded before any work, so a bad one fails early).
    pub script: Option<PathBuf>,
    pub watch: Option<PathBuf>,
    pub train: bool,
    /// The rest; its `script` is filled from the file above.
    pub options: RunOptions,
}

/// `netwalk run`: the app on the model, fed by a watched folder or live training when asked.
pub fn run(command: RunCommand, env: &Env) -> Result<()> {
    let RunCommand {
        model,
        mode,
        checkpoint,
        input,
        script,
        watch,
        train,
        mut options,
    } = command;
    // A bad script fails before any work.
    options.script = script.map(|s| Script::load(&s)).transpose()?;
    if options.script.is_some() && mode == Mode::Desktop {
        bail!(
            "--script works with XR (real poses, scripted buttons); for scripted desktop-free runs see `netwalk replay`"
        );
    }
    if train && checkpoint.is_some() {
        bail!("--train starts a new timeline: --checkpoint does not apply");
    }
    let mut app = build_app(model, &input, checkpoint.as_deref())?;
    if let Some(dir) = &watch {
        let feed = nn::live::watch(&app.model, dir, nn::live::WATCH_INTERVAL)?;
        println!("watching {} for checkpoints", dir.display());
        app = app.with_feed(feed);
    }
    if train {
        let train_set = nn::Samples::load(&app.model, &nn::demo::demo_train_data()?)?;
        let heldout = load_samples(&app.model).ok();
        let cfg = nn::train::LiveConfig::default();
        println!(
            "training {} live on {} samples: {} epochs, a checkpoint every {} steps",
            app.model.name, train_set.count, cfg.epochs, cfg.every
        );
        let feed = nn::live::train(&app.model, train_set, heldout, cfg)?;
        app.clear_timeline()?;
        app = app.with_feed(feed);
    }
    run_any(app, mode, &options, env)
}

/// Where `netwalk run` shows the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Xr,
    Desktop,
    /// XR if a runtime and headset are there, else a window, else a PNG overview.
    Auto,
}

/// How `netwalk run` runs (its flags; see src/main.rs for each one's meaning).
pub struct RunOptions {
    pub size: (u32, u32),
    pub frames: Option<u64>,
    pub screenshot: Option<PathBuf>,
    pub stats: bool,
    pub xr_config: Option<PathBuf>,
    pub script: Option<Script>,
    pub play_area: Option<glam::Vec2>,
    pub mirror: bool,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            size: (1280, 720),
            frames: None,
            screenshot: None,
            stats: false,
            xr_config: None,
            script: None,
            play_area: None,
            mirror: false,
        }
    }
}

const OVERVIEW_PNG: &str = "netwalk-overview.png";

/// Runs `app` in `mode`: in a headset, else (Auto) a window, else (Auto, no display) a PNG overview.
pub fn run_any(mut app: App, mode: Mode, options: &RunOptions, env: &Env) -> Result<()> {
    if options.frames == Some(0) {
        bail!("--frames must be at least 1");
    }
    // Interactive: scrubbing and new checkpoints rerun the network off the frame's thread.
    app.start_recompute()?;
    if mode != Mode::Desktop {
        match run_xr(&mut app, options, env) {
            Err(e)
                if mode == Mode::Auto
                    && e.downcast_ref::<crate::xr::XrError>()
                        .is_some_and(|e| e.is_unavailable()) =>
            {
                eprintln!("no headset: {e:#}");
            }
            other => return other,
        }
    }
    if mode == Mode::Auto && env.display.is_none() {
        let out = Path::new(OVERVIEW_PNG);
        snapshot(
            &env.renderer_config(),
            &mut app,
            out,
            options.size,
            View::Named("overview".into()),
            false,
        )?;
        println!(
            "no headset and no display, so this is a picture: {OVERVIEW_PNG}. For VR start an OpenXR runtime \
             (SteamVR, or monado-service; see the README's OpenXR section) with a headset and run `netwalk` again \
             (or `netwalk run --xr`); for a window run it in a desktop session (DISPLAY or WAYLAND_DISPLAY set) \
             or use `netwalk run --desktop`."
        );
        return Ok(());
    }
    run_desktop(app, options.size, options.frames, options.screenshot.as_deref(), env)
}

/// Set by SIGINT/SIGTERM: the XR loop then asks the runtime to end the session.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn run_xr(app: &mut App, options: &RunOptions, env: &Env) -> Result<()> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_stop_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_stop_signal as *const () as libc::sighandler_t);
    }
    let config = env.renderer_config();
    // Dropped after run_xr returns, so after the renderer (and its surface) that draws into it.
    let mut mirror = if options.mirror {
        Some(gfx::mirror::MirrorWindow::open(
            &format!("netwalk (mirror): {}", app.model.name),
            options.size,
            env.display.as_deref(),
        )?)
    } else {
        None
    };
    let xr_options = XrOptions {
        mirror: mirror.as_ref().and_then(|m| m.window()),
        frames: options.frames,
        validation: config.validation,
        edge_scale: config.edge_scale,
        bindings_dir: options.xr_config.clone(),
        readback_frame: options.screenshot.as_ref().map(|_| options.frames.unwrap_or(1)),
    };
    // The session's teardown (XR handles, then the renderer) comes before the mirror's.
    let mut session = XrSession::new(&xr_options)?;
    let loop_options = XrLoopOptions {
        play_area: options.play_area,
        script: options.script.as_ref(),
        mirror: mirror.as_mut(),
    };
    let ran = run_xr_session(app, &mut session, loop_options, &STOP);
    let outcome = session.finish();
    let XrLoopEnd { end, shot, app_error } = ran?;
    if let Some(e) = app_error {
        return Err(e.into());
    }
    println!("xr: ended ({end:?}) after {} frames", outcome.frames);
    if options.stats && outcome.stats.cpu.is_empty() {
        println!("stats: no frames rendered");
    } else if options.stats {
        let mut ms: Vec<f64> = outcome.stats.cpu.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
        println!(
            "stats: {} frames, CPU per frame mean {mean:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, missed {}, not rendered {}",
            ms.len(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or(0.0),
            outcome.stats.missed,
            outcome.stats.not_rendered
        );
    }
    check_validation("OpenXR", &outcome.xr_validation)?;
    check_validation("Vulkan", &outcome.vulkan_validation)?;
    if let Some(out) = &options.screenshot {
        let image = shot.context("the session ended before the screenshot frame was rendered")?;
        save_png(&image, out)?;
        println!(
            "wrote {}x{} screenshot (left eye | right eye) to {}",
            image.width,
            image.height,
            out.display()
        );
    }
    match end {
        crate::xr::EndReason::Exited | crate::xr::EndReason::Interrupted => Ok(()),
        other => bail!(
            "the OpenXR runtime ended the session ({other:?}) after {} frames",
            outcome.frames
        ),
    }
}

fn run_desktop(
    mut app: App,
    (width, height): (u32, u32),
    frames: Option<u64>,
    screenshot: Option<&Path>,
    env: &Env,
) -> Result<()> {
    if frames == Some(0) {
        bail!("--frames must be at least 1");
    }
    let camera = app.overview(width as f32 / height as f32);
    let model = &app.model;
    let options = gfx::window::DesktopOptions {
        title: format!("netwalk: {}", model.name),
        size: (width, height),
        frames,
        readback: screenshot.is_some(),
        display: env.display.clone(),
    };
    // One line per new frame size (the first frame and each resize) and per pause, for the user
    // and for tests.
    let mut last = (0, 0);
    let mut on_event = |event| match event {
        gfx::window::DesktopEvent::Presented { frame, width, height } => {
            if (width, height) != last {
                last = (width, height);
                println!("frame {frame}: {width}x{height}");
            }
        }
        gfx::window::DesktopEvent::Paused { after_frame } => println!("paused after frame {after_frame}"),
        gfx::window::DesktopEvent::Resumed => println!("resumed"),
    };
    let outcome =
        crate::app::desktop_loop::run_desktop(&mut app, &env.renderer_config(), camera, options, &mut on_event)?;
    check_validation("Vulkan", &outcome.validation)?;
    println!("closed after {} frames", outcome.frames);
    if let Some(out) = screenshot {
        let image = outcome
            .last_frame
            .context("no frame was presented, so there is no screenshot")?;
        save_png(&image, out)?;
        println!("wrote {}x{} screenshot to {}", image.width, image.height, out.display());
    }
    Ok(())
}

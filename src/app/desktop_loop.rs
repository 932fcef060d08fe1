//! The desktop frame loop: pump the window's events into [`DesktopInput`], move the camera,
//! then the same frame as in XR ([`super::frame_loop::step_and_upload`]), then present.

use std::time::Instant;

use super::App;
use super::frame_loop::{AppError, step_and_upload};
use crate::gfx::window::{DesktopEvent, DesktopOptions, DesktopOutcome, DesktopWindow};
use crate::gfx::{Camera, RendererConfig};
use crate::input::desktop::{DesktopInput, OrbitCamera};

/// Opens a window and draws `app` in it until it is closed (or `options.frames` frames were
/// presented), starting from `camera`. `on_event` hears of each presented frame and each pause.
pub fn run_desktop(
    app: &mut App,
    config: &RendererConfig,
    camera: Camera,
    options: DesktopOptions,
    on_event: &mut dyn FnMut(DesktopEvent),
) -> Result<DesktopOutcome, AppError> {
    let mut window = DesktopWindow::open(config, &options)?;
    let ran = desktop_frames(app, &mut window, camera, &options, on_event);
    // Torn down (and the last frame read back) whether or not a frame failed.
    let outcome = window.finish();
    ran.map(|()| outcome)
}

fn desktop_frames(
    app: &mut App,
    window: &mut DesktopWindow,
    home: Camera,
    options: &DesktopOptions,
    on_event: &mut dyn FnMut(DesktopEvent),
) -> Result<(), AppError> {
    // Input times count from here.
    let started = Instant::now();
    let mut orbit = OrbitCamera::from_camera(&home);
    let mut input = DesktopInput::default();
    let mut last_tick = Instant::now();
    loop {
        let pumped = window.pump();
        for event in &pumped.input {
            input.on_window_event(event);
        }
        for change in pumped.changes {
            on_event(change);
        }
        if pumped.close {
            return Ok(());
        }
        if window.paused() {
            continue;
        }
        let now = Instant::now();
        // Clamped so a long stall (a drag of the window, a debugger) does not jump the camera.
        let dt = (now - last_tick).as_secs_f32().min(0.1);
        last_tick = now;
        if input.apply(&mut orbit, dt) {
            orbit = OrbitCamera::from_camera(&home);
        }
        let camera = orbit.camera();
        let snapshot = input.snapshot(&camera, window.size(), (now - started).as_secs_f32());
        let Some(renderer) = window.renderer() else {
            return Ok(());
        };
        step_and_upload(app, renderer, &snapshot, camera.eye)?;
        if let Some(event) = window.present(&camera)? {
            on_event(event);
            if matches!(event, DesktopEvent::Presented { frame, .. } if options.frames.is_some_and(|n| frame >= n)) {
                return Ok(());
            }
        }
    }
}

//! The app's frame loops: one frame function ([`step_and_upload`]: the input snapshot → the
//! scene systems → what changed uploaded), run by the XR loop over a polled
//! [`XrSession`] ([`run_xr_session`]) and by the desktop loop (`super::desktop_loop`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use glam::{Vec2, Vec3};

use super::App;
use crate::gfx::{GfxError, Renderer, RgbaImage, mirror::MirrorWindow};
use crate::input::{Hand, InputSnapshot, Script, ScriptPlayer};
use crate::nn::NnError;
use crate::scene::systems::FrameEvents;
use crate::scene::{self, NeuronRef};
use crate::xr::{EndReason, SessionEvent, XrError, XrSession};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Nn(#[from] NnError),
    #[error(transparent)]
    Gfx(#[from] GfxError),
    #[error(transparent)]
    Xr(#[from] XrError),
}

/// One frame of the app, the same in every mode: runs the scene systems on `input`, then
/// uploads what changed to `renderer`, seen from `eye` (close-up neurons become voxels).
pub fn step_and_upload(
    app: &mut App,
    renderer: &mut Renderer,
    input: &InputSnapshot,
    eye: Vec3,
) -> Result<FrameEvents, AppError> {
    let events = app.step(input)?;
    app.upload(renderer, eye)?;
    Ok(events)
}

/// What the XR loop is told besides the session.
#[derive(Default)]
pub struct XrLoopOptions<'a> {
    /// Lay the network out for this play area (width, depth) instead of the runtime's.
    pub play_area: Option<Vec2>,
    /// Scripted buttons and thumbsticks merged with the real poses (its time starts at the
    /// first frame).
    pub script: Option<&'a Script>,
    /// The mirror window, pumped once per loop iteration (closing it ends the session).
    pub mirror: Option<&'a mut MirrorWindow>,
}

/// How the XR loop ended.
pub struct XrLoopEnd {
    pub end: EndReason,
    /// Both eyes of the frame read back ([`crate::xr::XrOptions::readback_frame`]), side by side.
    pub shot: Option<RgbaImage>,
    /// An error of the app's frame: the session was ended through the runtime, then the loop
    /// returned; the caller reports it (after the session's teardown).
    pub app_error: Option<AppError>,
}

/// What the loop keeps between frames.
struct XrLoop<'a> {
    player: Option<ScriptPlayer<'a>>,
    first_frame: Option<Instant>,
    /// What was last printed: each hand's hovered block, the selection.
    shown: ([Option<usize>; 2], Option<NeuronRef>),
    app_error: Option<AppError>,
    stop_requested: bool,
    shot: Option<RgbaImage>,
    mirror: Option<&'a mut MirrorWindow>,
}

/// Runs `app` in `session` until the session ends: the runtime or the user ends it, the frames
/// asked for were rendered, the mirror window was closed, an app frame failed, or `stop` is set
/// (e.g. by Ctrl-C): exit is then requested through the runtime. Prints what the session does
/// (`xr: ...`, `state ...`, `profile ...`, `frame N: ...`, `hover ...`, `selected ...`).
pub fn run_xr_session(
    app: &mut App,
    session: &mut XrSession,
    options: XrLoopOptions,
    stop: &AtomicBool,
) -> Result<XrLoopEnd, XrError> {
    let info = session.info();
    let bounds = info
        .stage_bounds
        .map_or("unknown".into(), |b| format!("{:.2}x{:.2} m", b.x, b.y));
    let depth = if info.depth { "color + depth" } else { "color" };
    println!(
        "xr: {} on {}, {}x{} per eye ({depth}), {} space, play area {bounds}",
        info.system, info.device, info.width, info.height, info.space
    );
    // The network winds through the play area.
    if let Some(area) = options.play_area.or(info.stage_bounds) {
        app.scene.stage = scene::Stage {
            half_extents: area / 2.0,
        };
        app.scene.arrange();
    }
    let mut state = XrLoop {
        player: options.script.map(ScriptPlayer::live),
        first_frame: None,
        shown: ([None, None], None),
        app_error: None,
        stop_requested: false,
        shot: None,
        mirror: options.mirror,
    };
    let end = 'run: loop {
        if let Some(m) = state.mirror.as_mut() {
            let events = m.pump();
            if events.close_requested {
                println!("mirror window closed");
            }
            state.stop_requested |= events.close_requested;
            if events.resized {
                session.renderer().window_resized();
            }
        }
        if (state.stop_requested || stop.load(Ordering::Relaxed))
            && let Some(end) = session.request_exit()
        {
            break 'run end;
        }
        for event in session.poll_events()? {
            match event {
                SessionEvent::State(s) => println!("state {s}"),
                SessionEvent::Profile { hand, profile } => println!("profile {}: {profile}", hand.name()),
                SessionEvent::Ended(end) => break 'run end,
            }
        }
        if !session.running() {
            // IDLE (or STOPPING handled): nothing to render; wait for the next state.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match xr_frame(app, session, &mut state) {
            Ok(()) => {}
            Err(e) if e.is_runtime_gone() => {
                tracing::warn!("the OpenXR runtime went away: {e}");
                break 'run EndReason::RuntimeGone;
            }
            Err(e) => return Err(e),
        }
    };
    Ok(XrLoopEnd {
        end,
        shot: state.shot,
        app_error: state.app_error,
    })
}

/// One XR frame: begin it, step and upload the app on its input (pulsing the hands it asks
/// for), render and end it, print what it shows.
fn xr_frame(app: &mut App, session: &mut XrSession, state: &mut XrLoop) -> Result<(), XrError> {
    let Some(frame) = session.begin_frame()? else {
        return Ok(());
    };
    // After an app error no more steps: the frames go on (empty of changes) until the session stops.
    if state.app_error.is_some() {
        state.stop_requested = true;
    } else {
        let now = Instant::now();
        let t = now.duration_since(*state.first_frame.get_or_insert(now)).as_secs_f32();
        let mut snapshot = frame.input.to_snapshot(t);
        if let Some(p) = state.player.as_mut() {
            snapshot = snapshot.with_scripted_buttons(&p.advance(t));
        }
        let eye = frame.input.head.map_or(Vec3::new(0.0, 1.6, 0.0), |h| h.position);
        match step_and_upload(app, session.renderer(), &snapshot, eye) {
            Ok(events) => {
                for &hand in &events.haptic {
                    session.pulse(hand)?;
                }
                print_scene_changes(&app.scene, &mut state.shown);
            }
            Err(e) => {
                state.app_error = Some(e);
                state.stop_requested = true;
            }
        }
    }
    let (index, input, views) = (frame.index, frame.input, frame.views);
    let readback = session.end_frame(frame)?;
    print_frame(index, &input, &views, readback.is_some());
    if let Some(images) = readback {
        state.shot = Some(RgbaImage::side_by_side(&images));
    }
    Ok(())
}

/// The first frame's and the read-back frame's controllers and eyes.
fn print_frame(index: u64, input: &crate::xr::XrInput, views: &[crate::gfx::EyeView; 2], readback: bool) {
    if index == 1 || readback {
        for hand in Hand::BOTH {
            let h = input.hand(hand);
            match h.aim {
                Some(aim) => {
                    let (p, f) = (aim.position, aim.forward());
                    println!(
                        "frame {index}: {} aim {:.3} {:.3} {:.3} forward {:.3} {:.3} {:.3} select {}",
                        hand.name(),
                        p.x,
                        p.y,
                        p.z,
                        f.x,
                        f.y,
                        f.z,
                        h.select
                    );
                }
                None => println!("frame {index}: {} aim untracked", hand.name()),
            }
        }
    }
    if readback {
        for (i, v) in views.iter().enumerate() {
            let (p, o, f) = (v.position, v.orientation, v.fov);
            println!(
                "frame {index}: eye {i} position {} {} {} orientation {} {} {} {} fov {} {} {} {}",
                p.x, p.y, p.z, o.x, o.y, o.z, o.w, f.left, f.right, f.up, f.down
            );
        }
    }
}

/// Prints what each hand points at and the selection when they changed since `shown`.
fn print_scene_changes(sc: &scene::Scene, shown: &mut ([Option<usize>; 2], Option<NeuronRef>)) {
    for (i, hand) in Hand::BOTH.into_iter().enumerate() {
        let hover = sc.hands[i].hover.as_ref().map(|h| h.block);
        if hover != shown.0[i] {
            shown.0[i] = hover;
            match hover.and_then(|k| Some((k, sc.placement(k)?))) {
                Some((k, p)) => println!("hover {}: block {k} ({})", hand.name(), p.name),
                None => println!("hover {}: none", hand.name()),
            }
        }
    }
    if sc.selection != shown.1 {
        shown.1 = sc.selection.clone();
        match &sc.selection {
            Some(n) => println!("selected block {} neuron {:?}", n.block, n.index),
            None => println!("selected none"),
        }
    }
}

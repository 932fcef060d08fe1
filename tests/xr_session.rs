//! The XR frame logic driven in-process, as a library: [`XrSession`] and
//! [`run_xr_session`] against the real headless Monado 25 (null compositor, simulated HMD and
//! two khr/simple_controller), with the OpenXR core validation layer and the Vulkan validation
//! layer on, checked on the values themselves (the [`App`], the loop's end, the session's
//! outcome, the frames), not on printed lines. The netwalk binary is not run.
//!
//! **Why each test runs in a child process of this test binary.** The runtime is Debian trixie's,
//! unpacked (xr-config/setup-monado.sh): its client library `libopenxr_monado.so`, the OpenXR
//! loader 1.1.47 and their libstdc++ need glibc 2.38 (`__isoc23_strtol`) and GLIBCXX_3.4.31+,
//! and this machine's glibc is 2.36. A process started by the host's dynamic loader cannot load
//! them (dlopen: "GLIBCXX_3.4.31 not found"; putting trixie's libc.so.6 on LD_LIBRARY_PATH breaks
//! on the host loader's GLIBC_PRIVATE symbols), and a process cannot change its own dynamic
//! loader. So each `#[test]` starts the runtime, then runs *this same test* again (`--exact`) in
//! this test binary through trixie's `ld-linux-x86-64.so.2 --library-path ...`, as tests/xr.rs
//! runs the netwalk binary; there the test body runs the session in its own process. The
//! runtime's environment (XR_RUNTIME_JSON, XDG_RUNTIME_DIR, the API layer path) is given to that
//! child on its command: no `std::env::set_var`. The parent checks that the child ran exactly
//! that test and passed, and shows its output and the runtime's log otherwise.
//!
//! Without the runtime these tests print a skip note, except under CI, where they fail. One
//! runtime (and one session) at a time: [`Monado::start`] holds a lock.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::monado::{Monado, SESSION_STATES, runtime_env};
use glam::{Vec2, Vec3};
use netwalk::app::App;
use netwalk::app::frame_loop::{XrLoopOptions, run_xr_session, step_and_upload};
use netwalk::gfx::{BACKGROUND_SRGB, RgbaImage};
use netwalk::input::{Hand, Script};
use netwalk::scene::{self, NeuronRef};
use netwalk::xr::{EndReason, SessionEvent, XrOptions, XrSession};

/// Set (to the test's name) in the child that runs a test's body under the runtime's loader.
const CHILD: &str = "NETWALK_XR_SESSION_CHILD";

/// How long a child (one session: Vulkan and pipelines under validation on lavapipe, the frames at
/// Monado's 20 Hz) may take. Seconds on an idle machine; generous for a loaded 2-core one.
const CHILD_DEADLINE: Duration = Duration::from_secs(300);

/// A 1 m × 8 m play area: the walk-in path goes straight ahead (−Z), so the first conv block
/// stands across the simulated right controller's ray, (0.2, 1.3, −0.5) along −Z.
const PLAY_AREA: Vec2 = Vec2::new(1.0, 8.0);

/// The test function's name (as libtest knows it in this binary).
macro_rules! test_name {
    () => {{
        fn f() {}
        let full = std::any::type_name_of_val(&f);
        let full = full.strip_suffix("::f").expect("a function path");
        full.rsplit("::").next().expect("a name")
    }};
}

/// In the parent (a plain `cargo test` process): starts Monado, runs test `name` of this binary in
/// a child through the runtime's dynamic loader with the runtime's environment, checks that it
/// ran and passed, and returns `false`. In that child: returns `true` (the caller runs the body,
/// with a listening runtime). `false` too after a skip note when there is no runtime (outside CI).
fn in_runtime_process(name: &str) -> bool {
    if let Ok(child) = std::env::var(CHILD) {
        assert_eq!(child, name, "the child runs only its own test (--exact)");
        return true;
    }
    let Some(env) = runtime_env() else {
        return false;
    };
    let monado = Monado::start(&env);
    let out_dir = tempfile::tempdir().expect("temp dir");
    let (stdout_path, stderr_path) = (out_dir.path().join("stdout"), out_dir.path().join("stderr"));
    let exe = std::env::current_exe().expect("this test binary");
    let mut cmd = env.ldso_command(&exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    env.apply(&mut cmd);
    let started = Instant::now();
    let mut child = cmd
        .env(CHILD, name)
        .env("XDG_RUNTIME_DIR", monado.runtime_dir())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("child stdout"))
        .stderr(std::fs::File::create(&stderr_path).expect("child stderr"))
        .spawn()
        .expect("run this test binary through the runtime's loader");
    // Polled against a deadline (the child's end is what is waited for, not a time).
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if started.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (stdout, stderr) = (read(&stdout_path), read(&stderr_path));
    let report = format!(
        "child `{name}` ({status:?} after {:.1} s):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- monado-service\n{}",
        started.elapsed().as_secs_f32(),
        monado.log()
    );
    // Shown by libtest with a failure (or with --nocapture).
    println!("{report}");
    let status = status.unwrap_or_else(|| panic!("the child ran past {CHILD_DEADLINE:?}"));
    assert!(status.success(), "the child failed");
    // Not a filter that matched nothing: the child ran this one test (--exact), and it passed.
    assert!(
        stdout.contains(&format!("test {name} ... ")) && stdout.contains("test result: ok. 1 passed;"),
        "the child did not run `{name}`"
    );
    false
}

/// The demo app as `netwalk run` makes it (sample 0, the tray), laid out for [`PLAY_AREA`].
fn demo_app() -> App {
    common::demo_app(
        0,
        scene::Stage {
            half_extents: PLAY_AREA / 2.0,
        },
    )
}

fn options(frames: Option<u64>) -> XrOptions {
    XrOptions {
        frames,
        validation: true,
        ..XrOptions::default()
    }
}

fn loop_options(script: Option<&Script>) -> XrLoopOptions<'_> {
    XrLoopOptions {
        play_area: Some(PLAY_AREA),
        script,
        mirror: None,
    }
}

/// Panics with the validation layers' messages, if any.
#[track_caller]
fn no_validation_messages(outcome: &netwalk::xr::XrOutcome) {
    assert!(
        outcome.xr_validation.is_empty(),
        "OpenXR validation: {:#?}",
        outcome.xr_validation
    );
    assert!(
        outcome.vulkan_validation.is_empty(),
        "Vulkan validation: {:#?}",
        outcome.vulkan_validation
    );
}

fn background() -> [u8; 3] {
    BACKGROUND_SRGB.map(|c| (c * 255.0).round() as u8)
}

/// Pixels of the `w`-wide eye `eye` of a side-by-side image that are not the background colour.
fn lit_pixels(image: &RgbaImage, eye: u32, w: u32) -> usize {
    let bg = background();
    (0..image.height)
        .flat_map(|y| (eye * w..(eye + 1) * w).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let px = image.pixel(x, y);
            px[..3]
                .iter()
                .zip(bg)
                .any(|(g, b)| (i16::from(*g) - i16::from(b)).abs() > 12)
        })
        .count()
}

#[test]
fn a_session_reaches_focus_renders_30_frames_ends_through_the_runtime_and_shows_the_network_in_each_eye() {
    if !in_runtime_process(test_name!()) {
        return;
    }
    let mut app = demo_app();
    let mut session = XrSession::new(&XrOptions {
        readback_frame: Some(30),
        ..options(Some(30))
    })
    .expect("an XR session on Monado");
    let info = session.info().clone();
    assert!(info.system.contains("Simulated"), "{info:?}");
    assert_eq!(
        (info.width, info.height),
        (320, 240),
        "Monado's recommended size per eye"
    );
    assert_eq!(info.space, "stage");
    assert!(info.depth, "Monado offers XR_KHR_composition_layer_depth");

    let stop = AtomicBool::new(false);
    let ran = run_xr_session(&mut app, &mut session, loop_options(None), &stop);
    let outcome = session.finish();
    let end = ran.expect("the XR loop");
    assert!(end.app_error.is_none(), "{:?}", end.app_error);
    assert_eq!(
        end.end,
        EndReason::Exited,
        "STOPPING then EXITING, asked for after 30 frames"
    );
    assert_eq!(outcome.frames, 30);
    assert!(outcome.focused, "the session reached FOCUSED");
    assert_eq!(outcome.stats.cpu.len(), 30, "one CPU time per rendered frame");
    no_validation_messages(&outcome);

    // Frame 30 read back from the runtime's swapchain image: left eye | right eye.
    let shot = end.shot.expect("frame 30 read back");
    assert_eq!((shot.width, shot.height), (2 * 320, 240));
    let eye_pixels = (320 * 240) as usize;
    let lit: Vec<usize> = (0..2).map(|eye| lit_pixels(&shot, eye, 320)).collect();
    eprintln!("non-background pixels per eye: {lit:?} of {eye_pixels}");
    for (eye, &n) in lit.iter().enumerate() {
        // The network (and the floor grid) cover part of each eye; the sky shows around them.
        assert!(n > eye_pixels / 50, "eye {eye}: only {n} non-background pixels");
        assert!(
            n < eye_pixels * 9 / 10,
            "eye {eye}: {n} non-background pixels (no sky?)"
        );
    }
    // Two views an IPD apart: the eyes' pictures differ.
    let (left, right): (Vec<_>, Vec<_>) = (0..shot.height)
        .flat_map(|y| (0..320).map(move |x| (x, y)))
        .map(|(x, y)| (shot.pixel(x, y), shot.pixel(x + 320, y)))
        .unzip();
    assert_ne!(left, right, "both eyes show the same picture");
}

#[test]
fn a_scripted_select_on_the_right_controllers_ray_selects_the_neuron_under_it_in_the_app() {
    if !in_runtime_process(test_name!()) {
        return;
    }
    let mut app = demo_app();
    // What the right controller's ray hits, laid out as the loop lays it out (the same play area).
    let hit = scene::systems::pick(&app.scene, Vec3::new(0.2, 1.3, -0.5), Vec3::NEG_Z)
        .expect("a block on the right controller's ray");
    let neuron = hit.neuron.clone().expect("a neuron (not a gap) under the ray");
    assert_eq!(app.scene.selection, None);

    // Real poses, scripted buttons (the replay format): the trigger goes down at 0.5 s and up at
    // 0.8 s after the first frame. 40 frames at Monado's 20 Hz take at least 1.95 s, and the live
    // player shows a press in at least one frame however slow the frames are.
    let script = Script::parse(
        r#"{"events": [{"t": 0.5, "hand": "right", "select": true}, {"t": 0.8, "hand": "right", "select": false}]}"#,
        Path::new("select.json"),
    )
    .expect("a script");
    let mut session = XrSession::new(&options(Some(40))).expect("an XR session on Monado");
    let stop = AtomicBool::new(false);
    let ran = run_xr_session(&mut app, &mut session, loop_options(Some(&script)), &stop);
    let outcome = session.finish();
    let end = ran.expect("the XR loop");
    assert!(end.app_error.is_none(), "{:?}", end.app_error);
    assert_eq!(end.end, EndReason::Exited);
    assert_eq!(outcome.frames, 40);
    no_validation_messages(&outcome);

    // The scene itself: the right hand hovers the block on its ray, and the select picked the
    // neuron under it.
    let right = &app.scene.hands[Hand::Right.slot()];
    let hover = right.hover.as_ref().expect("the right hand hovers a block");
    assert_eq!(hover.block, hit.block);
    assert_eq!(hover.neuron.as_ref(), Some(&neuron));
    assert_eq!(
        app.scene.selection,
        Some(NeuronRef {
            block: hit.block,
            index: neuron
        })
    );
}

#[test]
fn stop_set_from_another_thread_after_5_frames_ends_the_session_through_the_runtime() {
    if !in_runtime_process(test_name!()) {
        return;
    }
    let mut app = demo_app();
    // No frame limit: only `stop` ends this session.
    let mut session = XrSession::new(&options(None)).expect("an XR session on Monado");
    let frames = session.frame_counter();
    let stop = AtomicBool::new(false);
    let (ran, stopped_at) = std::thread::scope(|s| {
        let stopper = s.spawn(|| {
            // Watches the frame counter (against a deadline) and sets `stop` after frame 5.
            let deadline = Instant::now() + Duration::from_secs(120);
            while frames.load(Ordering::Relaxed) < 5 {
                assert!(Instant::now() < deadline, "fewer than 5 frames within 120 s");
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
            (Instant::now(), frames.load(Ordering::Relaxed))
        });
        let ran = run_xr_session(&mut app, &mut session, loop_options(None), &stop);
        // A stopper that panicked (no 5 frames) reports here; the loop would not have ended.
        let stopped_at = stopper.join().expect("the stopper");
        (ran, stopped_at)
    });
    let took = stopped_at.0.elapsed();
    let outcome = session.finish();
    let end = ran.expect("the XR loop");
    assert!(end.app_error.is_none(), "{:?}", end.app_error);
    // Through the runtime: request_exit, STOPPING, EXITING (not Interrupted: the session ran).
    assert_eq!(end.end, EndReason::Exited);
    assert!(
        took < Duration::from_secs(10),
        "the session ended {took:?} after stop was set"
    );
    let at = stopped_at.1;
    eprintln!(
        "stop set after frame {at}; ended {took:?} later, after {} frames",
        outcome.frames
    );
    assert!(
        outcome.frames >= at,
        "{} frames, stop set at frame {at}",
        outcome.frames
    );
    no_validation_messages(&outcome);
}

#[test]
fn the_polling_api_drives_a_session_by_hand_with_increasing_frames_and_sane_views() {
    if !in_runtime_process(test_name!()) {
        return;
    }
    let mut app = demo_app();
    let mut session = XrSession::new(&options(None)).expect("an XR session on Monado");
    let mut states = Vec::new();
    let mut profiles = Vec::new();
    let mut indices = Vec::new();
    let mut exit_asked = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    let first = Instant::now();
    let end = 'run: loop {
        assert!(
            Instant::now() < deadline,
            "no end within 120 s: {states:?}, frames {indices:?}"
        );
        for event in session.poll_events().expect("poll events") {
            match event {
                SessionEvent::State(s) => states.push(s),
                SessionEvent::Profile { hand, profile } => profiles.push((hand, profile)),
                SessionEvent::Ended(end) => break 'run end,
            }
        }
        if !session.running() {
            // IDLE, or stopped: the next state comes with a later poll.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let Some(frame) = session.begin_frame().expect("begin a frame") else {
            continue;
        };
        assert_eq!(frame.index, session.frames() + 1);
        assert!(
            indices.last().is_none_or(|&i| frame.index > i),
            "{indices:?} then {}",
            frame.index
        );
        for (eye, v) in frame.views.iter().enumerate() {
            let (p, q, f) = (v.position, v.orientation, v.fov);
            assert!(p.is_finite() && q.is_finite(), "eye {eye}: {v:?}");
            assert!((q.length() - 1.0).abs() < 1e-3, "eye {eye}: orientation {q}");
            // The simulated head wobbles around (0, 1.6, 0).
            assert!(p.distance(Vec3::new(0.0, 1.6, 0.0)) < 0.5, "eye {eye}: position {p}");
            let half = std::f32::consts::FRAC_PI_2;
            assert!(
                -half < f.left && f.left < 0.0 && 0.0 < f.right && f.right < half,
                "eye {eye}: {f:?}"
            );
            assert!(
                -half < f.down && f.down < 0.0 && 0.0 < f.up && f.up < half,
                "eye {eye}: {f:?}"
            );
            assert!(
                f.right - f.left > 0.5 && f.up - f.down > 0.5,
                "eye {eye}: a narrow {f:?}"
            );
        }
        let ipd = frame.views[0].position.distance(frame.views[1].position);
        assert!((0.04..0.1).contains(&ipd), "IPD {ipd}");
        // The app's frame, as the library's loop does it: step on the input, upload, render.
        let snapshot = frame.input.to_snapshot(first.elapsed().as_secs_f32());
        let eye = frame.input.head.map_or(Vec3::new(0.0, 1.6, 0.0), |h| h.position);
        step_and_upload(&mut app, session.renderer(), &snapshot, eye).expect("the app's frame");
        indices.push(frame.index);
        let pictures = session.end_frame(frame).expect("end the frame");
        assert!(pictures.is_none(), "no read-back asked for");
        assert_eq!(session.frames(), *indices.last().expect("a frame"));
        if indices.len() == 5 && !exit_asked {
            assert_eq!(session.request_exit(), None, "the runtime takes the request");
            exit_asked = true;
        }
    };
    let outcome = session.finish();
    assert_eq!(end, EndReason::Exited, "{states:?}");
    // Frames go on until STOPPING: at least the 5 before the request, numbered 1, 2, 3, ...
    assert!(indices.len() >= 5, "{indices:?}");
    assert_eq!(indices, (1..=indices.len() as u64).collect::<Vec<_>>());
    assert_eq!(outcome.frames, indices.len() as u64);
    assert!(outcome.focused);
    assert_eq!(states, SESSION_STATES);
    // The simulated controllers' profile, reported once the actions were synced with focus.
    for hand in Hand::BOTH {
        assert!(
            profiles.contains(&(hand, "/interaction_profiles/khr/simple_controller".to_string())),
            "{profiles:?}"
        );
    }
    no_validation_messages(&outcome);
}

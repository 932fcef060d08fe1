//! `netwalk` against a real OpenXR runtime: headless Monado 25 (null compositor, simulated HMD and
//! two khr/simple_controller), set up by xr-config/setup-monado.sh, with the OpenXR core
//! validation layer and the Vulkan validation layer on (any message fails: the binary exits
//! non-zero). The binary runs through the unpacked runtime's own dynamic loader, as the notes
//! describe.
//!
//! Without the runtime (the setup script fails) these tests print a skip note, except under CI,
//! where they fail. One runtime at a time (a lock): the machine has few cores.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::monado::{Monado, RuntimeEnv, SESSION_STATES, runtime_env};
use common::{Xvfb, decode_png};
use glam::{Quat, Vec3};
use netwalk::gfx::{BACKGROUND_SRGB, EyeView, Fov};
use netwalk::scene;

/// Deadline for a line the binary prints (a state change, a window): generous, as
/// [`common::monado::RUNTIME_START`] is.
const LINE_DEADLINE: Duration = Duration::from_secs(120);

impl Monado {
    /// `netwalk ARGS` as a client of this runtime.
    fn netwalk(&self, env: &RuntimeEnv, args: &[&str]) -> Command {
        let mut cmd = env.ldso_command(env!("CARGO_BIN_EXE_netwalk"));
        cmd.args(args);
        env.apply(&mut cmd);
        cmd.env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        cmd
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Three floats after `key` in `line`.
fn floats_after(line: &str, key: &str, n: usize) -> Vec<f32> {
    let rest = line
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("no `{key}` in `{line}`"));
    let v: Vec<f32> = rest
        .split_whitespace()
        .take(n)
        .map(|t| t.parse().unwrap_or_else(|_| panic!("`{t}` in `{line}`")))
        .collect();
    assert_eq!(v.len(), n, "{line}");
    v
}

/// The demo app as `netwalk run` makes it (sample 0, the tray), for a `w`×`d` m play area.
fn demo_app(w: f32, d: f32) -> netwalk::app::App {
    let stage = scene::Stage {
        half_extents: glam::Vec2::new(w / 2.0, d / 2.0),
    };
    common::demo_app(0, stage)
}

fn background() -> [u8; 3] {
    BACKGROUND_SRGB.map(|c| (c * 255.0).round() as u8)
}

fn near(got: [u8; 4], want: [u8; 3], tolerance: i16) -> bool {
    got[..3]
        .iter()
        .zip(want)
        .all(|(g, w)| (i16::from(*g) - i16::from(w)).abs() <= tolerance)
}

#[test]
fn a_session_reaches_focused_renders_60_frames_shows_the_network_in_each_eye_and_locates_the_controllers() {
    let Some(env) = runtime_env() else { return };
    let monado = Monado::start(&env);
    let dir = tempfile::tempdir().expect("temp dir");
    let shot = dir.path().join("xr.png");
    let out = monado
        .netwalk(
            &env,
            &[
                "run",
                "--xr",
                "--frames",
                "60",
                "--play-area",
                "1x8",
                "--stats",
                "--screenshot",
            ],
        )
        .arg(&shot)
        // The edges through the low-resolution edge pass (after the scene pass, before the
        // copies into the runtime's colour and depth images), under validation.
        .env("NETWALK_EDGE_SCALE", "2")
        .output()
        .expect("run netwalk");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "netwalk failed:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The whole state machine, in order.
    let states: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("state ")).collect();
    assert_eq!(states, SESSION_STATES, "{stdout}");
    assert!(stdout.contains("xr: ended (Exited) after 60 frames"), "{stdout}");
    assert!(stdout.contains("stage space"), "{stdout}");
    // Monado offers XR_KHR_composition_layer_depth and D32_SFLOAT: depth goes with every frame.
    assert!(stdout.contains("320x240 per eye (color + depth)"), "{stdout}");
    let stats = stdout.lines().find(|l| l.starts_with("stats: ")).expect("--stats line");
    assert!(stats.starts_with("stats: 60 frames, CPU per frame mean"), "{stats}");

    // The simulated controllers: static, identity orientation (aiming along −Z).
    for (hand, x) in [("left", -0.2), ("right", 0.2)] {
        for frame in [1, 60] {
            let key = format!("frame {frame}: {hand} aim ");
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&key))
                .unwrap_or_else(|| panic!("no `{key}`: {stdout}"));
            let p = floats_after(line, " aim ", 3);
            let f = floats_after(line, " forward ", 3);
            assert!(Vec3::from_slice(&p).distance(Vec3::new(x, 1.3, -0.5)) < 1e-3, "{line}");
            assert!(Vec3::from_slice(&f).distance(Vec3::NEG_Z) < 1e-3, "{line}");
            assert!(line.ends_with("select false"), "{line}");
        }
    }

    // The swapchain image of frame 60, read back from the runtime's image: left eye | right eye.
    let image = decode_png(&shot);
    let (w, h) = (image.width / 2, image.height);
    assert_eq!((w, h), (320, 240), "Monado's recommended size per eye");
    let eyes: Vec<EyeView> = (0..2)
        .map(|i| {
            let key = format!("frame 60: eye {i} ");
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&key))
                .unwrap_or_else(|| panic!("no `{key}`: {stdout}"));
            let p = floats_after(line, " position ", 3);
            let o = floats_after(line, " orientation ", 4);
            let f = floats_after(line, " fov ", 4);
            EyeView::new(
                Vec3::from_slice(&p),
                Quat::from_xyzw(o[0], o[1], o[2], o[3]),
                Fov {
                    left: f[0],
                    right: f[1],
                    up: f[2],
                    down: f[3],
                },
            )
        })
        .collect();
    assert!(
        (eyes[1].position - eyes[0].position).length() > 0.05,
        "two eyes an IPD apart"
    );
    // A 1 m × 8 m play area: the walk-in path goes straight ahead (−Z).
    let placements = demo_app(1.0, 8.0).placements();
    // The first conv block's top-left feature map: a lit tile straight ahead, behind the input.
    let conv = placements.iter().find(|p| p.tiles.len() > 1).expect("a conv block");
    let tile = conv.tiles[0].world_from_tile.transform_point3(Vec3::ZERO);
    let sky = Vec3::new(0.0, 3.5, -3.0);
    let mut xs = Vec::new();
    for (i, eye) in eyes.iter().enumerate() {
        let at = eye.project(tile, w, h).expect("the tile is in front");
        assert!(
            at.x >= 2.0 && at.y >= 2.0 && at.x < w as f32 - 2.0 && at.y < h as f32 - 2.0,
            "eye {i}: {at}"
        );
        let px = image.pixel(i as u32 * w + at.x as u32, at.y as u32);
        assert!(
            !near(px, background(), 12),
            "eye {i}: the tile at {at} is background {px:?}"
        );
        xs.push(at.x);
        let up = eye.project(sky, w, h).expect("in front");
        if up.x >= 0.0 && up.y >= 0.0 && up.x < w as f32 && up.y < h as f32 {
            let px = image.pixel(i as u32 * w + up.x as u32, up.y as u32);
            assert!(near(px, background(), 3), "eye {i}: sky at {up} is {px:?}");
        } else {
            // Straight up is out of view: the top row's middle is sky then.
            let px = image.pixel(i as u32 * w + w / 2, 0);
            assert!(near(px, background(), 3), "eye {i}: top row {px:?}");
        }
    }
    // Stereo: the left eye sees the tile further right than the right eye does.
    assert!(xs[0] > xs[1], "disparity {xs:?}");
}

/// Starts `cmd` with its output piped, and reads its stdout lines into a channel (so the test can
/// wait for one with a deadline).
fn spawn_with_lines(cmd: &mut Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netwalk");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_for_line(rx: &mpsc::Receiver<String>, want: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + LINE_DEADLINE;
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let done = line == want;
            seen.push(line);
            if done {
                return;
            }
        }
    }
    panic!("no `{want}` within {LINE_DEADLINE:?}: {seen:#?}");
}

/// Waits up to 5 s for `child` to exit.
fn exits_within_5_s(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn ctrl_c_ends_the_session_through_the_runtime_within_5_s() {
    let Some(env) = runtime_env() else { return };
    let monado = Monado::start(&env);
    let (mut child, rx) = spawn_with_lines(&mut monado.netwalk(&env, &["run", "--xr"]));
    let mut seen = Vec::new();
    wait_for_line(&rx, "state FOCUSED", &mut seen);
    // SAFETY: a plain kill(2) on our own child's PID.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let status = exits_within_5_s(&mut child).expect("netwalk still running 5 s after SIGINT");
    seen.extend(rx.try_iter());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(status.success(), "{status}: {seen:#?}\n{stderr}");
    for want in ["state STOPPING", "state EXITING"] {
        assert!(seen.iter().any(|l| l == want), "no `{want}`: {seen:#?}");
    }
    assert!(seen.iter().any(|l| l.starts_with("xr: ended (Exited)")), "{seen:#?}");
}

#[test]
fn a_killed_runtime_ends_the_app_within_5_s() {
    let Some(env) = runtime_env() else { return };
    let mut monado = Monado::start(&env);
    let (mut child, rx) = spawn_with_lines(&mut monado.netwalk(&env, &["run", "--xr"]));
    let mut seen = Vec::new();
    wait_for_line(&rx, "state FOCUSED", &mut seen);
    monado.child.kill().expect("kill monado-service");
    monado.child.wait().expect("reap monado-service");
    let status = exits_within_5_s(&mut child).expect("netwalk still running 5 s after the runtime was killed");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    // It ends with an error that says what happened, not a crash (signal) and not success.
    assert_eq!(status.code(), Some(1), "{status}: {stderr}");
    assert!(
        stderr.contains("error: ") && stderr.contains("OpenXR runtime"),
        "{stderr}"
    );
}

#[test]
fn a_broken_binding_file_is_an_error_naming_it() {
    let Some(env) = runtime_env() else { return };
    let monado = Monado::start(&env);
    let dir = tempfile::tempdir().expect("temp dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("xr-config");
    for f in std::fs::read_dir(&src).expect("xr-config") {
        let f = f.expect("entry").path();
        if f.extension().is_some_and(|e| e == "json") {
            std::fs::copy(&f, dir.path().join(f.file_name().expect("name"))).expect("copy");
        }
    }
    let broken = dir.path().join("valve_index_controller.json");
    std::fs::write(
        &broken,
        "{\"profile\": \"/interaction_profiles/valve/index_controller\", \"bindings\": {\"select\": 1}}",
    )
    .expect("write");
    let out = monado
        .netwalk(&env, &["run", "--xr", "--frames", "1", "--xr-config"])
        .arg(dir.path())
        .output()
        .expect("run netwalk");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&broken.display().to_string()) && stderr.contains("bindings.select"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Runs `netwalk ARGS` with no OpenXR runtime and no display in a fresh folder.
fn without_runtime(cmd: &mut Command, args: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = cmd
        .args(args)
        .current_dir(dir.path())
        .env("XR_RUNTIME_JSON", dir.path().join("no-such-runtime.json"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run netwalk");
    (out, dir)
}

#[test]
fn without_a_runtime_netwalk_falls_back_to_an_overview_png_and_run_xr_fails_clearly() {
    // The host's own libraries (maybe no OpenXR loader at all), then the unpacked loader with no
    // runtime behind XR_RUNTIME_JSON.
    let mut commands = vec![(Command::new(env!("CARGO_BIN_EXE_netwalk")), "host")];
    if let Some(env) = runtime_env() {
        let mut cmd = Command::new(env.get("NETWALK_XR_LDSO"));
        cmd.arg("--library-path")
            .arg(env.get("NETWALK_XR_LIBRARY_PATH"))
            .arg(env!("CARGO_BIN_EXE_netwalk"));
        env.apply(&mut cmd);
        commands.push((cmd, "unpacked loader"));
    }
    for (mut cmd, what) in commands {
        let mut forced = Command::new(cmd.get_program());
        forced
            .args(cmd.get_args())
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))));
        let (out, dir) = without_runtime(&mut cmd, &["run"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{what}: {stdout}\n{stderr}");
        assert!(stderr.contains("no headset"), "{what}: {stderr}");
        for hint in ["netwalk-overview.png", "--xr", "--desktop", "OpenXR"] {
            assert!(stdout.contains(hint), "{what}: no `{hint}` in {stdout}");
        }
        let png = decode_png(&dir.path().join("netwalk-overview.png"));
        assert_eq!((png.width, png.height), (1280, 720), "{what}");
        // Not an empty picture: the network covers part of it.
        let lit = png
            .pixels
            .chunks_exact(4)
            .filter(|p| !near([p[0], p[1], p[2], p[3]], background(), 12))
            .count();
        assert!(lit > 1000, "{what}: {lit} non-background pixels");

        let (out, dir) = without_runtime(&mut forced, &["run", "--xr"]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {stdout}\n{stderr}");
        // (The OpenXR loader prints its own complaints first.)
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: no OpenXR"), "{what}: {stderr}");
        assert!(
            !dir.path().join("netwalk-overview.png").exists(),
            "{what}: --xr must not fall back"
        );
    }
    // `netwalk` alone is the demo, with the same fallback.
    let (out, dir) = without_runtime(&mut Command::new(env!("CARGO_BIN_EXE_netwalk")), &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("netwalk-overview.png"), "{stdout}");
    assert_eq!(decode_png(&dir.path().join("netwalk-overview.png")).width, 1280);
}

#[test]
fn the_right_controller_hovers_the_block_on_its_ray_and_a_scripted_select_selects_the_neuron_under_it() {
    let Some(env) = runtime_env() else { return };
    // A 1 m × 8 m play area: the walk-in path goes straight ahead, so the first conv block stands
    // across the simulated right controller's ray, (0.2, 1.3, −0.5) along −Z.
    let app = demo_app(1.0, 8.0);
    let hit = scene::systems::pick(&app.scene, Vec3::new(0.2, 1.3, -0.5), Vec3::NEG_Z)
        .expect("a block on the right controller's ray");
    let neuron = hit.neuron.clone().expect("a neuron (not a gap) under the ray");
    let name = app.scene.placement(hit.block).expect("placement").name;

    let monado = Monado::start(&env);
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("select.json");
    // Real poses, scripted buttons: the trigger goes down at 1 s and up at 1.3 s (frame 20 is
    // at ~1 s with Monado's 20 Hz null compositor).
    std::fs::write(
        &script,
        r#"{"events": [{"t": 1.0, "hand": "right", "select": true}, {"t": 1.3, "hand": "right", "select": false}]}"#,
    )
    .expect("write script");
    let out = monado
        .netwalk(
            &env,
            &["run", "--xr", "--frames", "40", "--play-area", "1x8", "--script"],
        )
        .arg(&script)
        .output()
        .expect("run netwalk");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let events: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("hover right") || l.starts_with("selected"))
        .collect();
    assert_eq!(
        events,
        [
            format!("hover right: block {} ({name})", hit.block),
            format!("selected block {} neuron {neuron:?}", hit.block),
        ],
        "{stdout}"
    );
}

#[test]
fn the_mirror_window_shows_the_left_eye_and_closing_it_ends_the_session_through_the_runtime() {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{AtomEnum, ClientMessageEvent, ConnectionExt as _, EventMask, ImageFormat};

    let Some(env) = runtime_env() else { return };
    let Some(x) = Xvfb::start("mirror window test") else {
        return;
    };
    let monado = Monado::start(&env);
    // 800x480 for a 320x240 eye: scaled ×2 to 640x480, with 80-pixel bars left and right.
    let (mut child, rx) = spawn_with_lines(
        monado
            .netwalk(&env, &["run", "--xr", "--mirror", "--size", "800x480"])
            .env("DISPLAY", &x.display),
    );
    let mut seen = Vec::new();
    wait_for_line(&rx, "state FOCUSED", &mut seen);

    let (conn, screen) = x11rb::connect(Some(&x.display)).expect("connect to Xvfb");
    let root = conn.setup().roots[screen].root;
    let mirror_window = || {
        let tree = conn.query_tree(root).ok()?.reply().ok()?;
        tree.children.into_iter().find(|&w| {
            conn.get_property(false, w, AtomEnum::WM_NAME, AtomEnum::STRING, 0, 256)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|p| p.value.starts_with(b"netwalk (mirror)"))
        })
    };
    // 24-bit Xvfb: 4 bytes per pixel, B G R x.
    let pixel = |data: &[u8], px: usize, py: usize| {
        let i = (py * 800 + px) * 4;
        [data[i + 2], data[i + 1], data[i], 255]
    };
    let lit = |data: &[u8]| {
        (0..480)
            .flat_map(|py| (80..720).map(move |px| (px, py)))
            .filter(|&(px, py)| !near(pixel(data, px, py), background(), 12))
            .count()
    };
    // The window appears, and the eye's picture reaches it, some frames after FOCUSED (20 Hz, later
    // on a loaded machine): poll both rather than sleep for a guess.
    let deadline = Instant::now() + LINE_DEADLINE;
    let (window, data) = loop {
        let got = mirror_window().and_then(|w| {
            let image = conn
                .get_image(ImageFormat::Z_PIXMAP, w, 0, 0, 800, 480, !0)
                .ok()?
                .reply()
                .ok()?;
            Some((w, image.data))
        });
        match got {
            // The eye's picture fills the middle: the network and the floor grid, not just background.
            // Presented to: X leaves a new window black, the app clears to the background colour.
            Some((w, data))
                if data.len() >= 800 * 480 * 4 && pixel(&data, 10, 10) != [0, 0, 0, 255] && lit(&data) > 2000 =>
            {
                break (w, data);
            }
            got => assert!(
                Instant::now() < deadline,
                "no mirror window showing the eye within {LINE_DEADLINE:?} (window found: {}, {} lit pixels)",
                got.is_some(),
                got.as_ref()
                    .map_or(0, |(_, d)| if d.len() >= 800 * 480 * 4 { lit(d) } else { 0 })
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (px, py) in [(10, 10), (40, 240), (760, 400), (795, 5)] {
        assert!(
            near(pixel(&data, px, py), background(), 3),
            "bar at ({px}, {py}): {:?}",
            pixel(&data, px, py)
        );
    }

    // The close button: WM_DELETE_WINDOW, as a window manager sends it.
    let atom = |name: &str| {
        conn.intern_atom(false, name.as_bytes())
            .expect("atom")
            .reply()
            .expect("atom")
            .atom
    };
    let event = ClientMessageEvent::new(32, window, atom("WM_PROTOCOLS"), [atom("WM_DELETE_WINDOW"), 0, 0, 0, 0]);
    conn.send_event(false, window, EventMask::NO_EVENT, event)
        .expect("send close");
    conn.flush().expect("flush");
    let status = exits_within_5_s(&mut child).expect("netwalk still running 5 s after the window was closed");
    seen.extend(rx.try_iter());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(status.success(), "{status}: {seen:#?}\n{stderr}");
    let closed = seen
        .iter()
        .position(|l| l == "mirror window closed")
        .expect("close seen");
    let stopping = seen.iter().position(|l| l == "state STOPPING").expect("STOPPING");
    assert!(
        closed < stopping && seen.iter().any(|l| l == "state EXITING"),
        "{seen:#?}"
    );
}

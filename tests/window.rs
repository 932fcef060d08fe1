//! `netwalk run --desktop` under Xvfb, with validation on: the window shows exactly what the
//! offscreen renderer draws for the same camera, frames follow a resize, no frame is drawn while
//! minimized, and a window-manager close request (WM_DELETE_WINDOW) ends the program cleanly. Without a display it fails in one line.
//!
//! Each test starts its own Xvfb (on a display number Xvfb picks itself). Without Xvfb or a Vulkan
//! device these tests print a skip note, except under CI, where they fail.

mod common;

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

use common::{Xvfb, decode_png, have_vulkan, srgb8};
use netwalk::gfx::{BACKGROUND_SRGB, Camera, Renderer, RendererConfig, RgbaImage};
use netwalk::scene;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConfigureWindowAux, ConnectionExt as _, EventMask, PropMode, Window,
};
use x11rb::wrapper::ConnectionExt as _;

/// Xvfb and Vulkan, or `None` when the test should be skipped.
fn setup() -> Option<Xvfb> {
    if !have_vulkan("window") {
        return None;
    }
    Xvfb::start("window tests")
}

fn netwalk(display: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netwalk"));
    cmd.args(["run", "--desktop"])
        .args(args)
        .env("DISPLAY", display)
        .env_remove("WAYLAND_DISPLAY")
        .env("NETWALK_VALIDATION", "1");
    cmd
}

/// The demo network for sample 0 as `run` shows it (the room-scale scene), and the camera `run`
/// starts with for a window of `aspect`.
fn demo_scene(aspect: f32) -> (netwalk::app::App, Camera, Vec<scene::LayerPlacement>) {
    let app = common::demo_app(0, scene::Stage::default());
    let camera = app.overview(aspect);
    let placements = app.placements();
    (app, camera, placements)
}

/// The frame count of the `closed after N frames` line.
fn frames_closed_after(lines: &str) -> u64 {
    lines
        .lines()
        .find_map(|l| l.strip_prefix("closed after ")?.strip_suffix(" frames")?.parse().ok())
        .unwrap_or_else(|| panic!("no `closed after N frames` in {lines}"))
}

/// Checks a window screenshot: its size, the background in a corner, the input picture where the
/// camera projects it, and every pixel against the offscreen renderer's image of the same scene
/// after the same number of frames (the edge bundle settles over the first frames).
#[track_caller]
fn check_screenshot(
    image: &RgbaImage,
    (width, height): (u32, u32),
    start_aspect: f32,
    frames: u64,
    edge_scale: Option<u32>,
) {
    assert_eq!((image.width, image.height), (width, height), "screenshot size");
    let (mut app, camera, placements) = demo_scene(start_aspect);
    let background = srgb8(BACKGROUND_SRGB);
    for (x, y) in [(0, 0), (width - 1, 0)] {
        let p = image.pixel(x, y);
        let close = p[..3].iter().zip(background).all(|(a, b)| a.abs_diff(b) <= 1);
        assert!(
            close && p[3] == 255,
            "corner ({x}, {y}) is {p:?}, not the background {background:?}"
        );
    }
    let input = &placements[0];
    let at = camera.project(input.center, width, height).expect("input in front");
    let seen = (-2i32..=2)
        .flat_map(|dy| (-2i32..=2).map(move |dx| (dx, dy)))
        .any(|(dx, dy)| {
            let p = image.pixel((at.x as i32 + dx) as u32, (at.y as i32 + dy) as u32);
            p[..3].iter().zip(background).any(|(a, b)| a.abs_diff(b) > 3)
        });
    assert!(seen, "the input picture `{}` is not visible at {at}", input.name);

    let config = RendererConfig {
        validation: true,
        edge_scale,
    };
    let mut r = Renderer::new(&config).expect("renderer");
    app.upload(&mut r, camera.eye).expect("upload");
    for _ in 1..frames {
        r.render_offscreen(width, height, &[camera]).expect("render");
    }
    let reference = r.render_offscreen(width, height, &[camera]).expect("render").remove(0);
    let log = r.validation_log();
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new());
    // The window's frame is the offscreen frame blitted 1:1 (sRGB to sRGB): the same bytes, up to
    // rounding in the format conversion.
    let worst = image
        .pixels
        .iter()
        .zip(&reference.pixels)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    assert!(
        worst <= 1,
        "the window's frame differs from the offscreen render by up to {worst}"
    );
}

#[test]
fn window_shows_the_network_and_saves_the_last_frame() {
    let Some(x) = setup() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let shot = dir.path().join("shot.png");
    let o = netwalk(&x.display, &["--size", "320x240", "--frames", "3", "--screenshot"])
        .arg(&shot)
        .output()
        .expect("run netwalk");
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "netwalk run failed: {stderr}");
    assert!(!stderr.contains("vulkan"), "validation output: {stderr}");
    assert!(stdout.contains("frame 1: 320x240"), "{stdout}");
    assert!(stdout.contains("closed after 3 frames"), "{stdout}");
    check_screenshot(
        &decode_png(&shot),
        (320, 240),
        320.0 / 240.0,
        frames_closed_after(&stdout),
        None,
    );
}

/// A running `netwalk run`: its stdout line by line; its stderr collected by a thread (so a
/// chatty child never blocks on a full pipe).
struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: std::thread::JoinHandle<String>,
    /// Dropped when the test is done with the child; until then a watchdog kills it after
    /// [`HANG_LIMIT`], so a window that never does what the test waits for fails the test
    /// (its stdout ends) instead of hanging it. A guard, not a measurement.
    _watchdog: std::sync::mpsc::Sender<()>,
}

const HANG_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run netwalk");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut err = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        let (watchdog, done) = std::sync::mpsc::channel::<()>();
        let pid = child.id().to_string();
        std::thread::spawn(move || {
            if done.recv_timeout(HANG_LIMIT) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                eprintln!("netwalk still runs after {HANG_LIMIT:?}: killing it");
                // The shell's kill: minimal Debian images have no kill program.
                let _ = Command::new("sh").args(["-c", &format!("kill {pid}")]).status();
            }
        });
        Running {
            child,
            lines,
            stderr,
            _watchdog: watchdog,
        }
    }

    /// Reads stdout lines until one contains `want`; all lines read. Panics, with the child's
    /// stderr, when it ends first.
    fn wait_for_line(&mut self, want: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for line in self.lines.by_ref() {
            let line = line.expect("read netwalk's output");
            let done = line.contains(want);
            seen.push(line);
            if done {
                return seen;
            }
        }
        let (status, stderr) = self.finish();
        panic!("netwalk ended ({status}) before printing `{want}`; it printed {seen:?}; stderr: {stderr}");
    }

    /// Waits for the child to end: its exit status and stderr.
    fn finish(&mut self) -> (ExitStatus, String) {
        let status = self.child.wait().expect("wait for netwalk");
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        (status, stderr.join().unwrap_or_default())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed halfway leaves no window process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The top-level window whose WM_NAME starts with `prefix`.
fn find_window(conn: &impl Connection, root: Window, prefix: &str) -> Window {
    let tree = conn.query_tree(root).expect("query tree").reply().expect("tree");
    tree.children
        .into_iter()
        .find(|&w| {
            conn.get_property(false, w, AtomEnum::WM_NAME, AtomEnum::STRING, 0, 256)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|p| p.value.starts_with(prefix.as_bytes()))
        })
        .unwrap_or_else(|| panic!("no window named `{prefix}…` on the display"))
}

fn atom(conn: &impl Connection, name: &str) -> u32 {
    conn.intern_atom(false, name.as_bytes())
        .expect("intern atom")
        .reply()
        .expect("atom")
        .atom
}

/// Resizes `window` as a window manager (or the user dragging a border) does.
fn resize(conn: &impl Connection, window: Window, width: u32, height: u32) {
    conn.configure_window(window, &ConfigureWindowAux::new().width(width).height(height))
        .expect("resize");
    conn.flush().expect("flush");
}

/// Minimizes (`true`) or restores `window` as an EWMH window manager does: the
/// _NET_WM_STATE_HIDDEN state, and unmapping it.
fn minimize(conn: &impl Connection, window: Window, minimized: bool) {
    let state = atom(conn, "_NET_WM_STATE");
    if minimized {
        let hidden = atom(conn, "_NET_WM_STATE_HIDDEN");
        conn.change_property32(PropMode::REPLACE, window, state, AtomEnum::ATOM, &[hidden])
            .expect("set state");
        conn.unmap_window(window).expect("unmap");
    } else {
        conn.delete_property(window, state).expect("clear state");
        conn.map_window(window).expect("map");
    }
    conn.flush().expect("flush");
}

#[test]
fn window_follows_a_resize_and_closes_on_the_window_managers_request() {
    let Some(x) = setup() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let shot = dir.path().join("shot.png");
    let mut cmd = netwalk(&x.display, &["--size", "320x240", "--screenshot"]);
    // The edges through the low-resolution edge pass, whose buffers follow the window's size.
    cmd.arg(&shot).env("NETWALK_EDGE_SCALE", "2");
    let mut run = Running::spawn(cmd);
    run.wait_for_line("frame 1: 320x240");

    let (conn, screen) = x11rb::connect(Some(&x.display)).expect("connect to Xvfb");
    let root = conn.setup().roots[screen].root;
    let window = find_window(&conn, root, "netwalk");
    // Sizes of the start's aspect, so the camera's projection of the scene stays the same.
    resize(&conn, window, 400, 300);
    run.wait_for_line(": 400x300");

    // Minimized, nothing is drawn: resized meanwhile, the first frame after the restore is the
    // next frame number, already at the new size.
    minimize(&conn, window, true);
    let paused = run.wait_for_line("paused after frame ");
    let last: u64 = paused
        .last()
        .and_then(|l| l.strip_prefix("paused after frame "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no frame number in {paused:?}"));
    resize(&conn, window, 480, 360);
    minimize(&conn, window, false);
    run.wait_for_line("resumed");
    let next = run.wait_for_line("frame ");
    assert_eq!(
        next.last().map(String::as_str),
        Some(format!("frame {}: 480x360", last + 1).as_str())
    );

    // The close button: the window manager sends WM_DELETE_WINDOW.
    let protocols = atom(&conn, "WM_PROTOCOLS");
    let delete = atom(&conn, "WM_DELETE_WINDOW");
    let event = ClientMessageEvent::new(32, window, protocols, [delete, 0, 0, 0, 0]);
    conn.send_event(false, window, EventMask::NO_EVENT, event)
        .expect("send close");
    conn.flush().expect("flush");
    let rest = run.wait_for_line("wrote 480x360 screenshot");
    let (status, stderr) = run.finish();
    assert!(status.success(), "netwalk run failed ({status}): {stderr}");
    assert!(!stderr.contains("vulkan"), "validation output: {stderr}");
    assert!(rest.iter().any(|l| l.starts_with("closed after")), "{rest:?}");
    check_screenshot(
        &decode_png(&shot),
        (480, 360),
        320.0 / 240.0,
        frames_closed_after(&rest.join("\n")),
        Some(2),
    );
}

#[test]
fn without_a_display_run_desktop_fails_in_one_line() {
    let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args(["run", "--desktop", "--frames", "1"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .output()
        .expect("run netwalk");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: desktop window: no display"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A display that is not there (no X server uses number 65000).
    let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args(["run", "--desktop", "--frames", "1"])
        .env("DISPLAY", ":65000")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .output()
        .expect("run netwalk");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: desktop window: cannot connect to the display `:65000`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("os error at"),
        "winit's source location leaked: {stderr}"
    );
}

//! Helpers shared by the integration tests that render (each test file uses some of them).
#![allow(dead_code)]

pub mod monado;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use netwalk::gfx::RgbaImage;
use netwalk::nn::{self, Model};
use netwalk::scene::{Scale, Stage};

/// CI is set (and not "false"/"0"): missing tools are failures there, not skips.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// An RGBA PNG as written by `netwalk snapshot` / `--screenshot`.
pub fn decode_png(path: &Path) -> RgbaImage {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).expect("open PNG")));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("PNG data");
    assert_eq!(info.color_type, png::ColorType::Rgba);
    pixels.truncate(info.buffer_size());
    RgbaImage {
        width: info.width,
        height: info.height,
        pixels,
    }
}

/// An sRGB color as the 8-bit values a PNG holds.
pub fn srgb8(c: [f32; 3]) -> [u8; 3] {
    c.map(|v| (v * 255.0).round() as u8)
}

/// The demo network's app as `netwalk run` / `snapshot` make it: `sample` as the input, the
/// sample tray, the checkpoint timeline, in `stage`.
pub fn demo_app(sample: usize, stage: Stage) -> netwalk::app::App {
    let model = Model::load(&nn::demo::demo_dir().expect("demo")).expect("demo model");
    let weights = nn::Weights::load(&model).expect("demo weights");
    let samples = nn::Samples::load(&model, model.samples.as_ref().expect("samples")).expect("samples");
    let timeline = nn::timeline::Timeline::load(&model).expect("timeline");
    let input = samples.image(sample).to_vec();
    netwalk::app::App::new(model, weights, Some(samples), input, stage, Scale::WalkIn)
        .expect("the demo runs")
        .with_timeline(timeline)
}

/// An Xvfb server (an X display without a screen) for a test; killed on drop.
pub struct Xvfb {
    child: Child,
    pub display: String,
    /// Kept open: Xvfb must not get a broken pipe should it write again.
    _stdout: BufReader<ChildStdout>,
}

impl Xvfb {
    /// Starts Xvfb, or returns `None` (after a note) when it is not installed outside CI; `what`
    /// names the tests that need it in the messages.
    pub fn start(what: &str) -> Option<Xvfb> {
        // -displayfd: Xvfb picks a free display number and writes it once it accepts clients.
        let spawned = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    !in_ci(),
                    "CI needs Xvfb for the {what} (scripts/test.sh installs the Debian package xvfb)"
                );
                eprintln!("SKIPPED ({what}): Xvfb is not installed (Debian: xvfb)");
                return None;
            }
            Err(e) => panic!("cannot start Xvfb: {e}"),
        };
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        stdout.read_line(&mut line).expect("read Xvfb's display number");
        let number: u32 = match line.trim().parse() {
            Ok(n) => n,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("Xvfb did not start (it printed {line:?} instead of a display number)");
            }
        };
        Some(Xvfb {
            child,
            display: format!(":{number}"),
            _stdout: stdout,
        })
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this machine has Vulkan with the validation layer (else a note naming `suite`, or a
/// failure in CI).
pub fn have_vulkan(suite: &str) -> bool {
    use netwalk::gfx::{GfxError, Renderer, RendererConfig};
    match Renderer::new(&RendererConfig {
        validation: true,
        ..Default::default()
    }) {
        Ok(_) => true,
        Err(e @ (GfxError::Loader(_) | GfxError::NoDevice(_) | GfxError::NoValidationLayer)) => {
            assert!(!in_ci(), "CI needs a Vulkan device for the {suite} tests: {e}");
            eprintln!("SKIPPED ({suite}): {e}");
            false
        }
        Err(e) => panic!("cannot create a renderer: {e}"),
    }
}

/// Runs `netwalk ARGS` (the edge scale the app picks, plain output); what it returned.
pub fn netwalk_run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args(args)
        .env_remove("NETWALK_EDGE_SCALE")
        .env("NO_COLOR", "1")
        .output()
        .expect("run netwalk")
}

/// Runs `netwalk ARGS`, which must succeed; its stdout.
#[track_caller]
pub fn netwalk_ok(args: &[&str]) -> String {
    let o = netwalk_run(args);
    assert!(
        o.status.success(),
        "netwalk {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 stdout")
}

/// Runs the `netwalk` binary; its exit code (-1 when killed by a signal) and its stderr.
pub fn netwalk_stderr(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run the netwalk binary");
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Exit code 1 (not 101 = panic), exactly one stderr line `error: ...` containing every needle.
#[track_caller]
pub fn cli_fails(args: &[&std::ffi::OsStr], needles: &[&str]) {
    let (code, stderr) = netwalk_stderr(args);
    assert_eq!(code, 1, "exit code {code} (101 = panic); stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected exactly one stderr line, got:\n{stderr}");
    assert!(
        lines[0].starts_with("error: "),
        "stderr line lacks `error: `: {}",
        lines[0]
    );
    for n in needles {
        assert!(lines[0].contains(n), "stderr line lacks {n:?}: {}", lines[0]);
    }
}

pub fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

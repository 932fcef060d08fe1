//! The README's flags of `netwalk run` (the desktop window under Xvfb, as tests/window.rs runs
//! it), `netwalk replay --fps` and `netwalk bench bundle` / `bench train --stereo`, each asserting
//! what the flag changes, so it fails when the flag stops having its effect:
//!
//! - `run --sample N`: the input picture in the window's first frames is that sample's (it
//!   differs from sample 0's there, and matches `snapshot --sample N` there);
//! - `run --checkpoint LABEL`: the feature maps are that checkpoint's (they differ from the final
//!   weights' there, and match `snapshot --checkpoint INDEX` of the same checkpoint);
//! - `run --watch DIR` / `run --train`: a checkpoint file already in DIR (a copy of init) shows,
//!   as `snapshot --checkpoint 0` shows it; live training shows weights other than the final ones;
//! - `replay --fps F`: the timeline position after a held left thumbstick, which the scene
//!   integrates frame by frame (a frame's time is capped at 0.1 s, and the first frame of the
//!   hold has no length), so it depends on the frame rate;
//! - `bench bundle`: the synthetic's edge count, `--iters` runs, `--size`, `--stereo`, one frame
//!   line per `--edge-scale`, `--frames 0` drawing no frame; `bench train --stereo`; `bench
//!   bundle|render|forward MODEL` with a model folder other than the demo.
//!
//! Without Xvfb or a Vulkan device the window tests print a skip note, except under CI.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Xvfb, decode_png, demo_app, have_vulkan};
use glam::Vec3;
use netwalk::gfx::{Camera, RgbaImage};
use netwalk::scene::{self, LayerPlacement};
use serde_json::{Value, json};

const W: u32 = 480;
const H: u32 = 270;

fn netwalk() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netwalk"));
    cmd.env_remove("NETWALK_EDGE_SCALE").env("NO_COLOR", "1");
    cmd
}

/// Runs the command, which must succeed; its stdout.
#[track_caller]
fn ok(cmd: &mut Command) -> String {
    let o: Output = cmd.output().expect("run netwalk");
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 stdout")
}

/// `netwalk run --desktop --size 480x270 --frames 2 ARGS --screenshot dir/name` on `display`,
/// validated; the screenshot.
fn window_shot(display: &str, dir: &Path, name: &str, args: &[&str]) -> RgbaImage {
    let shot = dir.join(name);
    let size = format!("{W}x{H}");
    // `--frames` given in ARGS replaces the 2.
    let frames = args.iter().position(|&a| a == "--frames").map_or("2", |i| args[i + 1]);
    let args: Vec<&str> = match args.iter().position(|&a| a == "--frames") {
        Some(i) => [&args[..i], &args[i + 2..]].concat(),
        None => args.to_vec(),
    };
    let out = ok(netwalk()
        .args(["run", "--desktop", "--size", &size, "--frames", frames])
        .args(args)
        .arg("--screenshot")
        .arg(&shot)
        .env("DISPLAY", display)
        .env_remove("WAYLAND_DISPLAY")
        .env("NETWALK_VALIDATION", "1"));
    assert!(out.contains(&format!("closed after {frames} frames")), "{out}");
    decode_png(&shot)
}

/// `netwalk snapshot --size 480x270 ARGS` into `dir/name`, decoded.
fn snapshot(dir: &Path, name: &str, args: &[&str]) -> RgbaImage {
    let out = dir.join(name);
    let size = format!("{W}x{H}");
    ok(netwalk()
        .args(["snapshot", "--size", &size, "--out"])
        .arg(&out)
        .args(args));
    decode_png(&out)
}

/// The pixel rectangle (x0, y0, x1, y1) that `camera` puts a block's tiles in, shrunk by a
/// pixel on each side (so the block's outline and anti-aliased border stay out).
fn screen_rect(camera: &Camera, block: &LayerPlacement) -> (u32, u32, u32, u32) {
    let (mut lo, mut hi) = (glam::Vec2::splat(f32::MAX), glam::Vec2::splat(f32::MIN));
    for tile in &block.tiles {
        for (u, v) in [(-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)] {
            let p = tile.world_from_tile.transform_point3(Vec3::new(u, v, 0.0));
            let at = camera.project(p, W, H).expect("block in front of the camera");
            lo = lo.min(at);
            hi = hi.max(at);
        }
    }
    let clamp = |v: f32, max: u32| (v.max(0.0) as u32).min(max - 1);
    let r = (
        clamp(lo.x + 1.0, W),
        clamp(lo.y + 1.0, H),
        clamp(hi.x - 1.0, W),
        clamp(hi.y - 1.0, H),
    );
    assert!(
        r.2 > r.0 + 4 && r.3 > r.1 + 4,
        "`{}` covers only {r:?} in a {W}x{H} frame",
        block.name
    );
    r
}

/// Mean absolute colour difference (0..255) of two images within a pixel rectangle.
fn region_diff(a: &RgbaImage, b: &RgbaImage, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (p, q) = (a.pixel(x, y), b.pixel(x, y));
            sum += (0..3).map(|i| u64::from(p[i].abs_diff(q[i]))).sum::<u64>();
            n += 3;
        }
    }
    sum as f64 / n as f64
}

/// `run --sample 3` shows sample 3 in the window (not sample 0, the default) where the input
/// picture stands, as `snapshot --sample 3` shows it; `run --checkpoint init` shows the init
/// checkpoint's feature maps (not the final weights') on conv1, as `snapshot --checkpoint 0`
/// does, with the same input as the default run.
#[test]
fn run_sample_and_checkpoint_show_in_the_window() {
    if !have_vulkan("flags_run") {
        return;
    }
    let Some(x) = Xvfb::start("run --sample/--checkpoint test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let default = window_shot(&x.display, dir.path(), "default.png", &[]);
    let sample3 = window_shot(&x.display, dir.path(), "sample3.png", &["--sample", "3"]);
    let init = window_shot(&x.display, dir.path(), "init.png", &["--checkpoint", "init"]);
    let snap3 = snapshot(dir.path(), "snap3.png", &["--sample", "3"]);
    let snap_init = snapshot(dir.path(), "snap-init.png", &["--checkpoint", "0"]);

    // Where the window's start camera (the overview, as `run` makes it) puts the blocks; they
    // stand where they stand for every sample and checkpoint.
    let app = demo_app(0, scene::Stage::default());
    let camera = app.overview(W as f32 / H as f32);
    let placements = app.placements();
    let input = screen_rect(&camera, &placements[0]);
    let conv1 = screen_rect(&camera, &placements[1]);
    assert_eq!(placements[1].name, "conv1+relu1");

    // Sample 3 (a 3) against sample 0 (a 0): most of the 28x28 picture changes.
    let moved = region_diff(&default, &sample3, input);
    assert!(moved > 10.0, "--sample 3 changed the input picture by only {moved:.2}");
    let same = region_diff(&sample3, &snap3, input);
    assert!(
        same < 1.0,
        "the window's input picture for --sample 3 differs from snapshot --sample 3's by {same:.2}"
    );

    // The init checkpoint's conv1 maps against the final weights'.
    let moved = region_diff(&default, &init, conv1);
    // (conv1's tiles are small in the overview, with background between them: about 4.7 here.)
    assert!(moved > 2.0, "--checkpoint init changed conv1's maps by only {moved:.2}");
    let same = region_diff(&init, &snap_init, conv1);
    assert!(
        same < 0.5,
        "the window's conv1 for --checkpoint init differs from snapshot --checkpoint 0's by {same:.2}"
    );
    // The checkpoint changes the weights, not the input.
    let input_moved = region_diff(&default, &init, input);
    assert!(
        input_moved < 1.0,
        "--checkpoint changed the input picture by {input_moved:.2}"
    );
}

/// `replay --fps F`: the left thumbstick held fully left from t = 0 to t = 1 s scrubs the timeline
/// back from its last checkpoint by 2 checkpoints a second, frame by frame: at F fps the frames
/// are at k/F (and at the events), the one at t = 0 has no length, the one at t = 1 sees the stick
/// released, and a frame counts at most 0.1 s. So the position is `end − 2 × (F − 1)/F` for
/// F ≥ 10, and `end − 2 × 0.1 × (frames inside the hold)` below.
#[test]
fn replay_fps_sets_the_frame_rate_the_scene_integrates_at() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("scrub.json");
    let events = json!({"events": [
        {"t": 0.0, "hand": "left", "thumbstick": [-1.0, 0.0]},
        {"t": 1.0, "hand": "left", "thumbstick": [0.0, 0.0]},
    ]});
    std::fs::write(&script, events.to_string()).expect("write script");
    let model = netwalk::nn::Model::load(&netwalk::nn::demo::demo_dir().expect("demo")).expect("demo");
    let end = (model.checkpoints.len() - 1) as f64;
    assert!(end >= 3.0, "the demo has {} checkpoints", model.checkpoints.len());
    let position = |fps: &str| -> f64 {
        let state = dir.path().join(format!("state-{fps}.json"));
        ok(netwalk()
            .args(["replay", "--script"])
            .arg(&script)
            .arg("--state-out")
            .arg(&state)
            .args(["--fps", fps]));
        let state: Value = serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("state JSON");
        state["checkpoint"]["position"]
            .as_f64()
            .unwrap_or_else(|| panic!("no checkpoint position at {fps} fps: {state}"))
    };
    for (fps, scrubbed) in [
        ("90", 2.0 * 89.0 / 90.0),
        ("20", 2.0 * 19.0 / 20.0),
        ("10", 2.0 * 9.0 / 10.0),
        // Frames at 0.25, 0.5 and 0.75 s inside the hold, each capped at 0.1 s.
        ("4", 2.0 * 3.0 * 0.1),
    ] {
        let got = position(fps);
        let want = end - scrubbed;
        assert!(
            (got - want).abs() < 2e-3,
            "--fps {fps}: timeline position {got}, want {want} ({scrubbed} checkpoints back from {end})"
        );
    }
}

/// A `bench` run validated on the default device; its stdout.
fn bench(args: &[&str]) -> String {
    ok(netwalk().arg("bench").args(args).env("NETWALK_VALIDATION", "1"))
}

/// `bench bundle --synthetic mlp-64-32-10 --iters 2 --frames 2 --size 64x48 [--stereo]
/// [--edge-scale 1,2]`: that model's 64·32 + 32·10 edges in its two layer pairs, 2 runs, the frame
/// size (two eyes with `--stereo`), one frame line per scale; `--frames 0` draws no frame.
#[test]
fn bench_bundle_options() {
    if !have_vulkan("flags_run") {
        return;
    }
    let base = [
        "bundle",
        "--synthetic",
        "mlp-64-32-10",
        "--iters",
        "2",
        "--frames",
        "2",
        "--size",
        "64x48",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        bench(&args)
    };
    let scaled = with(&["--stereo", "--edge-scale", "1,2"]);
    let header = scaled.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("netwalk bench bundle synthetic mlp-64-32-10 on "),
        "{scaled}"
    );
    assert!(
        header.contains(&format!("{} edges bundled in 2 layer pair(s)", 64 * 32 + 32 * 10)),
        "{scaled}"
    );
    assert!(header.ends_with("; 2 runs"), "--iters 2: {scaled}");
    let fc = |name: &str, n: usize| {
        scaled
            .lines()
            .any(|l| l.trim_start().starts_with(name) && l.trim_end().ends_with(&format!(" {n} edges")))
    };
    assert!(fc("fc1", 64 * 32) && fc("fc2", 32 * 10), "{scaled}");
    assert!(scaled.contains("  frame 2 eyes × 64x48 "), "--stereo/--size: {scaled}");
    let scale_lines: Vec<&str> = scaled
        .lines()
        .filter(|l| l.trim_start().starts_with("edges at 1/"))
        .collect();
    assert_eq!(scale_lines.len(), 2, "--edge-scale 1,2: {scaled}");
    assert!(scale_lines[0].trim_start().starts_with("edges at 1/1 "), "{scaled}");
    assert!(scale_lines[1].trim_start().starts_with("edges at 1/2 "), "{scaled}");
    assert!(scaled.contains("full resolution, in the scene pass"), "{scaled}");
    assert!(scaled.contains("1/2 resolution, added to the scene"), "{scaled}");

    // Mono, the default scale (ribbons for 2,368 edges), other runs and size.
    let mut args = base.to_vec();
    args.splice(3..5, ["--iters", "3"]);
    args.splice(7..9, ["--size", "40x30"]);
    let plain = bench(&args);
    assert!(
        plain.lines().next().unwrap_or_default().ends_with("; 3 runs"),
        "{plain}"
    );
    assert!(plain.contains("  frame 40x30 "), "{plain}");
    assert!(!plain.contains("2 eyes"), "{plain}");
    let scale_lines = plain
        .lines()
        .filter(|l| l.trim_start().starts_with("edges at 1/"))
        .count();
    assert_eq!(scale_lines, 1, "{plain}");

    // --frames 0: no frame drawn, so no frame lines.
    let mut args = base.to_vec();
    args.splice(5..7, ["--frames", "0"]);
    let no_frames = bench(&args);
    assert!(!no_frames.contains("  frame "), "--frames 0: {no_frames}");
    assert!(!no_frames.contains("edges at 1/"), "--frames 0: {no_frames}");
}

/// `bench train --stereo` times both eyes: the header names them (and the rounds, seconds and
/// checkpoint interval given).
#[test]
fn bench_train_stereo() {
    if !have_vulkan("flags_run") {
        return;
    }
    let args = [
        "train",
        "--seconds",
        "0.5",
        "--rounds",
        "1",
        "--size",
        "48x32",
        "--every",
        "5",
    ];
    let mut stereo = args.to_vec();
    stereo.push("--stereo");
    let out = bench(&stereo);
    let header = out.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("netwalk bench train: demo, 2 eyes × 48x32 on "),
        "{out}"
    );
    assert!(
        header.contains("; 1 rounds of 0.5 s per run; a checkpoint every 5 steps"),
        "--rounds/--seconds/--every: {out}"
    );
}

/// A tiny MLP model folder (`tiny-mlp`: 12 → dense 8 → relu → dense 4 → softmax) with random
/// weights, unlike the demo in name and size.
fn tiny_mlp(dir: &Path) -> std::path::PathBuf {
    let folder = dir.join("tiny-mlp");
    std::fs::create_dir_all(&folder).expect("model folder");
    let model = json!({"format": "netwalk-model/1", "name": "tiny-mlp",
        "input": {"name": "input", "shape": [12]}, "weights": "weights.safetensors",
        "layers": [{"name": "fc1", "op": "dense", "out_features": 8}, {"name": "relu1", "op": "relu"},
                   {"name": "fc2", "op": "dense", "out_features": 4}, {"name": "softmax", "op": "softmax"}]});
    std::fs::write(folder.join("model.json"), model.to_string()).expect("write model.json");
    let bytes = |n: usize, k: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| (((i * 37 + k * 11) % 17) as f32 / 8.0 - 1.0).to_le_bytes())
            .collect()
    };
    let tensors = [
        ("fc1.weight", vec![8, 12], bytes(96, 1)),
        ("fc1.bias", vec![8], bytes(8, 2)),
        ("fc2.weight", vec![4, 8], bytes(32, 3)),
        ("fc2.bias", vec![4], bytes(4, 4)),
    ];
    let views: Vec<(&str, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data).expect("tensor");
            (*name, view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &folder.join("weights.safetensors")).expect("write weights");
    folder
}

/// `bench bundle|render|forward MODEL`: the model given (its name, its 12·8 + 8·4 edges), not
/// the demo.
#[test]
fn bench_takes_a_model_path() {
    if !have_vulkan("flags_run") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let model = tiny_mlp(dir.path());
    let model = model.to_str().expect("utf-8 path");
    let bundle = bench(&["bundle", model, "--iters", "1", "--frames", "0"]);
    assert!(
        bundle.starts_with("netwalk bench bundle tiny-mlp on ")
            && bundle.contains(": 128 edges bundled in 2 layer pair(s)"),
        "{bundle}"
    );
    let render = bench(&["render", model, "--frames", "1", "--size", "32x24"]);
    assert!(
        render.starts_with("netwalk bench render tiny-mlp: 32x24 on "),
        "{render}"
    );
    let forward = bench(&["forward", model, "--iters", "1", "--no-ort"]);
    assert!(forward.contains(" tiny-mlp: median "), "{forward}");
}

/// `run --watch DIR` takes the checkpoint files already in DIR and, never scrubbed, follows the
/// newest: a copy of the init checkpoint under another name shows the init checkpoint's conv1
/// maps (as `snapshot --checkpoint 0`), not the final weights'. `run --train` starts a new
/// timeline from a fresh init and follows it: conv1's maps are not the final weights' either.
/// (Both arrive from threads within the first frames; 60 and 90 frames leave them a margin.)
#[test]
fn run_watch_and_train_show_in_the_window() {
    if !have_vulkan("flags_run") {
        return;
    }
    let Some(x) = Xvfb::start("run --watch/--train test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let model = netwalk::nn::Model::load(&netwalk::nn::demo::demo_dir().expect("demo")).expect("demo");
    let watched = dir.path().join("watched");
    std::fs::create_dir(&watched).expect("watch folder");
    std::fs::copy(&model.checkpoints[0].weights, watched.join("late.safetensors")).expect("copy init");
    let watched = watched.to_str().expect("utf-8 path");

    let default = window_shot(&x.display, dir.path(), "default.png", &[]);
    // The checkpoints arrive from background threads (the watch polls every 200 ms; training
    // publishes every 25 steps): enough frames that they are in on a loaded 2-core machine too
    // (about 5 and 8 s at this size on lavapipe idle; a watched checkpoint takes ~0.3 s).
    let watch = window_shot(
        &x.display,
        dir.path(),
        "watch.png",
        &["--frames", "600", "--watch", watched],
    );
    let train = window_shot(&x.display, dir.path(), "train.png", &["--frames", "900", "--train"]);
    let snap_init = snapshot(dir.path(), "snap-init.png", &["--checkpoint", "0"]);

    let app = demo_app(0, scene::Stage::default());
    let camera = app.overview(W as f32 / H as f32);
    let conv1 = screen_rect(&camera, &app.placements()[1]);
    let moved = region_diff(&default, &watch, conv1);
    assert!(moved > 2.0, "--watch changed conv1's maps by only {moved:.2}");
    let same = region_diff(&watch, &snap_init, conv1);
    assert!(
        same < 0.5,
        "conv1 with the watched init copy differs from snapshot --checkpoint 0's by {same:.2}"
    );
    let moved = region_diff(&default, &train, conv1);
    assert!(moved > 2.0, "--train changed conv1's maps by only {moved:.2}");
}

/// Sample `i` of the demo as a 28×28 grey PNG at `path`.
fn sample_png(path: &Path, i: usize) {
    let model = netwalk::nn::Model::load(&netwalk::nn::demo::demo_dir().expect("demo")).expect("demo");
    let samples = netwalk::nn::Samples::load(&model, model.samples.as_ref().expect("samples")).expect("samples");
    let pixels: Vec<u8> = samples.image(i).iter().map(|v| (v * 255.0).round() as u8).collect();
    let file = std::fs::File::create(path).expect("create png");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), 28, 28);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .expect("png header")
        .write_image_data(&pixels)
        .expect("png data");
}

/// How many pixels differ between two pictures of the same size.
fn pixels_differing(a: &RgbaImage, b: &RgbaImage) -> usize {
    assert_eq!((a.width, a.height), (b.width, b.height));
    (0..a.height)
        .flat_map(|y| (0..a.width).map(move |x| (x, y)))
        .filter(|&(x, y)| a.pixel(x, y) != b.pixel(x, y))
        .count()
}

/// `run --input FILE`, `run --inputs DIR` and `run --classes FILE` in the window: the file's
/// picture on the input block (as `snapshot --sample` of the same digit shows it), the folder's
/// first image there, and the class names on the output bars (`snapshot --classes` likewise).
#[test]
fn run_input_inputs_and_classes_show_in_the_window() {
    if !have_vulkan("flags_run") {
        return;
    }
    let Some(x) = Xvfb::start("run --input/--inputs/--classes test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let digit = dir.path().join("three.png");
    sample_png(&digit, 3);
    let folder = dir.path().join("digits");
    std::fs::create_dir_all(folder.join("3")).expect("class folder");
    sample_png(&folder.join("3").join("a.png"), 3);
    let classes = dir.path().join("classes.txt");
    let names: Vec<String> = (0..10).map(|k| format!("class number {k}")).collect();
    std::fs::write(&classes, names.join("\n") + "\n").expect("classes file");
    let (digit, folder, classes) = (
        digit.to_str().expect("utf-8"),
        folder.to_str().expect("utf-8"),
        classes.to_str().expect("utf-8"),
    );

    let default = window_shot(&x.display, dir.path(), "default.png", &[]);
    let input = window_shot(&x.display, dir.path(), "input.png", &["--input", digit]);
    let inputs = window_shot(&x.display, dir.path(), "inputs.png", &["--inputs", folder]);
    let named = window_shot(&x.display, dir.path(), "classes.png", &["--classes", classes]);
    let snap3 = snapshot(dir.path(), "snap3.png", &["--sample", "3"]);
    let snap_default = snapshot(dir.path(), "snap.png", &[]);
    let snap_named = snapshot(dir.path(), "snap-classes.png", &["--classes", classes]);

    let app = demo_app(0, scene::Stage::default());
    let camera = app.overview(W as f32 / H as f32);
    let rect = screen_rect(&camera, &app.placements()[0]);
    for (flag, shot) in [("--input", &input), ("--inputs", &inputs)] {
        let moved = region_diff(&default, shot, rect);
        assert!(moved > 10.0, "run {flag} changed the input picture by only {moved:.2}");
        let same = region_diff(shot, &snap3, rect);
        assert!(
            same < 1.0,
            "run {flag}'s input picture differs from sample 3's by {same:.2}"
        );
    }
    // Other labels under the bars; the input and the network stay as they were.
    let relabelled = pixels_differing(&default, &named);
    assert!(relabelled > 50, "run --classes changed only {relabelled} pixels");
    assert!(region_diff(&default, &named, rect) < 1.0, "--classes changed the input");
    let relabelled = pixels_differing(&snap_default, &snap_named);
    assert!(relabelled > 50, "snapshot --classes changed only {relabelled} pixels");
}

/// `replay --inputs DIR` starts on the folder's first image (its prediction's score is the one of
/// `replay --input` of that image, not the model's sample 0's); `eval --classes FILE` maps the
/// folder names to the file's classes (without it those names are unknown: an error).
#[test]
fn replay_inputs_and_eval_classes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("named");
    std::fs::create_dir_all(folder.join("digit three")).expect("class folder");
    std::fs::create_dir_all(folder.join("digit seven")).expect("class folder");
    sample_png(&folder.join("digit seven").join("a.png"), 7);
    sample_png(&folder.join("digit three").join("a.png"), 3);
    let first = folder.join("digit seven").join("a.png");
    let classes = dir.path().join("classes.txt");
    let words = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let names: Vec<String> = words.iter().map(|w| format!("digit {w}")).collect();
    std::fs::write(&classes, names.join("\n") + "\n").expect("classes file");
    let (folder_s, classes_s) = (folder.to_str().expect("utf-8"), classes.to_str().expect("utf-8"));

    let script = dir.path().join("idle.json");
    std::fs::write(&script, r#"{"events": [{"t": 0.1, "hand": "right", "select": false}]}"#).expect("script");
    let score = |args: &[&str]| -> f64 {
        let state = dir.path().join("state.json");
        ok(netwalk()
            .args(["replay", "--script"])
            .arg(&script)
            .arg("--state-out")
            .arg(&state)
            .args(args));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("state JSON");
        v["prediction"]["score"].as_f64().expect("a prediction score")
    };
    let from_folder = score(&["--inputs", folder_s, "--classes", classes_s]);
    let from_file = score(&["--input", first.to_str().expect("utf-8")]);
    let default = score(&[]);
    assert_eq!(
        from_folder, from_file,
        "replay --inputs starts on the folder's first image"
    );
    assert_ne!(
        from_folder, default,
        "replay --inputs left the model's sample 0 as the input"
    );

    let out = ok(netwalk().args(["eval", "--inputs", folder_s, "--classes", classes_s]));
    assert!(out.contains("accuracy") && out.contains("/2)"), "{out}");
    let o = netwalk()
        .args(["eval", "--inputs", folder_s])
        .output()
        .expect("run netwalk");
    assert!(
        !o.status.success(),
        "folder names that are no class of the demo must be refused"
    );
}

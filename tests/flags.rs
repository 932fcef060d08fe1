//! The README's command-line flags, one test per group, each asserting what the flag changes (so
//! it fails when the flag stops having its effect): snapshot's framing, sample, stereo, camera,
//! checkpoint and linear layout in the pixels; neuron/activations/info with a checkpoint or an
//! input file; train's batch, learning rate, epochs and data on a tiny set; bench forward's
//! options. Flags other tests already cover are listed in the report of issue 13 (cli.rs,
//! render.rs, replay.rs, window.rs, xr.rs, live.rs). Images are small (320x180) to stay fast.

mod common;

use std::path::Path;

use common::netwalk_ok as ok;

use common::{decode_png, demo_app};
use glam::Vec3;
use netwalk::gfx::{BACKGROUND_SRGB, RgbaImage};
use netwalk::nn::{self, Model, Weights, weights::SafetensorsFile};
use netwalk::scene::{self, LayoutKind};
use netwalk::view::annotate::named_view;

const W: u32 = 320;
const H: u32 = 180;

/// `netwalk snapshot --size 320x180 ARGS` into `dir/name`, decoded.
fn snapshot(dir: &Path, name: &str, args: &[&str]) -> RgbaImage {
    let out = dir.join(name);
    let size = format!("{W}x{H}");
    let mut all = vec!["snapshot", "--size", &size, "--out", out.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    ok(&all);
    decode_png(&out)
}

/// Mean absolute difference of two same-sized images over the colour channels (0..255).
fn mean_diff(a: &RgbaImage, b: &RgbaImage) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let sum: u64 = a
        .pixels
        .chunks_exact(4)
        .zip(b.pixels.chunks_exact(4))
        .map(|(p, q)| (0..3).map(|i| u64::from(p[i].abs_diff(q[i]))).sum::<u64>())
        .sum();
    sum as f64 / (f64::from(a.width) * f64::from(a.height) * 3.0)
}

fn background() -> [u8; 3] {
    common::srgb8(BACKGROUND_SRGB)
}

/// Share of pixels that are not the background colour.
fn lit_share(img: &RgbaImage) -> f64 {
    let bg = background();
    let lit = img
        .pixels
        .chunks_exact(4)
        .filter(|p| (0..3).any(|i| p[i].abs_diff(bg[i]) > 3))
        .count();
    lit as f64 / (f64::from(img.width) * f64::from(img.height))
}

fn demo() -> (Model, Weights, nn::Samples) {
    let model = Model::load(&nn::demo::demo_dir().expect("demo")).expect("demo model");
    let weights = Weights::load(&model).expect("demo weights");
    let samples = nn::Samples::load(&model, model.samples.as_ref().expect("samples")).expect("samples");
    (model, weights, samples)
}

/// Sum of the colour differences of two pixels.
fn pixel_diff(a: [u8; 4], b: [u8; 4]) -> u32 {
    (0..3).map(|i| u32::from(a[i].abs_diff(b[i]))).sum()
}

/// `--view input` frames the input picture, and `--sample N` is the picture shown: where sample
/// `a` has ink and sample `b` none (and the other way round), the two snapshots differ there,
/// at the pixels the input view's camera puts those input pixels.
#[test]
fn snapshot_view_input_shows_the_sample_given() {
    let (_, _, samples) = demo();
    let (a, b) = (0, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let img_a = snapshot(dir.path(), "a.png", &["--view", "input", "--sample", &a.to_string()]);
    let img_b = snapshot(dir.path(), "b.png", &["--view", "input", "--sample", &b.to_string()]);
    // The input block stands where it stands for every sample; its camera as `snapshot` makes it.
    let placements = demo_app(a, scene::Stage::default()).placements();
    let camera = named_view(&placements, "input", W as f32 / H as f32).expect("input view");
    let tile = &placements[0].tiles[0];
    let (sa, sb) = (samples.image(a), samples.image(b));
    // Ink (near the image's maximum) in one sample, blank (near its minimum) in the other; at
    // 320x180 an input pixel is several pixels wide, so its projected centre is well inside it.
    let level = |img: &[f32], v: f32| {
        let (lo, hi) = img.iter().fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        (v - lo) / (hi - lo)
    };
    let mut checked = 0;
    for y in 0..28 {
        for x in 0..28 {
            let (va, vb) = (level(sa, sa[y * 28 + x]), level(sb, sb[y * 28 + x]));
            if !((va > 0.9 && vb < 0.05) || (va < 0.05 && vb > 0.9)) {
                continue;
            }
            let u = (x as f32 + 0.5) / tile.w as f32 - 0.5;
            let v = 0.5 - (y as f32 + 0.5) / tile.h as f32;
            let p = tile.world_from_tile.transform_point3(Vec3::new(u, v, 0.0));
            let at = camera.project(p, W, H).expect("in front of the input camera");
            assert!(
                at.x >= 0.0 && at.y >= 0.0 && at.x < W as f32 && at.y < H as f32,
                "input pixel ({y}, {x}) out of the input view at {at}"
            );
            let (pa, pb) = (
                img_a.pixel(at.x as u32, at.y as u32),
                img_b.pixel(at.x as u32, at.y as u32),
            );
            assert!(
                pixel_diff(pa, pb) > 90,
                "input pixel ({y}, {x}) at {at}: sample {a} {pa:?} vs sample {b} {pb:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} input pixels to compare");
}

/// `--stereo`: both eyes side by side, and they are not the same picture (64 mm apart).
#[test]
fn snapshot_stereo_writes_two_different_eyes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let img = snapshot(dir.path(), "s.png", &["--stereo"]);
    assert_eq!((img.width, img.height), (2 * W, H));
    let img_ref = &img;
    let eye = |i: u32| RgbaImage {
        width: W,
        height: H,
        pixels: (0..H)
            .flat_map(|y| (i * W..(i + 1) * W).flat_map(move |x| img_ref.pixel(x, y)))
            .collect(),
    };
    let (left, right) = (eye(0), eye(1));
    assert!(
        lit_share(&left) > 0.02 && lit_share(&right) > 0.02,
        "both eyes show the network"
    );
    assert!(mean_diff(&left, &right) > 0.5, "the eyes are the same picture");
}

/// `--eye/--look` place the camera: looking at the network shows it, and turning round or moving
/// the eye changes the picture.
#[test]
fn snapshot_eye_and_look_place_the_camera() {
    let dir = tempfile::tempdir().expect("temp dir");
    let front = snapshot(dir.path(), "f.png", &["--eye", "0,1.4,0", "--look", "0,1.4,-3"]);
    let back = snapshot(dir.path(), "b.png", &["--eye", "0,1.4,0", "--look", "0,1.4,3"]);
    let aside = snapshot(dir.path(), "a.png", &["--eye", "0.6,1.4,0", "--look", "0,1.4,-3"]);
    assert!(
        lit_share(&front) > 0.05,
        "looking at the network: {:.3}",
        lit_share(&front)
    );
    assert!(mean_diff(&front, &back) > 2.0, "turning round changed nothing");
    assert!(mean_diff(&front, &aside) > 2.0, "moving the eye changed nothing");
}

/// `--checkpoint 0` (the untrained weights) shows other activations than the final weights:
/// the output view's bars differ.
#[test]
fn snapshot_checkpoint_shows_that_checkpoints_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let last = snapshot(dir.path(), "last.png", &["--view", "output"]);
    let init = snapshot(dir.path(), "init.png", &["--view", "output", "--checkpoint", "0"]);
    assert!(
        mean_diff(&last, &init) > 1.0,
        "mean difference {}",
        mean_diff(&last, &init)
    );
}

/// `--linear` lays every block's tiles out in one row, as the `layout` button does: in the
/// placements the renderer reads, and in the picture, which is not the grid one.
#[test]
fn snapshot_linear_lays_the_tiles_out_in_one_row() {
    let mut app = demo_app(0, scene::Stage::default());
    let grid = app.placements();
    app.all_linear();
    let linear = app.placements();
    let mut multi_row_grids = 0;
    for (g, l) in grid.iter().zip(&linear) {
        if l.tiles.len() < 2 {
            continue;
        }
        let rows = |p: &scene::LayerPlacement| {
            let mut ys: Vec<f32> = p.tiles.iter().map(|t| t.world_from_tile.w_axis.y).collect();
            ys.sort_by(f32::total_cmp);
            ys.dedup_by(|a, b| (*a - *b).abs() < 1e-4);
            ys.len()
        };
        assert_eq!(rows(l), 1, "{}: {} rows of tiles after --linear", l.name, rows(l));
        assert!(
            l.size.x > l.size.y,
            "{}: linear block {} wide, {} tall",
            l.name,
            l.size.x,
            l.size.y
        );
        multi_row_grids += usize::from(rows(g) > 1);
    }
    assert!(multi_row_grids > 0, "no block had a grid of several rows to begin with");
    // Every block is linear in the scene's own state too.
    assert!(
        (0..app.scene.blocks.len()).all(|k| app.scene_draw().blocks[k].layout == LayoutKind::Linear),
        "a block is not linear"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let grid_img = snapshot(dir.path(), "grid.png", &[]);
    let linear_img = snapshot(dir.path(), "linear.png", &["--linear"]);
    let d = mean_diff(&grid_img, &linear_img);
    assert!(d > 2.0, "--linear renders the grid picture (mean difference {d})");
    // The first conv block's tiles, where the linear overview puts them, are not background.
    let camera = app.overview(W as f32 / H as f32);
    let conv = linear.iter().find(|p| p.tiles.len() > 1).expect("a conv block");
    let bg = background();
    for t in &conv.tiles {
        let c = t.world_from_tile.transform_point3(Vec3::ZERO);
        let at = camera.project(c, W, H).expect("in front");
        let px = linear_img.pixel(at.x as u32, at.y as u32);
        assert!(
            (0..3).any(|i| px[i].abs_diff(bg[i]) > 3),
            "tile {} at {at} is background",
            t.channel
        );
    }
}

/// `neuron --top K` keeps the K strongest of the inputs `--top 0` lists (all), in the same
/// order; `--checkpoint` explains the neuron under that checkpoint's weights; `--input FILE` (a
/// PNG of a sample) gives what `--sample` gives.
#[test]
fn neuron_top_checkpoint_and_input() {
    let args = ["neuron", "--sample", "3", "--layer", "conv2", "--index", "2,7,7"];
    let json = |extra: &[&str]| -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend_from_slice(extra);
        serde_json::from_str(&ok(&a)).expect("neuron JSON")
    };
    let all = json(&["--top", "0"]);
    let top5 = json(&["--top", "5"]);
    let inputs = top5["inputs"].as_array().expect("inputs");
    assert_eq!(inputs.len(), 5, "--top 5 gives 5 inputs");
    assert_eq!(top5["input_count"], 72);
    assert_eq!(inputs[..], all["inputs"].as_array().expect("inputs")[..5]);
    let top7 = json(&["--top", "7"]);
    assert_eq!(top7["inputs"].as_array().expect("inputs").len(), 7);

    let init = json(&["--top", "5", "--checkpoint", "0"]);
    let (a, b) = (
        top5["pre_activation"].as_f64().expect("f64"),
        init["pre_activation"].as_f64().expect("f64"),
    );
    assert!((a - b).abs() > 1e-3, "--checkpoint 0 gives the same pre-activation {a}");

    // Sample 3 as a PNG: the same neuron, the same numbers.
    let (_, _, samples) = demo();
    let dir = tempfile::tempdir().expect("temp dir");
    let png = dir.path().join("three.png");
    let grey: Vec<u8> = samples.image(3).iter().map(|v| (v * 255.0).round() as u8).collect();
    let mut enc = png::Encoder::new(std::fs::File::create(&png).expect("png"), 28, 28);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().expect("png header");
    writer.write_image_data(&grey).expect("png data");
    writer.finish().expect("png end");
    let mut a = args.to_vec();
    a[1] = "--input";
    a[2] = png.to_str().expect("utf-8");
    a.extend_from_slice(&["--top", "5"]);
    let from_png: serde_json::Value = serde_json::from_str(&ok(&a)).expect("neuron JSON");
    assert_eq!(from_png, top5);
}

/// `activations --checkpoint 0` writes the untrained weights' activations; `info --checkpoint`
/// names the checkpoint it would use.
#[test]
fn activations_and_info_take_a_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (last, init) = (dir.path().join("last.safetensors"), dir.path().join("init.safetensors"));
    ok(&["activations", "--sample", "0", "--out", last.to_str().expect("utf-8")]);
    ok(&[
        "activations",
        "--sample",
        "0",
        "--checkpoint",
        "0",
        "--out",
        init.to_str().expect("utf-8"),
    ]);
    let fc2 = |p: &Path| -> Vec<u8> {
        let bytes = std::fs::read(p).expect("read");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        st.tensor("fc2").expect("fc2").data().to_vec()
    };
    assert_ne!(
        fc2(&last),
        fc2(&init),
        "--checkpoint 0 wrote the final weights' activations"
    );

    let plain = ok(&["info"]);
    let with = ok(&["info", "--checkpoint", "0"]);
    assert!(!plain.contains("using checkpoint"), "{plain}");
    let (model, _, _) = demo();
    let line = format!("using checkpoint `{}`", model.checkpoints[0].label);
    assert!(with.contains(&line), "no `{line}` in {with}");
}

/// A tiny training set (the first `n` of the bundled training digits) as a samples file.
fn tiny_data(dir: &Path, n: usize) -> std::path::PathBuf {
    let (model, _, _) = demo();
    let full = nn::Samples::load(&model, &nn::demo::demo_train_data().expect("train data")).expect("train data");
    let images: Vec<u8> = full.images[..n * 784]
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    let labels: Vec<u8> = full.labels[..n].iter().map(|&l| l as u8).collect();
    let path = dir.join(format!("tiny-{n}.safetensors"));
    safetensors::serialize_to_file(
        [
            (
                "images",
                safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![n, 1, 28, 28], &images)
                    .expect("images"),
            ),
            (
                "labels",
                safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![n], &labels).expect("labels"),
            ),
        ],
        None,
        &path,
    )
    .expect("write tiny set");
    path
}

/// `train --data` (256 digits), `--batch` (32 vs 64: twice the steps per epoch), `--epochs 2`
/// (a checkpoint per epoch), `--lr` (another rate, other weights) and `--out` (where it all goes).
#[test]
fn train_takes_its_data_batch_epochs_and_learning_rate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = tiny_data(dir.path(), 256);
    let run = |name: &str, extra: &[&str]| -> std::path::PathBuf {
        let out = dir.path().join(name);
        let mut args = vec![
            "train",
            "--seed",
            "3",
            "--data",
            data.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        ok(&args);
        out
    };
    let meta = |out: &Path, key: &str| -> String {
        let trained = Model::load(out).expect("trained model");
        let last = trained.checkpoints.last().expect("checkpoints");
        SafetensorsFile::open(&last.weights)
            .expect("checkpoint")
            .metadata()
            .expect("metadata")[key]
            .clone()
    };
    let b32 = run("b32", &["--epochs", "1", "--batch", "32"]);
    let b64 = run("b64", &["--epochs", "1", "--batch", "64"]);
    // 256 samples: 8 steps of 32, 4 of 64 (the full bundled set would be thousands).
    assert_eq!(meta(&b32, "step"), "8");
    assert_eq!(meta(&b64, "step"), "4");
    assert!(b32.join("weights.safetensors").exists() && b32.join("model.json").exists());

    let e2 = run("e2", &["--epochs", "2", "--batch", "64"]);
    let labels: Vec<String> = Model::load(&e2)
        .expect("model")
        .checkpoints
        .iter()
        .map(|c| c.label.clone())
        .collect();
    assert_eq!(labels.last().map(String::as_str), Some("epoch 2"), "{labels:?}");
    assert_eq!(meta(&e2, "step"), "8");

    let lr = run("lr", &["--epochs", "1", "--batch", "64", "--lr", "0.02"]);
    let weights = |out: &Path| std::fs::read(out.join("weights.safetensors")).expect("weights");
    assert_ne!(
        weights(&b64),
        weights(&lr),
        "--lr 0.02 trained the same weights as the default"
    );
}

/// `bench forward --synthetic mnist-cnn --iters 3 --per-layer --no-ort`: that model, 3 timed
/// runs, a per-layer table, and no onnxruntime comparison (which runs, or says why it is
/// skipped, without `--no-ort`).
#[test]
fn bench_forward_options() {
    let out = ok(&[
        "bench",
        "forward",
        "--synthetic",
        "mnist-cnn",
        "--iters",
        "3",
        "--per-layer",
        "--no-ort",
    ]);
    assert!(out.contains(" mnist-cnn: median "), "{out}");
    assert!(out.contains("(3 iters,"), "{out}");
    assert!(out.contains("per layer (mean ms, slowest first):"), "{out}");
    assert!(!out.contains("onnxruntime"), "{out}");
    let plain = ok(&["bench", "forward", "--synthetic", "mnist-cnn", "--iters", "1"]);
    assert!(!plain.contains("per layer"), "{plain}");
    assert!(plain.contains("onnxruntime"), "{plain}");
}

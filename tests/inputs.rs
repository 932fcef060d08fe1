//! The user's own input (issue 14): `--input FILE` of any size and colour depth (checked against
//! the same preprocessing done in numpy), JPEG, `--inputs DIR`, `--classes FILE`, a model with no
//! samples, and bad images.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cli_fails, decode_png, have_vulkan, in_ci, netwalk_ok, os};
use netwalk::cli::{AppInput, NO_INPUT_HINT, build_app};
use netwalk::nn::{self, Model};
use serde_json::{Value, json};

/// The preprocessing of src/nn/image.rs in numpy (float64): channels, PIL/torchvision antialiased
/// bilinear resize to cover H×W, torchvision's centre crop. argv: raw HWC pixels (u1 or <u2), out
/// (f32 CHW), h, w, c, bits, out_h, out_w, out_c.
const NUMPY_REF: &str = r#"
import sys, numpy as np
raw, out = sys.argv[1], sys.argv[2]
h, w, c, bits, oh, ow, oc = map(int, sys.argv[3:])
a = np.fromfile(raw, dtype='<u2' if bits == 16 else 'u1').reshape(h, w, c).astype(np.float64)
a /= 65535.0 if bits == 16 else 255.0
if c == 3 and oc == 1:
    a = (a @ np.array([0.299, 0.587, 0.114]))[:, :, None]
elif c == 1 and oc == 3:
    a = np.repeat(a, 3, axis=2)
if oh * w >= ow * h:
    nw, nh = max(w * oh // h, ow), oh
else:
    nw, nh = ow, max(h * ow // w, oh)
def weights(n_in, n_out):
    scale = n_in / n_out
    ss = max(scale, 1.0)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        ctr = (i + 0.5) * scale
        lo = max(int(np.floor(ctr - ss + 0.5)), 0)
        hi = min(int(np.floor(ctr + ss + 0.5)), n_in)
        j = np.arange(lo, hi)
        k = np.maximum(0.0, 1.0 - np.abs((j - ctr + 0.5) / ss))
        m[i, lo:hi] = k / k.sum()
    return m
if (nw, nh) != (w, h):
    a = np.einsum('yi,ijc,xj->yxc', weights(h, nh), a, weights(w, nw))
top, left = int(round((nh - oh) / 2.0)), int(round((nw - ow) / 2.0))
a = a[top:top + oh, left:left + ow]
np.ascontiguousarray(a.transpose(2, 0, 1)).astype('<f4').tofile(out)
"#;

/// numpy's preprocessing of `pixels` (HWC, `bits` 8 or 16) for a `oc`×`oh`×`ow` input, or `None`
/// (after a note; a failure under CI) when numpy is missing.
fn numpy_reference(
    pixels: &[u16],
    (h, w, c, bits): (usize, usize, usize, u8),
    (oc, oh, ow): (usize, usize, usize),
) -> Option<Vec<f32>> {
    let python = "/usr/bin/python3";
    let has_numpy = Command::new(python)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_numpy {
        assert!(
            !in_ci(),
            "CI needs numpy for the input preprocessing reference (Debian: python3-numpy)"
        );
        eprintln!("SKIPPED (numpy reference): {python} has no numpy");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw: Vec<u8> = if bits == 16 {
        pixels.iter().flat_map(|v| v.to_le_bytes()).collect()
    } else {
        pixels.iter().map(|&v| v as u8).collect()
    };
    std::fs::write(dir.path().join("raw"), raw).unwrap();
    let out = dir.path().join("out");
    let args: Vec<String> = [h, w, c, bits as usize, oh, ow, oc]
        .iter()
        .map(|v| v.to_string())
        .collect();
    let o = Command::new(python)
        .args(["-c", NUMPY_REF])
        .arg(dir.path().join("raw"))
        .arg(&out)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "numpy reference: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

fn write_png(path: &Path, w: u32, h: u32, color: png::ColorType, bits: png::BitDepth, pixels: &[u16]) {
    let mut enc = png::Encoder::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap()), w, h);
    enc.set_color(color);
    enc.set_depth(bits);
    let data: Vec<u8> = if bits == png::BitDepth::Sixteen {
        pixels.iter().flat_map(|v| v.to_be_bytes()).collect()
    } else {
        pixels.iter().map(|&v| v as u8).collect()
    };
    enc.write_header().unwrap().write_image_data(&data).unwrap();
}

/// Smooth-ish test pixels with some detail, deterministic.
fn pattern(n: usize, max: u32) -> Vec<u16> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761) >> 7) % (max + 1)) as u16)
        .collect()
}

fn demo() -> Model {
    Model::load(&nn::demo::demo_dir().unwrap()).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `netwalk ARGS`: its stdout and stderr (it must succeed).
fn netwalk_out(args: &[&std::ffi::OsStr]) -> (String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_netwalk")).args(args).output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "netwalk {args:?} failed: {err}");
    (out, err)
}

/// A 45×37 RGB 8-bit PNG and a 50×31 16-bit grey PNG through `--input` on the demo (1×28×28):
/// the values equal numpy's preprocessing; the notice says what was done.
#[test]
fn input_png_of_another_size_and_depth_matches_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let model = demo();
    let cases = [
        (
            "rgb8.png",
            45,
            37,
            3,
            8u8,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            255,
        ),
        (
            "grey16.png",
            50,
            31,
            1,
            16,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            65535,
        ),
        (
            "small-rgb.png",
            20,
            14,
            3,
            8,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            255,
        ),
    ];
    for (name, w, h, c, bits, color, depth, max) in cases {
        let p = dir.path().join(name);
        let pixels = pattern(w * h * c, max);
        write_png(&p, w as u32, h as u32, color, depth, &pixels);
        let (values, notice) = nn::load_input_noted(&model, &p).unwrap();
        let notice = notice.expect("a notice for a resized image");
        assert!(
            notice.contains(name) && notice.contains(&format!("{w}x{h}")),
            "{notice}"
        );
        assert!(notice.contains("centre-cropped to 28x28"), "{notice}");
        assert_eq!(notice.contains(", grey"), c == 3, "{notice}");
        // The CLI takes the same path and prints the notice.
        let out = dir.path().join("acts.safetensors");
        let (_, err) = netwalk_out(&[
            os("activations"),
            os("--input"),
            p.as_os_str(),
            os("--out"),
            out.as_os_str(),
        ]);
        assert!(err.contains(&notice), "{err}");
        let Some(want) = numpy_reference(&pixels, (h, w, c, bits), (1, 28, 28)) else {
            return;
        };
        let d = max_diff(&values, &want);
        assert!(d <= 1e-5, "{name}: max |netwalk - numpy| = {d}");
    }
}

/// A JPEG (encoded here, quality 100): decoded, converted to grey and resized like its pixels
/// in numpy, within JPEG's loss.
#[test]
fn input_jpeg_is_decoded_and_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let model = demo();
    let (w, h) = (40usize, 30usize);
    // A smooth picture (JPEG keeps it well): gradients in each channel.
    let pixels: Vec<u16> = (0..h * w * 3)
        .map(|i| {
            let (y, x, c) = (i / (3 * w), (i / 3) % w, i % 3);
            ((x * 6 + y * 2 * c + 20 * c) % 256) as u16
        })
        .collect();
    let p = dir.path().join("photo.jpg");
    let bytes: Vec<u8> = pixels.iter().map(|&v| v as u8).collect();
    jpeg_encoder::Encoder::new_file(&p, 100)
        .unwrap()
        .encode(&bytes, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let (values, notice) = nn::load_input_noted(&model, &p).unwrap();
    assert!(
        notice
            .unwrap()
            .contains("photo.jpg 40x30 RGB → resized to 37x28, centre-cropped to 28x28, grey")
    );
    let Some(want) = numpy_reference(&pixels, (h, w, 3, 8), (1, 28, 28)) else {
        return;
    };
    let d = max_diff(&values, &want);
    assert!(d <= 0.02, "max |decoded JPEG - original| after preprocessing = {d}");
}

/// `--inputs DIR` folder of two class subfolders of demo digits written as PNGs; the first image.
fn digit_folder(dir: &Path) -> (PathBuf, PathBuf, usize) {
    let model = demo();
    let s = nn::Samples::load(&model, model.samples.as_ref().unwrap()).unwrap();
    let root = dir.join("digits");
    let labels = [
        s.labels[1],
        (0..s.count).map(|i| s.labels[i]).find(|&l| l != s.labels[1]).unwrap(),
    ];
    let mut n = 0;
    let mut first = None;
    for (i, &l) in s.labels.iter().enumerate().skip(1) {
        if !labels.contains(&l) || n >= 7 {
            continue;
        }
        let sub = root.join(l.to_string());
        std::fs::create_dir_all(&sub).unwrap();
        let px: Vec<u16> = s.image(i).iter().map(|v| (v * 255.0).round() as u16).collect();
        let f = sub.join(format!("img{i:03}.png"));
        write_png(&f, 28, 28, png::ColorType::Grayscale, png::BitDepth::Eight, &px);
        n += 1;
    }
    // The first image: the smallest label's folder, its first file by name.
    let mut subs: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    subs.sort();
    let mut files: Vec<_> = std::fs::read_dir(&subs[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    first.get_or_insert(files[0].clone());
    (root, first.unwrap(), n)
}

#[test]
fn eval_inputs_reports_the_folders_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _, n) = digit_folder(dir.path());
    let out = netwalk_ok(&["eval", "--inputs", root.to_str().unwrap()]);
    let model = demo();
    let weights = nn::Weights::load(&model).unwrap();
    let found = nn::Samples::from_folder(&model, &root).unwrap();
    assert_eq!(found.samples.count, n);
    let (k, total) = nn::train::evaluate(&model, &weights, &found.samples).unwrap();
    let want = format!("accuracy {:.4} ({k}/{total})", k as f64 / total as f64);
    assert!(out.contains(&want), "want {want}, got {out}");
    assert_eq!(total, n);
}

fn snapshot(dir: &Path, name: &str, args: &[&str]) -> netwalk::gfx::RgbaImage {
    let out = dir.join(name);
    let mut all = vec![
        "snapshot",
        "--size",
        "160x120",
        "--view",
        "input",
        "--out",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    netwalk_ok(&all);
    decode_png(&out)
}

/// `snapshot --input FILE` shows the file (as `--sample N` of the same digit does), and
/// `--inputs DIR` starts on its first image.
#[test]
fn snapshot_input_and_inputs_show_the_image() {
    if !have_vulkan("inputs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = demo();
    let s = nn::Samples::load(&model, model.samples.as_ref().unwrap()).unwrap();
    let png3 = dir.path().join("three.png");
    let px: Vec<u16> = s.image(3).iter().map(|v| (v * 255.0).round() as u16).collect();
    write_png(&png3, 28, 28, png::ColorType::Grayscale, png::BitDepth::Eight, &px);
    let file = snapshot(dir.path(), "file.png", &["--input", png3.to_str().unwrap()]);
    let sample3 = snapshot(dir.path(), "s3.png", &["--sample", "3"]);
    let sample0 = snapshot(dir.path(), "s0.png", &[]);
    assert!(file.pixels == sample3.pixels, "--input shows sample 3's digit");
    assert!(file.pixels != sample0.pixels, "--input changes the input block");

    let (root, first, _) = digit_folder(dir.path());
    let folder = snapshot(dir.path(), "dir.png", &["--inputs", root.to_str().unwrap()]);
    let first_shot = snapshot(dir.path(), "first.png", &["--input", first.to_str().unwrap()]);
    assert!(folder.pixels == first_shot.pixels, "--inputs starts on its first image");
    assert!(folder.pixels != sample0.pixels, "--inputs changes the input");
}

fn replay_state(dir: &Path, args: &[&str]) -> Value {
    let script = dir.join("script.json");
    std::fs::write(&script, json!({"events": [{"t": 0.05, "hand": "right"}]}).to_string()).unwrap();
    let state = dir.join("state.json");
    let mut all = vec![
        "replay",
        "--script",
        script.to_str().unwrap(),
        "--state-out",
        state.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    netwalk_ok(&all);
    serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap()
}

/// `replay --input`: the state's prediction is the network's on the file; `--classes` names it.
#[test]
fn replay_input_and_classes() {
    let dir = tempfile::tempdir().unwrap();
    let model = demo();
    let weights = nn::Weights::load(&model).unwrap();
    let s = nn::Samples::load(&model, model.samples.as_ref().unwrap()).unwrap();
    // A sample the demo predicts differently from sample 0.
    let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    let pred = |i: usize| {
        argmax(
            nn::forward(&model, &weights, s.image(i))
                .unwrap()
                .layers
                .last()
                .unwrap(),
        )
    };
    let i = (1..s.count).find(|&i| pred(i) != pred(0)).unwrap();
    let p = dir.path().join("digit.png");
    let px: Vec<u16> = s.image(i).iter().map(|v| (v * 255.0).round() as u16).collect();
    write_png(&p, 28, 28, png::ColorType::Grayscale, png::BitDepth::Eight, &px);
    let state = replay_state(dir.path(), &["--input", p.to_str().unwrap()]);
    assert_eq!(state["prediction"]["index"], json!(pred(i)), "{}", state["prediction"]);

    let names: Vec<String> = (0..10).map(|k| format!("digit-{k}")).collect();
    let classes = dir.path().join("classes.txt");
    std::fs::write(&classes, names.join("\n") + "\n").unwrap();
    let state = replay_state(
        dir.path(),
        &["--input", p.to_str().unwrap(), "--classes", classes.to_str().unwrap()],
    );
    assert_eq!(state["prediction"]["class"], json!(names[pred(i)]));
    let out = netwalk_ok(&[
        "neuron",
        "--sample",
        "0",
        "--layer",
        "softmax",
        "--index",
        "4",
        "--classes",
        classes.to_str().unwrap(),
    ]);
    assert!(out.contains("\"class\": \"digit-4\""), "{out}");
}

/// A copy of the demo's folder whose model.json lists no samples.
fn demo_without_samples(dir: &Path) -> PathBuf {
    let src = nn::demo::demo_dir().unwrap();
    let dst = dir.join("no-samples");
    std::fs::create_dir_all(&dst).unwrap();
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(src.join("model.json")).unwrap()).unwrap();
    m.as_object_mut().unwrap().remove("samples");
    m.as_object_mut().unwrap().remove("checkpoints");
    std::fs::write(dst.join("model.json"), m.to_string()).unwrap();
    let weights = m["weights"].as_str().unwrap();
    std::fs::copy(src.join(weights), dst.join(weights)).unwrap();
    dst
}

/// No samples and no input: a black input and the hint under the input block, never an error.
#[test]
fn no_samples_no_input_opens_on_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let folder = demo_without_samples(dir.path());
    let mut app = build_app(Some(folder.clone()), &AppInput::default(), None).unwrap();
    assert_eq!(app.hint.as_deref(), Some(NO_INPUT_HINT));
    let with = app.frame(glam::Vec3::new(0.0, 1.4, 0.0)).1.glyphs.len();
    app.hint = None;
    let without = app.frame(glam::Vec3::new(0.0, 1.4, 0.0)).1.glyphs.len();
    let letters = NO_INPUT_HINT.chars().filter(|c| !c.is_whitespace()).count();
    assert_eq!(with - without, letters, "the hint's glyphs");
    // With an input there is no hint.
    let s = dir.path().join("x.png");
    write_png(
        &s,
        28,
        28,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &pattern(784, 255),
    );
    let input = AppInput {
        input: Some(s),
        ..AppInput::default()
    };
    assert!(build_app(Some(folder.clone()), &input, None).unwrap().hint.is_none());
    if have_vulkan("inputs") {
        let out = dir.path().join("shot.png");
        netwalk_ok(&[
            "snapshot",
            folder.to_str().unwrap(),
            "--size",
            "64x48",
            "--out",
            out.to_str().unwrap(),
        ]);
    }
}

#[test]
fn bad_images_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.safetensors");
    let text = dir.path().join("x.png");
    std::fs::write(&text, "not an image").unwrap();
    let acts = |p: &Path| {
        vec![
            os("activations"),
            os("--input"),
            p.as_os_str().to_owned().leak(),
            os("--out"),
            out.as_os_str().to_owned().leak(),
        ]
    };
    cli_fails(&acts(&text), &["x.png", "PNG"]);
    let jpg = dir.path().join("cut.jpg");
    let px: Vec<u8> = (0..64 * 48 * 3).map(|i| (i % 251) as u8).collect();
    jpeg_encoder::Encoder::new_file(&jpg, 90)
        .unwrap()
        .encode(&px, 64, 48, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let bytes = std::fs::read(&jpg).unwrap();
    std::fs::write(&jpg, &bytes[..bytes.len() / 2]).unwrap();
    cli_fails(&acts(&jpg), &["cut.jpg", "JPEG"]);
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    cli_fails(
        &[os("eval"), os("--inputs"), empty.as_os_str()],
        &["empty", "no class subfolders"],
    );
    std::fs::create_dir_all(empty.join("3")).unwrap();
    cli_fails(&[os("eval"), os("--inputs"), empty.as_os_str()], &["3", "no images"]);
    let zero = dir.path().join("zero.png");
    std::fs::write(&zero, "").unwrap();
    cli_fails(&acts(&zero), &["zero.png"]);
    // --input and --sample conflict.
    let (code, _) = common::netwalk_stderr(&[
        os("snapshot"),
        os("--out"),
        os("x.png"),
        os("--input"),
        text.as_os_str(),
        os("--sample"),
        os("1"),
    ]);
    assert_eq!(code, 2);
}

//! The binary: `error: <message>` on one stderr line, exit code 1, nothing half-written.

use super::fixtures::*;
use crate::common::{cli_fails, netwalk_stderr as netwalk, os};

#[test]
fn cli_malformed_json() {
    let fx = Fx::new();
    let p = fx.write("model.json", "{\"format\": ");
    let ps = p.display().to_string();
    cli_fails(&[os("info"), p.as_os_str()], &[&ps, "malformed JSON"]);
    // The folder form names the model.json inside it.
    cli_fails(&[os("info"), fx.dir.path().as_os_str()], &[&ps]);
}

#[test]
fn cli_absurd_shape() {
    let fx = Fx::new();
    fx.model_layers(
        "[3, 1000, 1000]",
        r#"[{"name": "huge", "op": "conv2d", "out_channels": 1000000, "kernel": 3}]"#,
    )
    .unwrap_err();
    let p = fx.path("model.json");
    let ps = p.display().to_string();
    cli_fails(&[os("info"), p.as_os_str()], &[&ps, "`huge`"]);
}

#[test]
fn cli_missing_tensor_writes_nothing() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t.retain(|(n, ..)| n != "fc.weight");
    let w = fx.write("weights.safetensors", st_bytes(&t));
    let input = fx.write("in.png", png_bytes(4, 4, png::ColorType::Grayscale));
    let out = fx.path("out.safetensors");
    let ws = w.display().to_string();
    cli_fails(
        &[
            os("activations"),
            fx.dir.path().as_os_str(),
            os("--input"),
            input.as_os_str(),
            os("--out"),
            out.as_os_str(),
        ],
        &[&ws, "`fc.weight`", "`fc`"],
    );
    assert!(!out.exists(), "activations left an output file behind");
    cli_fails(&[os("eval"), fx.dir.path().as_os_str()], &[&ws, "`fc.weight`"]);
}

#[test]
fn cli_truncated_safetensors_writes_nothing() {
    let fx = Fx::good();
    let bytes = st_bytes(&good_tensors());
    let w = fx.write("weights.safetensors", &bytes[..bytes.len() - 10]);
    let input = fx.write("in.png", png_bytes(4, 4, png::ColorType::Grayscale));
    let out = fx.path("out.safetensors");
    let ws = w.display().to_string();
    cli_fails(
        &[
            os("activations"),
            fx.path("model.json").as_os_str(),
            os("--input"),
            input.as_os_str(),
            os("--out"),
            out.as_os_str(),
        ],
        &[&ws, "truncated", "tensor `"],
    );
    assert!(!out.exists(), "activations left an output file behind");
}

#[test]
fn cli_absurd_input_image_size_writes_nothing() {
    let fx = Fx::good();
    let input = fx.write("in.png", lying_png(100_000, 100_000));
    let out = fx.path("out.safetensors");
    let is = input.display().to_string();
    cli_fails(
        &[
            os("activations"),
            fx.dir.path().as_os_str(),
            os("--input"),
            input.as_os_str(),
            os("--out"),
            out.as_os_str(),
        ],
        &[&is, "100000x100000", "4x4"],
    );
    assert!(!out.exists(), "activations left an output file behind");
}

#[test]
fn cli_good_model_succeeds() {
    // Guards the tests above against passing because the binary fails on everything.
    let fx = Fx::good();
    let input = fx.write("in.png", png_bytes(4, 4, png::ColorType::Grayscale));
    let out = fx.path("out.safetensors");
    let (code, stderr) = netwalk(&[os("info"), fx.dir.path().as_os_str()]);
    assert_eq!(code, 0, "info failed: {stderr}");
    let (code, stderr) = netwalk(&[
        os("activations"),
        fx.dir.path().as_os_str(),
        os("--input"),
        input.as_os_str(),
        os("--out"),
        out.as_os_str(),
    ]);
    assert_eq!(code, 0, "activations failed: {stderr}");
    assert!(out.exists());
}

#[test]
fn cli_missing_model_file_says_why_once() {
    // NnError::Io's message already ends with the OS error; printing the error chain must not
    // repeat it ("cannot read: No such file ... (os error 2): No such file ... (os error 2)").
    let fx = Fx::new();
    let p = fx.path("nope.json");
    let ps = p.display().to_string();
    cli_fails(&[os("info"), p.as_os_str()], &[&ps, "cannot read"]);
    let (_, stderr) = netwalk(&[os("info"), p.as_os_str()]);
    assert_eq!(stderr.matches("(os error").count(), 1, "cause repeated: {stderr}");
}

//! Bad input, one test per case: every mistake in a model folder (model.json, weights, input images,
//! sample sets) must come back as an `Err` whose message is ONE line naming the file and the
//! layer/tensor involved -- never a panic, never a huge allocation. The second half runs the
//! `netwalk` binary on some of the same cases (exit code 1, one `error: ` line on stderr, no
//! half-written output file), and the last test is the stable stand-in for `cargo fuzz`: thousands
//! of deterministic mutations of the reference fixtures through `netwalk::nn::fuzz::fuzz_load`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netwalk::nn::{self, Model, NnError, Samples, Weights, load_input};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A small valid model: [1, 4, 4] -> conv1 [2, 2, 2] -> relu1 -> flatten [8] -> fc [3] -> softmax.
const GOOD_MODEL: &str = r#"{
  "format": "netwalk-model/1",
  "name": "tiny",
  "input": {"name": "image", "shape": [1, 4, 4], "mean": [0.5], "std": [0.25]},
  "classes": ["a", "b", "c"],
  "weights": "weights.safetensors",
  "samples": "samples.safetensors",
  "layers": [
    {"name": "conv1", "op": "conv2d", "out_channels": 2, "kernel": 3},
    {"name": "relu1", "op": "relu"},
    {"name": "flatten", "op": "flatten"},
    {"name": "fc", "op": "dense", "out_features": 3},
    {"name": "softmax", "op": "softmax"}
  ]
}"#;

/// A tensor for [`st_bytes`]: name, dtype, shape, raw little-endian data.
type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32_tensor(name: &str, shape: &[usize]) -> RawTensor {
    let n: usize = shape.iter().product();
    let vals: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
    (name.to_owned(), Dtype::F32, shape.to_vec(), f32_bytes(&vals))
}

/// The weights of [`GOOD_MODEL`].
fn good_tensors() -> Vec<RawTensor> {
    vec![
        f32_tensor("conv1.weight", &[2, 1, 3, 3]),
        f32_tensor("conv1.bias", &[2]),
        f32_tensor("fc.weight", &[3, 8]),
        f32_tensor("fc.bias", &[3]),
    ]
}

/// Serialize tensors with the `safetensors` crate (always a well-formed file).
fn st_bytes(tensors: &[RawTensor]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::tensor::serialize(views, None).unwrap()
}

/// A safetensors file written by hand: 8-byte LE header length, the header, then `data`.
fn raw_st(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

struct Fx {
    dir: TempDir,
}

impl Fx {
    fn new() -> Fx {
        Fx {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    /// The good model with its weights, ready to be broken one file at a time.
    fn good() -> Fx {
        let fx = Fx::new();
        fx.write("model.json", GOOD_MODEL);
        fx.write("weights.safetensors", st_bytes(&good_tensors()));
        fx
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    fn model(&self) -> Model {
        Model::load(&self.path("model.json")).unwrap()
    }
    /// Replace model.json by GOOD_MODEL with one substring swapped, then load it.
    fn model_with(&self, from: &str, to: &str) -> Result<Model, NnError> {
        assert!(GOOD_MODEL.contains(from), "fixture text `{from}` not in GOOD_MODEL");
        let p = self.write("model.json", GOOD_MODEL.replace(from, to));
        Model::load(&p)
    }
    /// Write the given layers (JSON array text) into a model of the given input shape and load it.
    fn model_layers(&self, input_shape: &str, layers: &str) -> Result<Model, NnError> {
        let text = format!(
            r#"{{"format": "netwalk-model/1", "input": {{"shape": {input_shape}}},
               "weights": "weights.safetensors", "layers": {layers}}}"#
        );
        let p = self.write("model.json", text);
        Model::load(&p)
    }
    fn weights_with(&self, tensors: &[RawTensor]) -> Result<Weights, NnError> {
        let p = self.write("weights.safetensors", st_bytes(tensors));
        Weights::load_file(&self.model(), &p)
    }
}

/// The checks every error must pass: one line, names `file`, and contains every `needle`.
#[track_caller]
fn check_msg(err: &NnError, file: &Path, needles: &[&str]) -> String {
    let msg = err.to_string();
    println!("{msg}"); // shown with --nocapture: the messages a user would see
    assert!(!msg.is_empty(), "empty error message");
    assert!(
        !msg.contains('\n') && !msg.contains('\r'),
        "error is not one line: {msg:?}"
    );
    let f = file.display().to_string();
    assert!(msg.contains(&f), "error does not name the file {f}: {msg}");
    for n in needles {
        assert!(msg.contains(n), "error does not mention {n:?}: {msg}");
    }
    msg
}

#[track_caller]
fn expect_err<T>(r: Result<T, NnError>) -> NnError {
    match r {
        Ok(_) => panic!("expected an error, got Ok({})", std::any::type_name::<T>()),
        Err(e) => e,
    }
}

fn png_bytes(w: u32, h: u32, color: png::ColorType) -> Vec<u8> {
    let channels = match color {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => unreachable!(),
    };
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        let data: Vec<u8> = (0..(w * h) as usize * channels).map(|i| (i * 37) as u8).collect();
        writer.write_image_data(&data).unwrap();
        writer.finish().unwrap();
    }
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose IHDR claims `w` x `h` pixels but which holds (almost) no image data.
fn lying_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], body: &[u8]| {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(body);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    out
}

fn samples_bytes(n: usize, labels: Vec<RawTensor>) -> Vec<u8> {
    let mut t = vec![("images".to_owned(), Dtype::U8, vec![n, 1, 4, 4], vec![128u8; n * 16])];
    t.extend(labels);
    st_bytes(&t)
}

// ---------------------------------------------------------------------------------------------
// The fixture itself is good
// ---------------------------------------------------------------------------------------------

#[test]
fn good_fixture_loads_and_runs() {
    let fx = Fx::good();
    let model = fx.model();
    let weights = Weights::load(&model).unwrap();
    assert!(weights.warnings.is_empty());
    fx.write("in.png", png_bytes(4, 4, png::ColorType::Grayscale));
    let input = load_input(&model, &fx.path("in.png")).unwrap();
    let acts = nn::forward(&model, &weights, &input).unwrap();
    assert_eq!(acts.layers.len(), 5);
    assert!(acts.layers.iter().flatten().all(|v| v.is_finite()));
}

// ---------------------------------------------------------------------------------------------
// model.json
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_json() {
    let fx = Fx::new();
    let p = fx.write("model.json", "{\"format\": \"netwalk-model/1\",\n \"layers\": [\n");
    let e = expect_err(Model::load(&p));
    check_msg(&e, &p, &["malformed JSON", "line"]);
}

#[test]
fn model_json_not_utf8() {
    let fx = Fx::new();
    let p = fx.write("model.json", b"{\"format\": \"\xff\xfe\"}");
    let e = expect_err(Model::load(&p));
    check_msg(&e, &p, &[]);
}

#[test]
fn model_folder_without_model_json() {
    let fx = Fx::new();
    let e = expect_err(Model::load(fx.dir.path()));
    check_msg(&e, &fx.path("model.json"), &["cannot read"]);
}

#[test]
fn top_level_not_an_object() {
    let fx = Fx::new();
    let p = fx.write("model.json", "[1, 2, 3]");
    let e = expect_err(Model::load(&p));
    check_msg(&e, &p, &["top level", "object"]);
}

#[test]
fn wrong_format() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with("netwalk-model/1", "netwalk-model/7"));
    check_msg(
        &e,
        &fx.path("model.json"),
        &["netwalk-model/7", "netwalk-model/1", "format"],
    );
}

#[test]
fn unknown_op() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""op": "relu""#, r#""op": "gelu""#));
    check_msg(&e, &fx.path("model.json"), &["`relu1`", "unknown op", "`gelu`"]);
}

#[test]
fn unknown_attribute() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""out_features": 3"#, r#""out_features": 3, "activation": "relu""#));
    check_msg(
        &e,
        &fx.path("model.json"),
        &["`fc`", "unknown attribute", "`activation`"],
    );
}

#[test]
fn missing_layer_name() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#"{"name": "relu1", "op": "relu"}"#, r#"{"op": "relu"}"#));
    check_msg(&e, &fx.path("model.json"), &["layer 1", "\"name\""]);
}

#[test]
fn duplicate_layer_names() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""name": "flatten""#, r#""name": "relu1""#));
    check_msg(&e, &fx.path("model.json"), &["`relu1`", "duplicate"]);
}

#[test]
fn layer_named_like_the_input() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""name": "relu1""#, r#""name": "image""#));
    check_msg(&e, &fx.path("model.json"), &["`image`", "input"]);
}

#[test]
fn names_with_newlines_stay_on_one_line() {
    // Names and values from the file are printed inside messages: control characters are escaped.
    let fx = Fx::good();
    let e = expect_err(fx.model_with(
        r#""name": "relu1", "op": "relu""#,
        r#""name": "re\nlu1", "op": "ge\nlu""#,
    ));
    check_msg(&e, &fx.path("model.json"), &["`re\\nlu1`", "unknown op", "`ge\\nlu`"]);
}

#[test]
fn unknown_inputs_name() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(
        r#"{"name": "relu1", "op": "relu"}"#,
        r#"{"name": "relu1", "op": "relu", "inputs": ["conv9"]}"#,
    ));
    check_msg(&e, &fx.path("model.json"), &["`relu1`", "unknown input", "`conv9`"]);
}

#[test]
fn inputs_not_names() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(
        r#"{"name": "relu1", "op": "relu"}"#,
        r#"{"name": "relu1", "op": "relu", "inputs": [0]}"#,
    ));
    check_msg(&e, &fx.path("model.json"), &["`relu1`", "\"inputs\""]);
}

#[test]
fn cycle_of_two_layers() {
    let fx = Fx::new();
    let e = expect_err(fx.model_layers(
        "[4]",
        r#"[{"name": "a", "op": "relu", "inputs": ["b"]},
            {"name": "b", "op": "relu", "inputs": ["a"]}]"#,
    ));
    check_msg(&e, &fx.path("model.json"), &["cycle", "`a`", "b"]);
}

#[test]
fn cycle_self_reference() {
    let fx = Fx::new();
    let e = expect_err(fx.model_layers(
        "[4]",
        r#"[{"name": "a", "op": "relu"}, {"name": "b", "op": "add", "inputs": ["a", "b"]}]"#,
    ));
    check_msg(&e, &fx.path("model.json"), &["cycle", "`b`", "itself"]);
}

#[test]
fn cycle_names_a_layer_on_the_cycle_not_one_downstream_of_it() {
    // `c` only reads from the cycle b -> a -> b; it comes first in the file, yet the error must
    // point at the layers that form the cycle.
    let fx = Fx::new();
    let e = expect_err(fx.model_layers(
        "[4]",
        r#"[{"name": "c", "op": "relu", "inputs": ["b"]},
            {"name": "a", "op": "relu", "inputs": ["b"]},
            {"name": "b", "op": "relu", "inputs": ["a"]}]"#,
    ));
    let msg = check_msg(&e, &fx.path("model.json"), &["cycle", "a", "b"]);
    assert!(!msg.contains("`c`"), "names a layer that is not on the cycle: {msg}");
}

#[test]
fn missing_op() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#"{"name": "relu1", "op": "relu"}"#, r#"{"name": "relu1"}"#));
    check_msg(&e, &fx.path("model.json"), &["`relu1`", "\"op\""]);
}

#[test]
fn bad_attribute_value() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""out_channels": 2"#, r#""out_channels": -2"#));
    check_msg(&e, &fx.path("model.json"), &["`conv1`", "\"out_channels\"", "-2"]);
    let e = expect_err(fx.model_with(r#""kernel": 3"#, r#""kernel": [3, 3, 3]"#));
    check_msg(&e, &fx.path("model.json"), &["`conv1`", "\"kernel\""]);
}

// ---------------------------------------------------------------------------------------------
// Shapes: impossible, overflowing or absurdly large (refused at parse time, before allocating)
// ---------------------------------------------------------------------------------------------

/// Parse must refuse quickly: no allocation proportional to the absurd size.
#[track_caller]
fn refused_quickly(fx: &Fx, input_shape: &str, layers: &str, needles: &[&str]) -> String {
    let t = Instant::now();
    let e = expect_err(fx.model_layers(input_shape, layers));
    let took = t.elapsed();
    assert!(took < Duration::from_millis(200), "refusing took {took:?}");
    check_msg(&e, &fx.path("model.json"), needles)
}

#[test]
fn absurd_conv_million_channels() {
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[3, 1000, 1000]",
        r#"[{"name": "huge", "op": "conv2d", "out_channels": 1000000, "kernel": 3}]"#,
        &["`huge`", "limit"],
    );
}

#[test]
fn absurd_dense_parameters() {
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[1000000]",
        r#"[{"name": "wide", "op": "dense", "out_features": 1000000}]"#,
        &["`wide`", "wide.weight", "too large"],
    );
}

#[test]
fn input_shape_overflow() {
    let fx = Fx::new();
    // 1e15 values: fits in a usize, but far beyond any sane allocation. A global pool right after
    // it would shrink it, so the input itself must be refused.
    refused_quickly(
        &fx,
        "[100000, 100000, 100000]",
        r#"[{"name": "gap", "op": "global_avgpool2d"}]"#,
        &["input", "[100000, 100000, 100000]"],
    );
    // A dimension that does not even fit the per-dimension limit.
    refused_quickly(
        &fx,
        "[1099511627776, 1, 1]",
        r#"[{"name": "r", "op": "relu"}]"#,
        &["input", "1099511627776"],
    );
    refused_quickly(&fx, "[0, 4, 4]", r#"[{"name": "r", "op": "relu"}]"#, &["input", "0"]);
}

#[test]
fn layer_output_overflow() {
    let fx = Fx::new();
    // 1048576 * 1048576 * 1048576 channels overflow even before any size limit.
    refused_quickly(
        &fx,
        "[1048576]",
        r#"[{"name": "a", "op": "concat", "inputs": ["input", "input", "input", "input"]},
            {"name": "big", "op": "dense", "out_features": 1048576}]"#,
        &["`big`"],
    );
}

#[test]
fn absurd_pool_padding_needs_huge_scratch() {
    // The output is 1x1, but the forward pass would pad the input to 1048577 x 1048577 first.
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[1, 1, 1]",
        r#"[{"name": "pool", "op": "maxpool2d", "kernel": 1048576, "padding": 524288}]"#,
        &["`pool`", "limit"],
    );
}

#[test]
fn absurd_conv_dilation_needs_huge_scratch() {
    // Unequal dilations are done by spreading the kernel out: 64 x 1 x 1048577 x 524289 values.
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[1, 2, 2]",
        r#"[{"name": "dil", "op": "conv2d", "out_channels": 64, "kernel": 2,
             "dilation": [1048576, 524288], "padding": 524288}]"#,
        &["`dil`", "limit"],
    );
}

#[test]
fn absurd_conv_patch_unfolding() {
    // Small parameters and output, but unfolding 512 output pixels of a 1024x1024 kernel over
    // 128 channels at a time would take 2^36 values.
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[128, 1046, 1046]",
        r#"[{"name": "unfold", "op": "conv2d", "out_channels": 1, "kernel": 1024}]"#,
        &["`unfold`", "limit"],
    );
}

#[test]
fn absurd_conv_im2col_of_a_big_image() {
    // Output [1, 2046, 2046] and input [64, 2048, 2048] are each within the per-layer limit, but
    // unfolding the 3x3 patches of 64 channels for every output pixel takes 2.4e9 values.
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[64, 2048, 2048]",
        r#"[{"name": "wide", "op": "conv2d", "out_channels": 1, "kernel": 3}]"#,
        &["`wide`", "limit"],
    );
}

#[test]
fn kernel_larger_than_input() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""kernel": 3"#, r#""kernel": 5"#));
    check_msg(
        &e,
        &fx.path("model.json"),
        &["`conv1`", "kernel", "4x4", "does not fit"],
    );
}

#[test]
fn dense_on_an_image_without_flatten() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#"{"name": "flatten", "op": "flatten"},"#, ""));
    check_msg(&e, &fx.path("model.json"), &["`fc`", "[2, 2, 2]", "flatten"]);
}

#[test]
fn add_of_mismatched_shapes() {
    let fx = Fx::new();
    let e = expect_err(fx.model_layers(
        "[1, 4, 4]",
        r#"[{"name": "c", "op": "conv2d", "out_channels": 2, "kernel": 3},
            {"name": "sum", "op": "add", "inputs": ["c", "input"]}]"#,
    ));
    check_msg(
        &e,
        &fx.path("model.json"),
        &["`sum`", "same shape", "[2, 2, 2]", "[1, 4, 4]"],
    );
}

#[test]
fn concat_of_mismatched_sizes() {
    let fx = Fx::new();
    let e = expect_err(fx.model_layers(
        "[1, 4, 4]",
        r#"[{"name": "c", "op": "conv2d", "out_channels": 2, "kernel": 3},
            {"name": "cat", "op": "concat", "inputs": ["c", "input"]}]"#,
    ));
    check_msg(&e, &fx.path("model.json"), &["`cat`", "[1, 4, 4]"]);
}

#[test]
fn groups_do_not_divide_channels() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""kernel": 3"#, r#""kernel": 3, "groups": 2"#));
    check_msg(&e, &fx.path("model.json"), &["`conv1`", "groups"]);
}

#[test]
fn classes_count_differs_from_last_layer() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#"["a", "b", "c"]"#, r#"["a", "b"]"#));
    check_msg(&e, &fx.path("model.json"), &["2 classes", "3 outputs", "`softmax`"]);
}

// ---------------------------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_tensor() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t.retain(|(n, ..)| n != "fc.weight");
    let e = expect_err(fx.weights_with(&t));
    check_msg(&e, &fx.path("weights.safetensors"), &["`fc.weight`", "`fc`", "missing"]);
}

#[test]
fn missing_bias_hints_at_null() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t.retain(|(n, ..)| n != "conv1.bias");
    let e = expect_err(fx.weights_with(&t));
    check_msg(
        &e,
        &fx.path("weights.safetensors"),
        &["`conv1.bias`", "`conv1`", "missing", "null"],
    );
}

#[test]
fn missing_weights_file() {
    let fx = Fx::good();
    std::fs::remove_file(fx.path("weights.safetensors")).unwrap();
    let model = fx.model();
    let e = expect_err(Weights::load(&model));
    check_msg(&e, &fx.path("weights.safetensors"), &["cannot read"]);
}

#[test]
fn tensor_of_the_wrong_shape() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t[2] = f32_tensor("fc.weight", &[3, 9]);
    let e = expect_err(fx.weights_with(&t));
    check_msg(
        &e,
        &fx.path("weights.safetensors"),
        &["`fc.weight`", "`fc`", "[3, 9]", "[3, 8]"],
    );
}

#[test]
fn tensor_of_the_wrong_dtype_i64() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t[0] = ("conv1.weight".into(), Dtype::I64, vec![2, 1, 3, 3], vec![0u8; 18 * 8]);
    let e = expect_err(fx.weights_with(&t));
    check_msg(
        &e,
        &fx.path("weights.safetensors"),
        &["`conv1.weight`", "`conv1`", "I64"],
    );
}

#[test]
fn tensor_of_the_wrong_dtype_f64() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t[3] = ("fc.bias".into(), Dtype::F64, vec![3], vec![0u8; 3 * 8]);
    let e = expect_err(fx.weights_with(&t));
    check_msg(&e, &fx.path("weights.safetensors"), &["`fc.bias`", "`fc`", "F64"]);
}

#[test]
fn half_precision_weights_are_accepted() {
    let fx = Fx::good();
    let mut t = good_tensors();
    let h: Vec<u8> = (0..3)
        .flat_map(|i| half::f16::from_f32(i as f32).to_le_bytes())
        .collect();
    t[3] = ("fc.bias".into(), Dtype::F16, vec![3], h);
    fx.weights_with(&t).unwrap();
}

#[test]
fn truncated_safetensors_cut_in_half() {
    let fx = Fx::good();
    let bytes = st_bytes(&good_tensors());
    let p = fx.write("weights.safetensors", &bytes[..bytes.len() / 2]);
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["truncated"]);
}

#[test]
fn truncated_safetensors_cut_in_the_data() {
    let fx = Fx::good();
    let bytes = st_bytes(&good_tensors());
    let p = fx.write("weights.safetensors", &bytes[..bytes.len() - 10]);
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    // The last tensor in the file (by offset) is the one cut short.
    check_msg(&e, &p, &["truncated", "tensor `"]);
}

#[test]
fn trailing_garbage_after_the_data() {
    let fx = Fx::good();
    let mut bytes = st_bytes(&good_tensors());
    bytes.extend_from_slice(b"garbage");
    let p = fx.write("weights.safetensors", &bytes);
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["7"]);
}

#[test]
fn empty_safetensors_file() {
    let fx = Fx::good();
    let p = fx.write("weights.safetensors", b"");
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["safetensors"]);
}

#[test]
fn header_offsets_past_the_end() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            &[0u8; 4],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`conv1.bias`", "truncated"]);
}

#[test]
fn header_offsets_disagree_with_shape() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,400]}}"#,
            &[0u8; 400],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`conv1.bias`", "400", "8"]);
}

#[test]
fn header_offsets_overlap() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                "fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[4,16]}}"#,
            &[0u8; 16],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`fc.bias`", "overlap"]);
}

#[test]
fn header_offsets_leave_a_gap() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                "fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[12,24]}}"#,
            &[0u8; 24],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`fc.bias`", "gap", "[12, 24]"]);
}

#[test]
fn header_offsets_end_before_they_start() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                   "fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[8,4]}}"#,
            &[0u8; 20],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`fc.bias`", "[8, 4]"]);
}

#[test]
fn header_shape_overflows() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"fc.weight":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
            &[0u8; 8],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`fc.weight`"]);
}

#[test]
fn header_length_bigger_than_the_file() {
    let fx = Fx::good();
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let p = fx.write("weights.safetensors", &bytes);
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["1000", "header"]);
}

#[test]
fn header_length_absurd() {
    let fx = Fx::good();
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let p = fx.write("weights.safetensors", &bytes);
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["header"]);
}

#[test]
fn garbage_header_json() {
    let fx = Fx::good();
    let p = fx.write("weights.safetensors", raw_st("{\"a\": [1, 2", &[]));
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["header", "JSON"]);
    let p = fx.write("weights.safetensors", raw_st("\u{1}\u{2}\u{3}", &[]));
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["header"]);
}

#[test]
fn header_unknown_dtype() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#,
            &[0u8; 8],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["Q4"]);
}

#[test]
fn nan_and_inf_weights_warn_and_are_still_shown() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t[1] = (
        "conv1.bias".into(),
        Dtype::F32,
        vec![2],
        f32_bytes(&[f32::NAN, f32::INFINITY]),
    );
    let weights = fx.weights_with(&t).unwrap();
    assert_eq!(weights.warnings.len(), 1, "{:?}", weights.warnings);
    let w = &weights.warnings[0];
    assert!(!w.contains('\n'), "{w:?}");
    for needle in ["`conv1.bias`", "`conv1`", "2 NaN/Inf"] {
        assert!(w.contains(needle), "warning lacks {needle}: {w}");
    }
    let model = fx.model();
    let acts = nn::forward(&model, &weights, &[0.5; 16]).unwrap();
    let conv1 = &acts.layers[0];
    assert_eq!(conv1.len(), 8);
    assert!(
        conv1[..4].iter().all(|v| v.is_nan()),
        "channel 0 should be NaN: {conv1:?}"
    );
    assert!(
        conv1[4..].iter().all(|v| *v == f32::INFINITY),
        "channel 1 should be +inf: {conv1:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Inputs and samples
// ---------------------------------------------------------------------------------------------

#[test]
fn input_png_of_the_wrong_size() {
    let fx = Fx::good();
    let p = fx.write("in.png", png_bytes(5, 3, png::ColorType::Grayscale));
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["5x3", "4x4"]);
}

#[test]
fn input_png_with_the_wrong_channel_count() {
    let fx = Fx::good();
    let p = fx.write("in.png", png_bytes(4, 4, png::ColorType::Rgb));
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["3 colour channel", "needs 1"]);
}

#[test]
fn input_png_with_alpha_is_accepted() {
    let fx = Fx::good();
    let p = fx.write("in.png", png_bytes(4, 4, png::ColorType::GrayscaleAlpha));
    assert_eq!(load_input(&fx.model(), &p).unwrap().len(), 16);
}

#[test]
fn input_png_huge_header_is_refused_before_allocating() {
    let fx = Fx::good();
    let p = fx.write("in.png", lying_png(100_000, 100_000));
    let t = Instant::now();
    let e = expect_err(load_input(&fx.model(), &p));
    assert!(t.elapsed() < Duration::from_millis(200), "took {:?}", t.elapsed());
    check_msg(&e, &p, &["100000x100000", "4x4"]);
}

#[test]
fn input_file_is_not_a_png() {
    let fx = Fx::good();
    let p = fx.write("in.png", "this is text, not an image");
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["PNG"]);
}

#[test]
fn input_png_for_a_vector_model() {
    let fx = Fx::new();
    fx.model_layers("[16]", r#"[{"name": "r", "op": "relu"}]"#).unwrap();
    let p = fx.write("in.png", png_bytes(4, 4, png::ColorType::Grayscale));
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["[16]", "image"]);
}

#[test]
fn input_missing_file() {
    let fx = Fx::good();
    for name in ["nope.png", "nope.safetensors"] {
        let p = fx.path(name);
        let e = expect_err(load_input(&fx.model(), &p));
        check_msg(&e, &p, &["cannot read"]);
    }
}

#[test]
fn input_safetensors_of_the_wrong_shape() {
    let fx = Fx::good();
    let p = fx.write("in.safetensors", st_bytes(&[f32_tensor("input", &[1, 5, 4])]));
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["`input`", "[1, 5, 4]", "[1, 4, 4]"]);
}

#[test]
fn input_safetensors_with_a_leading_batch_of_one_is_accepted() {
    let fx = Fx::good();
    let p = fx.write("in.safetensors", st_bytes(&[f32_tensor("input", &[1, 1, 4, 4])]));
    assert_eq!(load_input(&fx.model(), &p).unwrap().len(), 16);
}

#[test]
fn input_safetensors_without_input_tensor() {
    let fx = Fx::good();
    let p = fx.write("in.safetensors", st_bytes(&[f32_tensor("image", &[1, 4, 4])]));
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["`input`"]);
}

#[test]
fn input_safetensors_with_nan() {
    let fx = Fx::good();
    let mut v = vec![0f32; 16];
    v[3] = f32::NAN;
    let p = fx.write(
        "in.safetensors",
        st_bytes(&[("input".into(), Dtype::F32, vec![1, 4, 4], f32_bytes(&v))]),
    );
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["`input`", "NaN"]);
}

#[test]
fn input_safetensors_truncated() {
    let fx = Fx::good();
    let bytes = st_bytes(&[f32_tensor("input", &[1, 4, 4])]);
    let p = fx.write("in.safetensors", &bytes[..bytes.len() - 3]);
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["`input`", "truncated"]);
}

#[test]
fn samples_missing_labels() {
    let fx = Fx::good();
    let p = fx.write("samples.safetensors", samples_bytes(2, vec![]));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`labels`", "missing"]);
}

#[test]
fn samples_label_out_of_range() {
    let fx = Fx::good();
    let labels = ("labels".to_owned(), Dtype::U8, vec![2], vec![1u8, 3]);
    let p = fx.write("samples.safetensors", samples_bytes(2, vec![labels]));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`labels`", "label 3", "3 outputs"]);
}

#[test]
fn samples_negative_label() {
    let fx = Fx::good();
    let labels = (
        "labels".to_owned(),
        Dtype::I64,
        vec![2],
        [0i64, -1].iter().flat_map(|l| l.to_le_bytes()).collect(),
    );
    let p = fx.write("samples.safetensors", samples_bytes(2, vec![labels]));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`labels`", "-1"]);
}

#[test]
fn samples_float_labels() {
    let fx = Fx::good();
    let labels = ("labels".to_owned(), Dtype::F32, vec![2], f32_bytes(&[0.0, 1.0]));
    let p = fx.write("samples.safetensors", samples_bytes(2, vec![labels]));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`labels`", "F32"]);
}

#[test]
fn samples_label_count_differs_from_images() {
    let fx = Fx::good();
    let labels = ("labels".to_owned(), Dtype::U8, vec![3], vec![0u8, 1, 2]);
    let p = fx.write("samples.safetensors", samples_bytes(2, vec![labels]));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`labels`", "[3]", "[2]"]);
}

#[test]
fn samples_images_of_the_wrong_shape() {
    let fx = Fx::good();
    let t = vec![
        ("images".to_owned(), Dtype::U8, vec![2, 4, 4], vec![0u8; 32]),
        ("labels".to_owned(), Dtype::U8, vec![2], vec![0u8, 1]),
    ];
    let p = fx.write("samples.safetensors", st_bytes(&t));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`images`", "[2, 4, 4]"]);
}

// ---------------------------------------------------------------------------------------------
// The binary: `error: <message>` on one stderr line, exit code 1, nothing half-written
// ---------------------------------------------------------------------------------------------

fn netwalk(args: &[&std::ffi::OsStr]) -> (i32, String) {
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
fn cli_fails(args: &[&std::ffi::OsStr], needles: &[&str]) {
    let (code, stderr) = netwalk(args);
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

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

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
fn cli_wrong_input_image_size_writes_nothing() {
    let fx = Fx::good();
    let input = fx.write("in.png", png_bytes(5, 3, png::ColorType::Grayscale));
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
        &[&is, "5x3", "4x4"],
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

// ---------------------------------------------------------------------------------------------
// Stable stand-in for `cargo fuzz`: deterministic mutations of the reference fixtures
// ---------------------------------------------------------------------------------------------

/// SplitMix64: a tiny deterministic generator, so a failure reproduces exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values worth trying where a number stands: edges of every limit in the loaders.
const INTERESTING: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "-1",
    "0.5",
    "1e308",
    "null",
    "\"x\"",
    "[]",
    "[0, 0]",
    "[1, 2]",
    "[1048576, 1]",
    "65535",
    "1048576",
    "1048577",
    "268435456",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999",
    "[3, 1, 1]",
    "[100000, 100000, 100000]",
];

/// Replace one run of ASCII digits (a shape, an offset, a kernel size...) in `text` by an
/// interesting value.
fn mutate_number(rng: &mut Rng, bytes: &mut Vec<u8>, range: std::ops::Range<usize>) {
    let digits: Vec<usize> = (range.clone())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == range.start || !bytes[i - 1].is_ascii_digit()))
        .collect();
    if digits.is_empty() {
        return;
    }
    let start = digits[rng.below(digits.len())];
    let mut end = start;
    while end < range.end && bytes[end].is_ascii_digit() {
        end += 1;
    }
    let value = INTERESTING[rng.below(INTERESTING.len())];
    bytes.splice(start..end, value.bytes());
}

/// One mutation of a fuzz input (see `netwalk::nn::fuzz::split`), chosen by `rng`.
fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut b = input.to_vec();
    let (json_len, _) = netwalk::nn::fuzz::split(input);
    let json_len = json_len.len();
    match rng.below(8) {
        // Flip a few bits anywhere.
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        // Truncate.
        1 => b.truncate(rng.below(b.len())),
        // Splice in a chunk of another input.
        2 => {
            let other = &others[rng.below(others.len())];
            let (from, len) = (rng.below(other.len()), 1 + rng.below(64));
            let chunk = &other[from..(from + len).min(other.len())];
            let at = rng.below(b.len());
            let end = (at + rng.below(2 * chunk.len())).min(b.len());
            b.splice(at..end, chunk.iter().copied());
        }
        // Overwrite a byte with a structural character.
        3 => {
            let i = rng.below(b.len());
            const BYTES: &[u8] = b"{}[]\",:0-.9\0\xff";
            b[i] = BYTES[rng.below(BYTES.len())];
        }
        // Change a number in model.json (the length prefix follows the new JSON length).
        4 => {
            let (json, st) = netwalk::nn::fuzz::split(input);
            let mut j = json.to_vec();
            let n = j.len();
            mutate_number(rng, &mut j, 0..n);
            b = netwalk::nn::fuzz::join(&j, st);
        }
        // Change a number in the safetensors header (offsets, shapes).
        5 => {
            let start = 2 + json_len + 8;
            let hlen = b
                .get(2 + json_len..start)
                .map(|h| u64::from_le_bytes(h.try_into().unwrap()) as usize)
                .unwrap_or(0);
            if start + hlen <= b.len() {
                let before = b.len();
                mutate_number(rng, &mut b, start..start + hlen);
                // Keep the header length right half of the time, so the offsets get checked.
                if rng.below(2) == 0 {
                    let new_len = (hlen + b.len() - before) as u64;
                    b[2 + json_len..start].copy_from_slice(&new_len.to_le_bytes());
                }
            }
        }
        // Delete or duplicate a JSON line (drops or repeats a layer).
        6 => {
            let (json, st) = netwalk::nn::fuzz::split(input);
            let text = String::from_utf8_lossy(json);
            let mut lines: Vec<&str> = text.lines().collect();
            let i = rng.below(lines.len());
            if rng.below(2) == 0 {
                lines.remove(i);
            } else {
                lines.insert(i, lines[i]);
            }
            b = netwalk::nn::fuzz::join(lines.join("\n").as_bytes(), st);
        }
        // Shuffle the order of two layer lines (inputs may now come later, or form cycles).
        _ => {
            let (json, st) = netwalk::nn::fuzz::split(input);
            let text = String::from_utf8_lossy(json);
            let mut lines: Vec<&str> = text.lines().collect();
            let (i, k) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(i, k);
            b = netwalk::nn::fuzz::join(lines.join("\n").as_bytes(), st);
        }
    }
    b
}

fn fuzz_seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.json").exists())
        .collect();
    dirs.sort();
    let mut seeds: Vec<Vec<u8>> = dirs
        .iter()
        .map(|d| {
            let json = std::fs::read(d.join("model.json")).unwrap();
            let st = std::fs::read(d.join("weights.safetensors")).unwrap();
            netwalk::nn::fuzz::join(&json, &st)
        })
        .collect();
    seeds.push(netwalk::nn::fuzz::join(
        GOOD_MODEL.as_bytes(),
        &st_bytes(&good_tensors()),
    ));
    seeds
}

/// Run `f` on `input`; on a panic, save the input for `cargo fuzz run ... <file>` and fail.
fn no_panic<R>(what: &str, i: usize, input: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(input))) {
        Ok(r) => r,
        Err(_) => {
            let p = std::env::temp_dir().join(format!("netwalk-{what}-crash-{i}.bin"));
            std::fs::write(&p, input).unwrap();
            panic!("{what} panicked on mutation {i}; input saved to {}", p.display());
        }
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    use netwalk::nn::fuzz::{Stage, fuzz_load, fuzz_safetensors, split};
    let seeds = fuzz_seeds();
    for (k, s) in seeds.iter().enumerate() {
        assert_eq!(fuzz_load(s), Stage::Forward, "seed {k} should load and run");
    }
    let mut rng = Rng(0x006e_6574_7761_6c6b);
    let mut stages = std::collections::BTreeMap::new();
    let mut tensors = 0;
    let t = Instant::now();
    // NETWALK_MUTATIONS=1000000 for a longer local run.
    let n: usize = std::env::var("NETWALK_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    for i in 0..n {
        let seed = &seeds[rng.below(seeds.len())];
        let mut input = mutate(&mut rng, seed, &seeds);
        // Stack a second mutation a third of the time.
        if rng.below(3) == 0 {
            input = mutate(&mut rng, &input, &seeds);
        }
        let stage = no_panic("fuzz_load", i, &input, fuzz_load);
        *stages.entry(stage).or_insert(0usize) += 1;
        tensors += no_panic("fuzz_safetensors", i, split(&input).1, fuzz_safetensors);
    }
    println!(
        "{n} mutations in {:?}: {stages:?}, {tensors} tensors converted",
        t.elapsed()
    );
    // The mutations must exercise every stage, or this test checks less than it claims.
    for stage in [Stage::Model, Stage::Weights, Stage::Forward] {
        assert!(
            stages.get(&stage).copied().unwrap_or(0) >= n / 50,
            "too few inputs reach {stage:?}: {stages:?}"
        );
    }
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

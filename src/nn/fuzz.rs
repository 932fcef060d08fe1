//! Entry points for fuzzing the loaders, shared by the `cargo fuzz` targets in `fuzz/` and the
//! stable mutation test in `tests/bad_input.rs` (see docs/fuzzing.md). On any bytes they must
//! return without panicking, and every error they meet must be a one-line message naming the file.

use std::path::Path;

use super::forward::forward;
use super::model::{Model, Op, Shape};
use super::ops::work_elements;
use super::weights::{Weights, parse_safetensors, view_to_f32};

/// The file names the fuzzed bytes pretend to come from (they appear in error messages).
pub const MODEL_PATH: &str = "fuzz/model.json";
pub const WEIGHTS_PATH: &str = "fuzz/weights.safetensors";
pub const ONNX_PATH: &str = "fuzz/model.onnx";

/// Largest model the harness runs forward on: activations plus temporary buffers, in values.
pub const MAX_FORWARD_ELEMENTS: usize = 1_000_000;
/// ... and multiply-adds, so a fuzz run is not dominated by one slow convolution.
pub const MAX_FORWARD_MACS: usize = 20_000_000;

/// How far [`fuzz_load`] got with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// model.json was refused.
    Model,
    /// The model parsed; the weights were refused.
    Weights,
    /// Model and weights loaded; the model is too big to run in a fuzzer.
    Loaded,
    /// The forward pass ran.
    Forward,
}

/// Split a fuzz input: 2 bytes little-endian length `n`, `n` bytes of model JSON, then the
/// safetensors bytes. A length past the end takes everything as JSON.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.split_first_chunk::<2>() {
        None => (data, &[]),
        Some((len, rest)) => rest.split_at((u16::from_le_bytes(*len) as usize).min(rest.len())),
    }
}

/// The inverse of [`split`] (the JSON is cut at 65535 bytes), for building seed inputs.
pub fn join(json: &[u8], safetensors: &[u8]) -> Vec<u8> {
    let json = &json[..json.len().min(u16::MAX as usize)];
    let mut out = (json.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(json);
    out.extend_from_slice(safetensors);
    out
}

fn check_message(e: &super::NnError, file: &str) {
    let msg = e.to_string();
    assert!(!msg.contains('\n') && !msg.contains('\r'), "multi-line error: {msg:?}");
    assert!(msg.contains(file), "error does not name {file}: {msg}");
}

/// Parse model.json and weights from one fuzz input ([`split`]), and run the forward pass on a zero
/// input when the model is small enough.
pub fn fuzz_load(data: &[u8]) -> Stage {
    let (json, st) = split(data);
    let text = String::from_utf8_lossy(json);
    let model = match Model::parse(&text, Path::new(MODEL_PATH)) {
        Ok(m) => m,
        Err(e) => {
            check_message(&e, MODEL_PATH);
            return Stage::Model;
        }
    };
    let weights = match Weights::from_bytes(&model, st, Path::new(WEIGHTS_PATH)) {
        Ok(w) => w,
        Err(e) => {
            check_message(&e, WEIGHTS_PATH);
            return Stage::Weights;
        }
    };
    if !small_enough(&model) {
        return Stage::Loaded;
    }
    let zero = vec![0f32; model.input.shape.elements()];
    let acts = forward(&model, &weights, &zero).expect("forward pass of a validated model");
    assert_eq!(acts.layers.len(), model.layers.len());
    for (values, layer) in acts.layers.iter().zip(&model.layers) {
        assert_eq!(values.len(), layer.shape.elements(), "layer `{}`", layer.name);
    }
    Stage::Forward
}

/// Whether running the model costs little enough memory and time for a fuzzer.
pub fn small_enough(model: &Model) -> bool {
    let mut elements = model.input.shape.elements();
    let mut macs = 0usize;
    for layer in &model.layers {
        let input = model.source_shape(layer.inputs[0]);
        let Some(work) = work_elements(&layer.op, input, Some(layer.shape)) else {
            return false;
        };
        let per_output = match layer.op {
            Op::Conv2d { out_channels, .. } | Op::ConvTranspose2d { out_channels, .. } => {
                layer.param_count() / out_channels
            }
            Op::Upsample { .. } => 4,
            Op::Dense { .. } => input.elements(),
            Op::MaxPool2d { kernel, .. } | Op::AvgPool2d { kernel, .. } => kernel.0 * kernel.1,
            Op::AdaptiveAvgPool2d { output } => match input {
                Shape::Chw(_, h, w) => (h.div_ceil(output.0) + 1) * (w.div_ceil(output.1) + 1),
                Shape::Flat(_) => 1,
            },
            Op::LayerNorm { .. } => 3 * input.channels(),
            _ => layer.inputs.len(),
        };
        elements = elements.saturating_add(layer.shape.elements()).saturating_add(work);
        macs = macs.saturating_add(layer.shape.elements().saturating_mul(per_output));
    }
    elements <= MAX_FORWARD_ELEMENTS && macs <= MAX_FORWARD_MACS
}

/// Parse raw bytes as a safetensors file and convert every tensor to f32 where its dtype allows.
/// Returns the number of tensors converted (0 when the file was refused).
pub fn fuzz_safetensors(data: &[u8]) -> usize {
    let st = match parse_safetensors(data, Path::new(WEIGHTS_PATH)) {
        Ok(st) => st,
        Err(e) => {
            check_message(&e, WEIGHTS_PATH);
            return 0;
        }
    };
    let mut converted = 0;
    for (_, view) in st.iter() {
        if let Ok(values) = view_to_f32(&view) {
            assert_eq!(values.len(), view.shape().iter().product::<usize>());
            converted += 1;
        }
    }
    converted
}

/// How far [`fuzz_onnx`] got with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OnnxStage {
    /// The ONNX reader refused the bytes.
    Refused,
    /// Translated, but the netwalk model it made was refused (still with a one-line error).
    Translated,
    /// Translated and loaded; too big to run in a fuzzer.
    Loaded,
    /// The forward pass ran.
    Forward,
}

/// Read bytes as an ONNX file (external data looked up in a folder that does not exist), load the
/// netwalk model it translates to and, when small enough, run it on a zero input.
pub fn fuzz_onnx(data: &[u8]) -> OnnxStage {
    let opts = super::onnx::ImportOptions::default();
    let imported =
        match super::onnx::translate_bytes(data, Path::new(ONNX_PATH), Path::new("fuzz/no-such-folder"), &opts) {
            Ok(i) => i,
            Err(e) => {
                check_message(&e, ONNX_PATH);
                return OnnxStage::Refused;
            }
        };
    let json = imported.model_json.to_string();
    let model = match Model::parse(&json, Path::new(MODEL_PATH)) {
        Ok(m) => m,
        Err(e) => {
            check_message(&e, MODEL_PATH);
            return OnnxStage::Translated;
        }
    };
    let path = Path::new(WEIGHTS_PATH);
    let bytes = super::weights::f32_safetensors_bytes(path, &imported.tensors, &Default::default())
        .expect("serialising f32 tensors");
    let weights = match Weights::from_bytes(&model, &bytes, path) {
        Ok(w) => w,
        Err(e) => {
            check_message(&e, WEIGHTS_PATH);
            return OnnxStage::Translated;
        }
    };
    if !small_enough(&model) {
        return OnnxStage::Loaded;
    }
    let zero = vec![0f32; model.input.shape.elements()];
    let acts = forward(&model, &weights, &zero).expect("forward pass of a validated model");
    assert_eq!(acts.layers.len(), model.layers.len());
    OnnxStage::Forward
}

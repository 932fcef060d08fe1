//! The forward pass against onnxruntime reference outputs (tests/fixtures/reference, made by
//! tools/make_fixtures.py): every layer of every case within 1e-4 relative error.

use std::path::{Path, PathBuf};

use netwalk::nn::{self, Model, Weights, weights::SafetensorsFile};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.json").exists())
        .collect();
    v.sort();
    v
}

fn tensor_f32(file: &SafetensorsFile, name: &str) -> (Vec<usize>, Vec<f32>) {
    let st = file.tensors().unwrap();
    let view = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("{name} in {}", file.path.display()));
    (view.shape().to_vec(), nn::weights::view_to_f32(&view).unwrap())
}

#[test]
fn every_layer_matches_onnxruntime() {
    let cases = cases();
    assert!(
        cases.len() >= 7,
        "expected the 7 reference cases, found {}",
        cases.len()
    );
    let mut layers_checked = 0;
    for dir in cases {
        let model = Model::load(&dir).unwrap();
        let weights = Weights::load(&model).unwrap();
        let input = nn::load_input(&model, &dir.join("input.safetensors")).unwrap();
        // Both paths: the inference engine, and candle's batch path (training's forward).
        for path in ["engine", "candle"] {
            let acts = match path {
                "engine" => nn::forward(&model, &weights, &input).unwrap(),
                _ => nn::forward::forward_candle(&model, &weights, &input).unwrap(),
            };
            let expected = SafetensorsFile::open(&dir.join("expected.safetensors")).unwrap();
            for (i, layer) in model.layers.iter().enumerate() {
                let (shape, want) = tensor_f32(&expected, &layer.name);
                assert_eq!(shape, layer.shape.dims(), "{}: shape of {}", dir.display(), layer.name);
                let got = &acts.layers[i];
                assert_eq!(got.len(), want.len());
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    let err = (g - w).abs() / scale;
                    assert!(
                        err <= 1e-4,
                        "{} layer {} element {k} ({path}): got {g}, onnxruntime {w} (rel err {err:e})",
                        dir.display(),
                        layer.name
                    );
                }
                layers_checked += 1;
            }
        }
    }
    assert!(layers_checked > 80, "only {layers_checked} layers checked");
}

/// Layers big enough for the engine's multi-threaded blocked gemm (the reference cases are too
/// small to reach it): the engine against candle, layer by layer, on a ResNet-18-shaped model.
#[test]
fn engine_matches_candle_on_large_layers() {
    let (model, weights) = nn::synthetic::build("resnet18", 3).unwrap();
    let raw: Vec<f32> = (0..model.input.shape.elements())
        .map(|i| ((i * 31) % 97) as f32 / 97.0)
        .collect();
    let engine = nn::forward(&model, &weights, &raw).unwrap();
    let candle = nn::forward::forward_candle(&model, &weights, &raw).unwrap();
    let mut big = 0;
    for (i, layer) in model.layers.iter().enumerate() {
        let (a, b) = (&engine.layers[i], &candle.layers[i]);
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale;
        assert!(
            worst <= 1e-4,
            "layer {}: engine differs from candle by {worst:e} (relative)",
            layer.name
        );
        big += usize::from(nn::forward::conv_macs(layer) >= 1 << 20);
    }
    assert!(big >= 15, "only {big} layers reached the blocked gemm");
}

//! Synthetic models with random weights, for benchmarks (no weights file needed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::error::{ComputeContext, NnError, Result};
use super::model::{Model, Op};
use super::weights::{LayerParams, Weights};

/// Names accepted by `--synthetic` (besides `mlp-N0-N1-...`, see [`mlp_widths`]).
pub const NAMES: &[&str] = &[
    "resnet18",
    "resnet50",
    "mnist-cnn",
    "mlp-784-81-49-10",
    "mlp-1024-1024-10",
];

/// Most features of one layer of a synthetic MLP.
const MAX_MLP_WIDTH: usize = 1 << 16;

/// The widths of `mlp-N0-N1-...`: an `[N0]` input, then dense layers of N1, N2, ... features with
/// a relu between them and a softmax at the end. At least two widths, each 1..=65536.
pub fn mlp_widths(name: &str) -> Option<Vec<usize>> {
    let widths: Vec<usize> = name
        .strip_prefix("mlp-")?
        .split('-')
        .map(|w| w.parse().ok().filter(|&w| (1..=MAX_MLP_WIDTH).contains(&w)))
        .collect::<Option<_>>()?;
    (widths.len() >= 2).then_some(widths)
}

struct Builder {
    layers: Vec<Value>,
}

impl Builder {
    fn push(&mut self, v: Value) -> String {
        let name = v["name"].as_str().unwrap_or_default().to_owned();
        self.layers.push(v);
        name
    }
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors a conv+bn layer's attributes, all plain numbers"
    )]
    fn conv_bn(&mut self, name: &str, input: &str, out: usize, k: usize, s: usize, p: usize, relu: bool) -> String {
        self.push(
            json!({"name": format!("{name}"), "op": "conv2d", "inputs": [input], "out_channels": out,
                         "kernel": k, "stride": s, "padding": p, "bias": null}),
        );
        let mut last = self.push(json!({"name": format!("{name}_bn"), "op": "batchnorm2d"}));
        if relu {
            last = self.push(json!({"name": format!("{name}_relu"), "op": "relu"}));
        }
        last
    }
}

/// The model.json text of a synthetic model.
pub fn model_json(name: &str) -> Result<String> {
    let mut b = Builder { layers: Vec::new() };
    let (input, classes) = match name {
        "mnist-cnn" => {
            return Ok(include_str!("../../assets/models/mnist-cnn/model.json").to_owned());
        }
        "resnet18" | "resnet50" => {
            let bottleneck = name == "resnet50";
            let blocks: [usize; 4] = if bottleneck { [3, 4, 6, 3] } else { [2, 2, 2, 2] };
            let mut x = b.conv_bn("conv1", "image", 64, 7, 2, 3, true);
            x = b.push(
                json!({"name": "maxpool", "op": "maxpool2d", "inputs": [x], "kernel": 3, "stride": 2, "padding": 1}),
            );
            let mut in_ch = 64;
            for (stage, &n) in blocks.iter().enumerate() {
                let width = 64 << stage;
                let out_ch = if bottleneck { width * 4 } else { width };
                for blk in 0..n {
                    let s = if blk == 0 && stage > 0 { 2 } else { 1 };
                    let pre = format!("layer{}.{blk}", stage + 1);
                    let y = if bottleneck {
                        let y = b.conv_bn(&format!("{pre}.conv1"), &x, width, 1, 1, 0, true);
                        let y = b.conv_bn(&format!("{pre}.conv2"), &y, width, 3, s, 1, true);
                        b.conv_bn(&format!("{pre}.conv3"), &y, out_ch, 1, 1, 0, false)
                    } else {
                        let y = b.conv_bn(&format!("{pre}.conv1"), &x, width, 3, s, 1, true);
                        b.conv_bn(&format!("{pre}.conv2"), &y, width, 3, 1, 1, false)
                    };
                    let shortcut = if s != 1 || in_ch != out_ch {
                        b.conv_bn(&format!("{pre}.downsample"), &x, out_ch, 1, s, 0, false)
                    } else {
                        x.clone()
                    };
                    b.push(json!({"name": format!("{pre}.add"), "op": "add", "inputs": [y, shortcut]}));
                    x = b.push(json!({"name": format!("{pre}.relu"), "op": "relu"}));
                    in_ch = out_ch;
                }
            }
            b.push(json!({"name": "avgpool", "op": "global_avgpool2d", "inputs": [x]}));
            b.push(json!({"name": "flatten", "op": "flatten"}));
            b.push(json!({"name": "fc", "op": "dense", "out_features": 1000}));
            b.push(json!({"name": "softmax", "op": "softmax"}));
            (
                json!({"name": "image", "shape": [3, 224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}),
                None::<Vec<String>>,
            )
        }
        other if let Some(widths) = mlp_widths(other) => {
            let last = widths.len() - 1;
            for (k, &out) in widths.iter().enumerate().skip(1) {
                b.push(json!({"name": format!("fc{k}"), "op": "dense", "out_features": out}));
                if k < last {
                    b.push(json!({"name": format!("relu{k}"), "op": "relu"}));
                }
            }
            b.push(json!({"name": "softmax", "op": "softmax"}));
            (json!({"name": "input", "shape": [widths[0]]}), None)
        }
        other => {
            return Err(NnError::Usage(format!(
                "unknown synthetic model `{other}` (known: {}, or mlp-N0-N1-... for any widths)",
                NAMES.join(", ")
            )));
        }
    };
    let mut m = json!({"format": super::model::FORMAT, "name": name, "input": input,
                       "weights": "weights.safetensors", "layers": b.layers});
    if let Some(c) = classes {
        m["classes"] = json!(c);
    }
    serde_json::to_string_pretty(&m).map_err(|e| NnError::Usage(e.to_string()))
}

/// Build a synthetic model with random weights (PyTorch-like init, batchnorm with mild random
/// statistics so activations stay in a sane range).
pub fn build(name: &str, seed: u64) -> Result<(Model, Weights)> {
    let path = PathBuf::from(format!("<synthetic {name}>/model.json"));
    let model = Model::parse(&model_json(name)?, &path)?;
    let weights = random_weights(&model, seed)?;
    Ok((model, weights))
}

pub fn random_weights(model: &Model, seed: u64) -> Result<Weights> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut layers = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        let mut p = LayerParams::default();
        let fan_in = layer.fan_in().unwrap_or(1);
        for spec in &layer.params {
            let n: usize = spec.shape.iter().product();
            let vals: Vec<f32> = match (&layer.op, spec.role) {
                (Op::BatchNorm2d { .. }, super::model::ParamRole::Weight) => {
                    (0..n).map(|_| rng.random_range(0.5..1.0)).collect()
                }
                (Op::BatchNorm2d { .. }, super::model::ParamRole::RunningVar) => {
                    (0..n).map(|_| rng.random_range(0.5..2.0)).collect()
                }
                (Op::BatchNorm2d { .. }, _) => (0..n).map(|_| rng.random_range(-0.1..0.1)).collect(),
                // Scales and divisors away from 0; slopes as PReLU learns them.
                (Op::Mul | Op::Div, _) => (0..n).map(|_| rng.random_range(0.5..2.0)).collect(),
                (Op::PRelu, _) => (0..n).map(|_| rng.random_range(0.0..0.5)).collect(),
                (Op::LayerNorm { .. }, super::model::ParamRole::Weight) => {
                    (0..n).map(|_| rng.random_range(0.5..1.5)).collect()
                }
                (Op::LayerNorm { .. }, _) => (0..n).map(|_| rng.random_range(-0.1..0.1)).collect(),
                _ => {
                    // He-uniform keeps deep random ReLU stacks from vanishing.
                    let bound = (6.0 / fan_in as f32).sqrt();
                    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
                }
            };
            let t = Tensor::from_vec(vals, spec.shape.as_slice(), &Device::Cpu).in_layer(&layer.name)?;
            p.set(spec.role, t);
        }
        layers.push(p);
    }
    Ok(Weights {
        source: model.weights.clone(),
        layers,
        warnings: Vec::new(),
    })
}

/// Write a synthetic model to `dir` (model.json + weights.safetensors), e.g. for onnxruntime.
pub fn write(name: &str, model: &Model, weights: &Weights, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| NnError::io(dir, e))?;
    let json = dir.join("model.json");
    std::fs::write(&json, model_json(name)?).map_err(|e| NnError::io(&json, e))?;
    super::weights::save_weights(
        model,
        &weights.layers,
        BTreeMap::new(),
        &dir.join("weights.safetensors"),
    )?;
    Ok(json)
}

//! The forward pass against onnxruntime reference outputs (tests/fixtures/reference, made by
//! tools/make_fixtures.py): every layer of every case within 1e-4 relative error.

use std::path::{Path, PathBuf};

use netwalk::nn::query::Region;
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
/// The largest |difference| between `got` and `want`, relative to the largest |want|.
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    got.iter().zip(want).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale
}

/// Every layer's activations for `raw` from the engine and from candle's forward pass.
fn engine_and_candle(model: &Model, weights: &nn::Weights, raw: &[f32]) -> (nn::Activations, nn::Activations) {
    let engine = nn::forward(model, weights, raw).unwrap();
    let candle = nn::forward::forward_candle(model, weights, raw).unwrap();
    (engine, candle)
}

/// An input spanning -4..4 over the model's input (clamps, knees, saturations and pooling maxima
/// all reached).
fn spread_input(model: &Model) -> Vec<f32> {
    (0..model.input.shape.elements())
        .map(|i| ((i * 37) % 101) as f32 / 101.0 * 8.0 - 4.0)
        .collect()
}

#[test]
fn engine_matches_candle_on_large_layers() {
    let (model, weights) = nn::synthetic::build("resnet18", 3).unwrap();
    let raw: Vec<f32> = (0..model.input.shape.elements())
        .map(|i| ((i * 31) % 97) as f32 / 97.0)
        .collect();
    let (engine, candle) = engine_and_candle(&model, &weights, &raw);
    let mut big = 0;
    for (i, layer) in model.layers.iter().enumerate() {
        let (a, b) = (&engine.layers[i], &candle.layers[i]);
        let worst = relative_error(a, b);
        assert!(
            worst <= 1e-4,
            "layer {}: engine differs from candle by {worst:e} (relative)",
            layer.name
        );
        big += usize::from(nn::forward::conv_macs(layer) >= 1 << 20);
    }
    assert!(big >= 15, "only {big} layers reached the blocked gemm");
}

/// A small CNN through every activation with parameters chosen so each one's bends are reached.
const ACTIVATIONS_MODEL: &str = r#"{
  "format": "netwalk-model/1", "name": "activations", "weights": "weights.safetensors",
  "input": {"name": "image", "shape": [3, 9, 9]},
  "layers": [
    {"name": "conv1", "op": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1},
    {"name": "relu6", "op": "relu6"},
    {"name": "conv2", "op": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1},
    {"name": "clip", "op": "clip", "min": -0.5, "max": 0.75},
    {"name": "hardswish", "op": "hardswish", "inputs": ["conv2"]},
    {"name": "hardsigmoid", "op": "hardsigmoid", "inputs": ["conv2"]},
    {"name": "silu", "op": "silu", "inputs": ["conv2"]},
    {"name": "gelu", "op": "gelu", "inputs": ["conv2"]},
    {"name": "gelu_tanh", "op": "gelu", "approximate": "tanh", "inputs": ["conv2"]},
    {"name": "leaky", "op": "leaky_relu", "negative_slope": 0.2, "inputs": ["conv2"]},
    {"name": "elu", "op": "elu", "alpha": 0.7, "inputs": ["conv2"]},
    {"name": "cat", "op": "concat", "inputs": ["clip", "hardswish", "hardsigmoid", "silu", "gelu", "gelu_tanh", "leaky", "elu"]},
    {"name": "gap", "op": "global_avgpool2d"},
    {"name": "flatten", "op": "flatten"},
    {"name": "fc", "op": "dense", "out_features": 4},
    {"name": "fc_elu", "op": "elu"}
  ]
}"#;

/// The engine against candle on every activation op, layer by layer, on inputs spanning -4..4 (so
/// the clamps, knees and saturations are all reached); the neuron query and receptive field of an
/// activation neuron are its one input.
#[test]
fn engine_matches_candle_on_every_activation() {
    let model = Model::parse(ACTIVATIONS_MODEL, Path::new("<activations>/model.json")).unwrap();
    let weights = nn::synthetic::random_weights(&model, 7).unwrap();
    let (engine, candle) = engine_and_candle(&model, &weights, &spread_input(&model));
    let mut ops = std::collections::BTreeSet::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let (a, b) = (&engine.layers[i], &candle.layers[i]);
        let worst = relative_error(a, b);
        assert!(
            worst <= 1e-5,
            "layer {}: engine differs from candle by {worst:e}",
            layer.name
        );
        if !layer.op.is_activation() {
            continue;
        }
        assert!(layer.op.is_elementwise(), "{} folds into its block", layer.name);
        ops.insert(format!("{:?}", layer.op));
        let src = model.source_shape(layer.inputs[0]);
        let input_acts = engine.source(layer.inputs[0]);
        let lo = input_acts.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = input_acts.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(lo < -1.0 && hi > 1.0, "{}: inputs only span {lo}..{hi}", layer.name);
        for off in [0, a.len() / 2, a.len() - 1] {
            let index = layer.shape.index_of(off);
            let info = nn::query::neuron(&model, &weights, &engine, i, &index).unwrap();
            assert_eq!(info.inputs.len(), 1, "{}", layer.name);
            assert_eq!(info.inputs[0].index, src.index_of(off));
            assert_eq!(info.pre_activation, Some(input_acts[off]));
            let field = nn::query::receptive_field(&model, i, &index).unwrap();
            let direct = model.layers[i].inputs[0];
            let slot = match direct {
                nn::Source::Input => 0,
                nn::Source::Layer(j) => j + 1,
            };
            let want = match src.index_of(off).as_slice() {
                &[c, y, x] => Region::Map {
                    channels: [c].into(),
                    y: (y, y),
                    x: (x, x),
                },
                _ => Region::Flat([off].into()),
            };
            assert_eq!(field[slot], Some(want), "{}", layer.name);
        }
    }
    assert_eq!(ops.len(), 10, "activations covered: {ops:?}");
}

/// A small CNN on an odd-sized map through every pooling form: ceil mode (windows clipped at the
/// edge), average with and without the padding counted, adaptive to a size that does not divide.
const POOLING_MODEL: &str = r#"{
  "format": "netwalk-model/1", "name": "pooling", "weights": "weights.safetensors",
  "input": {"name": "image", "shape": [3, 13, 13]},
  "layers": [
    {"name": "conv1", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
    {"name": "max_ceil", "op": "maxpool2d", "kernel": 3, "stride": 2, "padding": 1, "ceil_mode": true},
    {"name": "max_ceil0", "op": "maxpool2d", "kernel": 2, "stride": 2, "ceil_mode": true, "inputs": ["conv1"]},
    {"name": "max_ceil_drop", "op": "maxpool2d", "kernel": [2, 3], "stride": [3, 2], "padding": 1, "ceil_mode": true, "inputs": ["conv1"]},
    {"name": "avg_ceil", "op": "avgpool2d", "kernel": 3, "stride": 2, "padding": 1, "ceil_mode": true, "inputs": ["conv1"]},
    {"name": "avg_ceil_nopad", "op": "avgpool2d", "kernel": 3, "stride": 2, "padding": 1, "ceil_mode": true, "count_include_pad": false, "inputs": ["conv1"]},
    {"name": "avg_ceil0", "op": "avgpool2d", "kernel": 2, "stride": 2, "ceil_mode": true, "inputs": ["conv1"]},
    {"name": "avg_nopad", "op": "avgpool2d", "kernel": 3, "stride": 2, "padding": 1, "count_include_pad": false, "inputs": ["conv1"]},
    {"name": "adaptive", "op": "adaptive_avgpool2d", "output_size": 5, "inputs": ["conv1"]},
    {"name": "adaptive_up", "op": "adaptive_avgpool2d", "output_size": [3, 17], "inputs": ["conv1"]},
    {"name": "gap", "op": "global_avgpool2d", "inputs": ["adaptive"]},
    {"name": "flatten", "op": "flatten"},
    {"name": "fc", "op": "dense", "out_features": 3}
  ]
}"#;

/// The engine against candle on every pooling form within 1e-5; each pool's border neuron (the
/// last, where ceil mode clips its window, and the first, in the padding) is reproduced by its
/// query's inputs, and its receptive field is the window.
#[test]
fn engine_matches_candle_on_every_pooling() {
    let model = Model::parse(POOLING_MODEL, Path::new("<pooling>/model.json")).unwrap();
    let weights = nn::synthetic::random_weights(&model, 11).unwrap();
    let (engine, candle) = engine_and_candle(&model, &weights, &spread_input(&model));
    let dims = |name: &str| model.layers.iter().find(|l| l.name == name).unwrap().shape.dims();
    assert_eq!(dims("max_ceil"), [4, 7, 7]);
    assert_eq!(dims("max_ceil0"), [4, 7, 7]);
    assert_eq!(dims("max_ceil_drop"), [4, 5, 7]);
    assert_eq!(dims("avg_ceil0"), [4, 7, 7]);
    assert_eq!(dims("adaptive_up"), [4, 3, 17]);
    let mut pools = 0;
    for (i, layer) in model.layers.iter().enumerate() {
        let (a, b) = (&engine.layers[i], &candle.layers[i]);
        let worst = relative_error(a, b);
        assert!(
            worst <= 1e-5,
            "layer {}: engine differs from candle by {worst:e}",
            layer.name
        );
        if nn::pool::windows(&layer.op, (13, 13), (1, 1)).is_none() {
            continue;
        }
        pools += 1;
        for off in [0, a.len() - 1] {
            let index = layer.shape.index_of(off);
            let info = nn::query::neuron(&model, &weights, &engine, i, &index).unwrap();
            let sum: f32 = info.inputs.iter().map(|x| x.contribution.unwrap()).sum();
            assert!(
                (sum - info.value).abs() <= 1e-5 * info.value.abs().max(1.0),
                "{} {index:?}: inputs sum to {sum}, value {}",
                layer.name,
                info.value
            );
            let field = nn::query::receptive_field(&model, i, &index).unwrap();
            let Some(Region::Map { y, x, .. }) = &field[1] else {
                panic!("{}: no field in conv1", layer.name)
            };
            let ys = info.inputs.iter().map(|n| n.index[1]);
            let xs = info.inputs.iter().map(|n| n.index[2]);
            assert_eq!(*y, (ys.clone().min().unwrap(), ys.max().unwrap()), "{}", layer.name);
            assert_eq!(*x, (xs.clone().min().unwrap(), xs.max().unwrap()), "{}", layer.name);
        }
    }
    assert_eq!(pools, 9);
    // The last ceil-mode window of `avg_ceil` (rows 11..13 of 13 plus one padding row, not a
    // fourth past the padded edge): divided by 3 per axis, while `avg_ceil0`'s (row 12 only)
    // divides by 1 per axis and `avg_ceil_nopad`'s by the 2 real cells per axis.
    let layer_idx = |name: &str| model.layers.iter().position(|l| l.name == name).unwrap();
    for (name, count) in [("avg_ceil", 9), ("avg_ceil0", 1), ("avg_ceil_nopad", 4)] {
        let i = layer_idx(name);
        let last = model.layers[i].shape.elements() - 1;
        let info = nn::query::neuron(&model, &weights, &engine, i, &model.layers[i].shape.index_of(last)).unwrap();
        let w = info.inputs[0].weight.unwrap();
        assert!((w - 1.0 / count as f32).abs() < 1e-7, "{name}: weight {w}");
    }
}

/// A small CNN through every op real CNNs add to the plain stack (tests/fixtures/ops_model.json):
/// broadcasting add/sub/mul/div of two inputs and by constants, prelu per channel and per feature,
/// channel shuffle, slices of channels and features, layer norm over channels and features, pad,
/// upsample (nearest, bilinear, align_corners), transposed convs (strided with output padding;
/// grouped with unequal stride, padding and dilation; stride above the kernel, cropped).
const OPS_MODEL: &str = include_str!("fixtures/ops_model.json");

/// The engine against candle on every layer of the ops model within 1e-5, with every new op there.
#[test]
fn engine_matches_candle_on_cnn_ops() {
    let model = Model::parse(OPS_MODEL, Path::new("<cnn ops>/model.json")).unwrap();
    let weights = nn::synthetic::random_weights(&model, 5).unwrap();
    let (engine, candle) = engine_and_candle(&model, &weights, &spread_input(&model));
    let dims = |name: &str| model.layers.iter().find(|l| l.name == name).unwrap().shape.dims();
    assert_eq!(dims("outer"), [6, 8, 8]);
    assert_eq!(dims("diffc"), [6, 8, 8]);
    let mut ops = std::collections::BTreeSet::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let worst = relative_error(&engine.layers[i], &candle.layers[i]);
        assert!(
            worst <= 1e-5,
            "layer {}: engine differs from candle by {worst:e}",
            layer.name
        );
        ops.insert(layer.op.name());
    }
    assert_eq!(dims("half"), [3, 8, 8]);
    assert_eq!(dims("fc_slice"), [3]);
    for op in [
        "add",
        "sub",
        "mul",
        "div",
        "prelu",
        "channel_shuffle",
        "slice",
        "layernorm",
    ] {
        assert!(ops.contains(op), "{op} missing from the ops model");
    }
}

/// Training's forward pass stays differentiable through every new op: every parameter of the ops
/// model (constants, slopes, layer norms, transposed convs, the grouped one with unequal dilation
/// included) gets a nonzero gradient from a loss on every layer's output.
#[test]
fn every_parameter_of_the_cnn_ops_gets_a_gradient() {
    use candle_core::{Device, Tensor, Var};
    let model = Model::parse(OPS_MODEL, Path::new("<cnn ops>/model.json")).unwrap();
    let weights = nn::synthetic::random_weights(&model, 5).unwrap();
    let mut vars = Vec::new();
    let params: Vec<nn::weights::LayerParams> = weights
        .layers
        .iter()
        .map(|p| {
            let mut v = |t: &Option<Tensor>| {
                t.as_ref().map(|t| {
                    let var = Var::from_tensor(t).unwrap();
                    vars.push(var.clone());
                    var.as_tensor().clone()
                })
            };
            nn::weights::LayerParams {
                weight: v(&p.weight),
                bias: v(&p.bias),
                running_mean: p.running_mean.clone(),
                running_var: p.running_var.clone(),
            }
        })
        .collect();
    let mut dims = vec![2];
    dims.extend(model.input.shape.dims());
    let raw: Vec<f32> = (0..2 * model.input.shape.elements())
        .map(|i| ((i * 37) % 101) as f32 / 25.0 - 2.0)
        .collect();
    let x = Tensor::from_vec(raw, dims.as_slice(), &Device::Cpu).unwrap();
    let outs = nn::forward::forward_batch(&model, &params, &x).unwrap();
    let mut loss = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu).unwrap();
    for o in &outs {
        loss = (loss + o.sqr().unwrap().mean_all().unwrap()).unwrap();
    }
    let grads = loss.backward().unwrap();
    for (layer, p) in model.layers.iter().zip(&params) {
        for t in [&p.weight, &p.bias].into_iter().flatten() {
            let g = grads.get(t).unwrap_or_else(|| panic!("{}: no gradient", layer.name));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0 && norm.is_finite(), "{}: gradient norm {norm}", layer.name);
        }
    }
    assert!(vars.len() > 20);
}

/// Grouped and depthwise convolutions of every geometry the zoo uses (stride 1 and 2, padding,
/// dilation, 5×5, asymmetric kernels, a depth multiplier, ResNeXt-like groups, grouped 1×1), each
/// followed by the batchnorm and relu the engine fuses into it (or a relu6, a pass of its own), at
/// sizes that take the parallel paths: the engine's own kernels (nn::grouped) against candle's
/// conv2d within 1e-5.
const GROUPED_MODEL: &str = r#"{
  "format": "netwalk-model/1", "name": "grouped", "weights": "weights.safetensors",
  "input": {"name": "x", "shape": [32, 29, 31]},
  "layers": [
    {"name": "dw", "op": "conv2d", "out_channels": 32, "kernel": 3, "padding": 1, "groups": 32, "bias": null},
    {"name": "dw_bn", "op": "batchnorm2d"},
    {"name": "dw_relu", "op": "relu"},
    {"name": "dw_s2", "op": "conv2d", "out_channels": 32, "kernel": 3, "stride": 2, "padding": 1, "groups": 32},
    {"name": "dw5", "op": "conv2d", "out_channels": 32, "kernel": 5, "padding": 2, "groups": 32, "inputs": ["x"]},
    {"name": "dw5_s2", "op": "conv2d", "out_channels": 32, "kernel": 5, "stride": 2, "padding": 2, "groups": 32, "inputs": ["x"]},
    {"name": "dw_dil", "op": "conv2d", "out_channels": 32, "kernel": 3, "padding": 2, "dilation": 2, "groups": 32, "inputs": ["x"]},
    {"name": "dw_asym", "op": "conv2d", "out_channels": 32, "kernel": [1, 7], "padding": [0, 3], "groups": 32, "inputs": ["x"]},
    {"name": "dw_nopad", "op": "conv2d", "out_channels": 32, "kernel": 3, "stride": [2, 1], "groups": 32, "inputs": ["x"]},
    {"name": "dw_mult", "op": "conv2d", "out_channels": 64, "kernel": 3, "padding": 1, "groups": 32, "inputs": ["x"]},
    {"name": "g8", "op": "conv2d", "out_channels": 64, "kernel": 3, "padding": 1, "groups": 8, "inputs": ["x"]},
    {"name": "g8_bn", "op": "batchnorm2d"},
    {"name": "g8_relu6", "op": "relu6"},
    {"name": "g4_s2", "op": "conv2d", "out_channels": 32, "kernel": 3, "stride": 2, "padding": 1, "groups": 4, "inputs": ["x"]},
    {"name": "g2_1x1", "op": "conv2d", "out_channels": 16, "kernel": 1, "groups": 2, "inputs": ["x"]}
  ]
}"#;

#[test]
fn engine_matches_candle_on_grouped_and_depthwise_convolutions() {
    let model = Model::parse(GROUPED_MODEL, Path::new("<grouped>/model.json")).unwrap();
    let weights = nn::synthetic::random_weights(&model, 13).unwrap();
    let (engine, candle) = engine_and_candle(&model, &weights, &spread_input(&model));
    for (i, layer) in model.layers.iter().enumerate() {
        let worst = relative_error(&engine.layers[i], &candle.layers[i]);
        assert!(
            worst <= 1e-5,
            "layer {} ({}): engine differs from candle by {worst:e}",
            layer.name,
            layer.shape
        );
    }
    let dims = |name: &str| model.layers.iter().find(|l| l.name == name).unwrap().shape.dims();
    assert_eq!(dims("dw_s2"), [32, 15, 16]);
    // The fused relu6 clamps: some values reach 6 (and none pass it), some are cut to 0.
    let li = model.layers.iter().position(|l| l.name == "g8_relu6").unwrap();
    let v = &engine.layers[li];
    assert!(v.contains(&6.0) && v.iter().all(|&x| x <= 6.0) && v.contains(&0.0));
    assert_eq!(dims("dw_nopad"), [32, 14, 29]);
}

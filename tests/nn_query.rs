//! Neuron queries and receptive fields, checked against the forward pass itself (which the
//! reference test checks against onnxruntime).

use std::path::{Path, PathBuf};

use netwalk::nn::query::{Region, neuron, receptive_field};
use netwalk::nn::{self, Model, Op, Shape, Source, Weights};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference")
        .join(name)
}

fn load(name: &str) -> (Model, Weights, Vec<f32>) {
    let dir = fixture(name);
    let model = Model::load(&dir).unwrap();
    let weights = Weights::load(&model).unwrap();
    let input = nn::load_input(&model, &dir.join("input.safetensors")).unwrap();
    (model, weights, input)
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
}

/// For every layer of every reference model, a spread of neurons: contributions + bias add up to
/// the pre-activation (conv/dense/batchnorm), pools to the value; inputs point at real activations.
#[test]
fn contributions_add_up_for_every_op() {
    let mut checked = std::collections::BTreeSet::new();
    for case in [
        "basic",
        "stride_pad_dilation",
        "groups_bn",
        "residual_concat",
        "explicit_names",
    ] {
        let (model, weights, input) = load(case);
        let acts = nn::forward(&model, &weights, &input).unwrap();
        for (li, layer) in model.layers.iter().enumerate() {
            let n = layer.shape.elements();
            for off in [0, n / 3, n / 2, n - 1] {
                let index = layer.shape.index_of(off);
                let info = neuron(&model, &weights, &acts, li, &index).unwrap();
                assert_eq!(info.value, acts.layers[li][off]);
                for inp in &info.inputs {
                    let shape = model.source_shape(inp.source);
                    let o = shape.offset(&inp.index).expect("input index inside its layer");
                    assert_eq!(inp.activation, acts.source(inp.source)[o], "{case}/{}", layer.name);
                }
                let sum: f32 = info.inputs.iter().filter_map(|i| i.contribution).sum();
                match &layer.op {
                    Op::Conv2d { .. } | Op::Dense { .. } | Op::BatchNorm2d { .. } => {
                        let pre = info.pre_activation.unwrap();
                        assert!(
                            close(sum + info.bias.unwrap(), pre),
                            "{case}/{} {index:?}: {sum} + {:?} != {pre}",
                            layer.name,
                            info.bias
                        );
                        // Sorted by |contribution|, largest first.
                        let c: Vec<f32> = info.inputs.iter().map(|i| i.contribution.unwrap().abs()).collect();
                        assert!(c.windows(2).all(|w| w[0] >= w[1]), "{case}/{} not sorted", layer.name);
                    }
                    Op::MaxPool2d { .. }
                    | Op::AvgPool2d { .. }
                    | Op::AdaptiveAvgPool2d { .. }
                    | Op::GlobalAvgPool2d
                    | Op::Add
                    | Op::Sub
                    | Op::Flatten
                    | Op::Concat => {
                        assert!(
                            close(sum, info.value),
                            "{case}/{} {index:?}: {sum} != {}",
                            layer.name,
                            info.value
                        );
                    }
                    Op::Relu
                    | Op::Sigmoid
                    | Op::Tanh
                    | Op::Relu6
                    | Op::Clip { .. }
                    | Op::Hardswish
                    | Op::Hardsigmoid
                    | Op::Silu
                    | Op::Gelu { .. }
                    | Op::LeakyRelu { .. }
                    | Op::Elu { .. }
                    | Op::PRelu
                    | Op::Softmax => {
                        assert_eq!(info.inputs.len(), 1);
                        assert_eq!(info.pre_activation, Some(info.inputs[0].activation));
                    }
                    // Not in the reference models: see `cnn_ops_queries_reproduce_their_values`.
                    Op::Mul
                    | Op::Div
                    | Op::ChannelShuffle { .. }
                    | Op::Slice { .. }
                    | Op::LayerNorm { .. }
                    | Op::Pad { .. }
                    | Op::Upsample { .. }
                    | Op::ConvTranspose2d { .. } => {
                        unreachable!("{case}/{}", layer.name)
                    }
                }
                if let Op::Conv2d { kernel, groups, .. } = &layer.op {
                    let cin = model.source_shape(layer.inputs[0]).channels() / groups;
                    assert!(info.inputs.len() <= cin * kernel.0 * kernel.1);
                }
                checked.insert(layer.op.name());
            }
        }
    }
    assert_eq!(checked.len(), 13, "ops covered: {checked:?}");
}

/// In the demo-shaped `basic` case, the receptive field is what the arithmetic says.
#[test]
fn receptive_field_of_conv_stack_is_computed_exactly() {
    let (model, _, _) = load("basic");
    // basic: conv1 k3 p1 -> relu -> maxpool k2 -> conv2 k3 p0 -> relu -> flatten -> dense -> softmax
    let conv2 = model.layer_index("conv2").unwrap();
    let rf = receptive_field(&model, conv2, &[1, 2, 3]).unwrap();
    // conv2 (no padding) at (2,3) reads pool rows 2..4, cols 3..5 of all 4 channels;
    // pool k2 doubles that to rows 4..9, cols 6..11; conv1 k3 p1 widens by one on each side.
    let pool = model
        .layer_index("pool1")
        .or_else(|| model.layers.iter().position(|l| matches!(l.op, Op::MaxPool2d { .. })))
        .unwrap();
    assert_eq!(
        rf[pool + 1],
        Some(Region::Map {
            channels: (0..4).collect(),
            y: (2, 4),
            x: (3, 5)
        })
    );
    assert_eq!(
        rf[0],
        Some(Region::Map {
            channels: [0].into(),
            y: (3, 10),
            x: (5, 11)
        })
    );
    assert_eq!(rf[conv2 + 1], None, "a neuron is not in its own receptive field");
    // A dense neuron sees everything before it.
    let dense = model
        .layers
        .iter()
        .position(|l| matches!(l.op, Op::Dense { .. }))
        .unwrap();
    let rf = receptive_field(&model, dense, &[0]).unwrap();
    assert_eq!(rf[0].as_ref().unwrap().count(), model.input.shape.elements());
}

/// Soundness on every reference model: changing an input pixel outside a neuron's receptive field
/// never changes the neuron; and some pixel inside it does.
#[test]
fn receptive_field_contains_every_influencing_pixel() {
    for case in ["basic", "stride_pad_dilation", "groups_bn", "residual_concat"] {
        let (model, weights, input) = load(case);
        fields_are_sound(case, &model, &weights, &input);
    }
    let (model, weights) = ops_model();
    let input: Vec<f32> = (0..model.input.shape.elements())
        .map(|i| (i % 7) as f32 * 0.3 - 1.0)
        .collect();
    fields_are_sound("cnn ops", &model, &weights, &input);
}

/// The centre neuron of every map layer: no input pixel outside its receptive field changes it,
/// some pixel inside does, and it depends on its direct inputs (on one of them, for a concat).
fn fields_are_sound(case: &str, model: &Model, weights: &Weights, input: &[f32]) {
    let base = nn::forward(model, weights, input).unwrap();
    for (li, layer) in model.layers.iter().enumerate() {
        let Shape::Chw(_, h, w) = layer.shape else { continue };
        let index = vec![0, h / 2, w / 2];
        let off = layer.shape.offset(&index).unwrap();
        let rf = receptive_field(model, li, &index).unwrap();
        let Some(Region::Map { channels, y, x }) = &rf[0] else {
            panic!("{case}/{}: no input region", layer.name)
        };
        let Shape::Chw(c, ih, iw) = model.input.shape else {
            unreachable!()
        };
        let mut inside_changed = false;
        for ch in 0..c {
            for py in 0..ih {
                for px in 0..iw {
                    let mut x2 = input.to_vec();
                    x2[(ch * ih + py) * iw + px] += 5.0;
                    let v = nn::forward(model, weights, &x2).unwrap().layers[li][off];
                    let changed = (v - base.layers[li][off]).abs() > 1e-6;
                    let inside = channels.contains(&ch) && (y.0..=y.1).contains(&py) && (x.0..=x.1).contains(&px);
                    assert!(
                        inside || !changed,
                        "{case}/{}: pixel {ch},{py},{px} outside {:?} changed the neuron",
                        layer.name,
                        rf[0]
                    );
                    inside_changed |= changed;
                }
            }
        }
        assert!(
            inside_changed,
            "{case}/{}: no pixel inside the field mattered",
            layer.name
        );
        let with_region = layer.inputs.iter().filter(|&&s| {
            let slot = match s {
                Source::Input => 0,
                Source::Layer(i) => i + 1,
            };
            rf[slot].is_some()
        });
        match layer.op {
            Op::Concat => assert_eq!(with_region.count(), 1, "{case}/{}", layer.name),
            _ => assert_eq!(with_region.count(), layer.inputs.len(), "{case}/{}", layer.name),
        }
    }
}

/// The CNN through every op real CNNs add to the plain stack (tests/fixtures/ops_model.json), with
/// random weights.
fn ops_model() -> (Model, Weights) {
    let model = Model::parse(
        include_str!("fixtures/ops_model.json"),
        Path::new("<cnn ops>/model.json"),
    )
    .unwrap();
    let weights = nn::synthetic::random_weights(&model, 5).unwrap();
    (model, weights)
}

/// A parameter tensor of layer `li`, flattened.
fn param(weights: &Weights, li: usize, role: nn::model::ParamRole) -> Vec<f32> {
    weights.layers[li]
        .get(role)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Every neuron of every layer of the ops model: its query's inputs are real activations and
/// reproduce its value (add/sub: contributions + the constant as bias; mul/div by a constant: the
/// input's contribution; of two inputs: the product / quotient of the factors; prelu: its input
/// through the slope; shuffle and slice: the one input copied, the shuffle's as ShuffleNet's
/// reshape-transpose-reshape puts it; layer norm: its own input's contribution and the bias; pad:
/// the input copied, or on the border none and the value as bias; upsample: the interpolation
/// weights; transposed conv: the taps reaching it and the bias).
#[test]
fn cnn_ops_queries_reproduce_their_values() {
    let (model, weights) = ops_model();
    let input: Vec<f32> = (0..model.input.shape.elements())
        .map(|i| ((i * 37) % 101) as f32 / 12.0 - 4.0)
        .collect();
    let acts = nn::forward(&model, &weights, &input).unwrap();
    let mut checked = std::collections::BTreeSet::new();
    for (li, layer) in model.layers.iter().enumerate() {
        for off in 0..layer.shape.elements() {
            let index = layer.shape.index_of(off);
            let info = neuron(&model, &weights, &acts, li, &index).unwrap();
            for inp in &info.inputs {
                let o = model.source_shape(inp.source).offset(&inp.index).unwrap();
                assert_eq!(inp.activation, acts.source(inp.source)[o], "{}", layer.name);
            }
            let contributions: f32 = info.inputs.iter().filter_map(|i| i.contribution).sum();
            let factors: Vec<f32> = info.inputs.iter().map(|i| i.activation).collect();
            let got = match (&layer.op, layer.inputs.len()) {
                (Op::Add | Op::Sub, _) => contributions + info.bias.unwrap_or(0.0),
                (Op::Mul | Op::Div, 1) => {
                    assert_eq!(info.inputs.len(), 1);
                    contributions
                }
                (Op::Mul, _) => factors[0] * factors[1],
                (Op::Div, _) => factors[0] / factors[1],
                (Op::PRelu, _) => {
                    let w = param(&weights, li, nn::model::ParamRole::Weight);
                    let x = info.pre_activation.unwrap();
                    assert_eq!(x, factors[0]);
                    if x >= 0.0 { x } else { w[index[0]] * x }
                }
                (Op::ChannelShuffle { groups }, _) => {
                    assert_eq!(info.inputs.len(), 1);
                    // reshape(g, C/g) - transpose - reshape: out channel j * g + i <- i * (C/g) + j.
                    let (g, per) = (*groups, layer.shape.channels() / groups);
                    let (i, j) = (index[0] % g, index[0] / g);
                    assert_eq!(info.inputs[0].index, [i * per + j, index[1], index[2]]);
                    contributions
                }
                (Op::Slice { start, .. }, _) => {
                    assert_eq!(info.inputs.len(), 1);
                    assert_eq!(info.inputs[0].index[0], index[0] + start);
                    contributions
                }
                (Op::LayerNorm { .. }, _) => {
                    assert_eq!(info.inputs.len(), layer.shape.channels());
                    assert_eq!(info.inputs[0].index, index, "its own input first");
                    contributions + info.bias.unwrap()
                }
                (Op::Pad { padding, value }, _) => {
                    let Shape::Chw(_, h, w) = model.source_shape(layer.inputs[0]) else {
                        unreachable!()
                    };
                    let inside = (padding[0]..padding[0] + h).contains(&index[1])
                        && (padding[1]..padding[1] + w).contains(&index[2]);
                    assert_eq!(info.inputs.len(), usize::from(inside), "{index:?}");
                    if inside {
                        assert_eq!(
                            info.inputs[0].index,
                            [index[0], index[1] - padding[0], index[2] - padding[1]]
                        );
                    } else {
                        assert_eq!(info.bias, Some(*value));
                    }
                    contributions + info.bias.unwrap_or(0.0)
                }
                (Op::Upsample { bilinear, .. }, _) => {
                    assert!(info.inputs.len() <= if *bilinear { 4 } else { 1 });
                    contributions
                }
                (Op::ConvTranspose2d { kernel, groups, .. }, _) => {
                    let cin = model.source_shape(layer.inputs[0]).channels() / groups;
                    assert!(info.inputs.len() <= cin * kernel.0 * kernel.1);
                    assert!(
                        info.inputs
                            .iter()
                            .all(|i| i.index[0] / cin == index[0] / (layer.shape.channels() / groups))
                    );
                    contributions + info.bias.unwrap()
                }
                _ => continue,
            };
            assert!(
                close(got, info.value),
                "{} {index:?}: the query gives {got}, the neuron is {}",
                layer.name,
                info.value
            );
            checked.insert(layer.op.name());
        }
    }
    assert_eq!(checked.len(), 11, "ops covered: {checked:?}");
}

/// Tracing back from the demo's output reaches the input pixels through every layer.
#[test]
fn trace_reaches_the_input_from_the_demo_output() {
    let model = Model::load(&nn::demo::demo_dir().unwrap()).unwrap();
    let last = model.layers.len() - 1;
    let rf = receptive_field(&model, last, &[3]).unwrap();
    assert!(
        rf[..=last].iter().all(Option::is_some),
        "every earlier layer is on the path"
    );
    let conv2 = model.layer_index("conv2").unwrap();
    // conv2 k3 p1 at (7,7) -> pool1 rows 6..8 -> relu1/conv1 rows 12..17 -> input rows 11..18.
    let rf = receptive_field(&model, conv2, &[0, 7, 7]).unwrap();
    let conv1 = model.layer_index("conv1").unwrap();
    assert_eq!(
        rf[conv1 + 1],
        Some(Region::Map {
            channels: (0..8).collect(),
            y: (12, 17),
            x: (12, 17)
        })
    );
    assert_eq!(
        rf[0],
        Some(Region::Map {
            channels: [0].into(),
            y: (11, 18),
            x: (11, 18)
        })
    );
}

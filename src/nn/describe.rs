//! What a layer does, in a few words for the scene's block labels and `info`: "conv 3×3 /2",
//! "depthwise conv 3×3", "× gate (squeeze-excitation)", "channel shuffle ×2", "upsample ×2 bilinear".
//! A visitor reading a block in the room should know which operation made it without the model file.

use super::model::{Layer, Model, Op, Pair, Shape};

fn pair(p: Pair) -> String {
    if p.0 == p.1 {
        format!("{}", p.0)
    } else {
        format!("{}×{}", p.0, p.1)
    }
}

fn kernel(k: Pair) -> String {
    format!("{}×{}", k.0, k.1)
}

fn stride(s: Pair) -> String {
    if s == (1, 1) {
        String::new()
    } else {
        format!(" /{}", pair(s))
    }
}

/// One layer of `model`, in a few words.
pub fn layer(model: &Model, layer: &Layer) -> String {
    let in_shape = layer.inputs.first().map(|&s| model.source_shape(s));
    let in_channels = in_shape.map(|s| s.channels()).unwrap_or(0);
    match &layer.op {
        Op::Conv2d {
            kernel: k,
            stride: s,
            dilation: d,
            groups,
            ..
        } => {
            let kind = match *groups {
                1 => String::from("conv"),
                g if g == in_channels => String::from("depthwise conv"),
                g => format!("grouped conv (g{g})"),
            };
            let dil = if *d == (1, 1) {
                String::new()
            } else {
                format!(" dil {}", pair(*d))
            };
            format!("{kind} {}{}{dil}", kernel(*k), stride(*s))
        }
        Op::ConvTranspose2d {
            kernel: k, stride: s, ..
        } => format!("transposed conv {}{}", kernel(*k), stride(*s)),
        Op::Dense { .. } => "dense".into(),
        Op::BatchNorm2d { .. } => "batch norm".into(),
        Op::MaxPool2d {
            kernel: k, stride: s, ..
        } => format!("max pool {}{}", kernel(*k), stride(*s)),
        Op::AvgPool2d {
            kernel: k, stride: s, ..
        } => format!("avg pool {}{}", kernel(*k), stride(*s)),
        Op::AdaptiveAvgPool2d { output } => format!("adaptive avg pool → {}", kernel(*output)),
        Op::GlobalAvgPool2d => "global avg pool".into(),
        Op::Flatten => "flatten".into(),
        Op::Relu => "relu".into(),
        Op::Sigmoid => "sigmoid".into(),
        Op::Tanh => "tanh".into(),
        Op::Relu6 => "relu6".into(),
        Op::Clip { min, max } => format!("clip {min}…{max}"),
        Op::Hardswish => "hardswish".into(),
        Op::Hardsigmoid => "hardsigmoid".into(),
        Op::Silu => "silu".into(),
        Op::Gelu { tanh } => if *tanh { "gelu (tanh)" } else { "gelu" }.into(),
        Op::LeakyRelu { .. } => "leaky relu".into(),
        Op::Elu { .. } => "elu".into(),
        Op::PRelu => "prelu".into(),
        Op::Softmax => "softmax".into(),
        Op::Add | Op::Sub | Op::Mul | Op::Div => binary(model, layer),
        Op::Concat => format!("concat of {}", layer.inputs.len()),
        Op::ChannelShuffle { groups } => format!("channel shuffle ×{groups}"),
        Op::Slice { start, end } => format!("channels {start}…{}", end.saturating_sub(1)),
        Op::LayerNorm { .. } => "layer norm".into(),
        Op::Pad {
            padding: [t, l, b, r], ..
        } => format!("pad {t},{l},{b},{r}"),
        Op::Upsample { bilinear, .. } => {
            let mode = if *bilinear { "bilinear" } else { "nearest" };
            match (in_shape, layer.shape) {
                (Some(Shape::Chw(_, h, w)), Shape::Chw(_, oh, ow)) if h > 0 && w > 0 && oh % h == 0 && ow % w == 0 => {
                    format!("upsample ×{} {mode}", pair((oh / h, ow / w)))
                }
                _ => format!("resize {mode}"),
            }
        }
    }
}

/// Add/sub/mul/div by what they are in a CNN: a residual join, a gate, a layer scale.
fn binary(model: &Model, layer: &Layer) -> String {
    let sym = match layer.op {
        Op::Add => "+",
        Op::Sub => "−",
        Op::Mul => "×",
        _ => "÷",
    };
    if layer.inputs.len() < 2 {
        return format!("{sym} constant");
    }
    let shapes: Vec<Shape> = layer.inputs.iter().map(|&s| model.source_shape(s)).collect();
    let gate = shapes.iter().any(|s| matches!(s, Shape::Chw(_, 1, 1)))
        && matches!(layer.shape, Shape::Chw(_, h, w) if h * w > 1);
    match (&layer.op, gate) {
        (Op::Add, false) if layer.inputs.len() == 2 => "+ residual".into(),
        (Op::Add, false) => format!("sum of {}", layer.inputs.len()),
        (Op::Mul, true) => "× channel gate".into(),
        _ => format!("{sym} of 2"),
    }
}

/// A displayed block's layers, first to last, joined by arrows ("conv 3×3 → batch norm → relu");
/// empty for the input (no layers: its label already says "input").
pub fn block(model: &Model, layers: &[usize]) -> String {
    layers
        .iter()
        .filter_map(|&i| model.layers.get(i))
        .map(|l| layer(model, l))
        .collect::<Vec<_>>()
        .join(" → ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_say_what_they_are() {
        let model = Model::parse(
            include_str!("../../tests/fixtures/ops_model.json"),
            std::path::Path::new("<cnn ops>/model.json"),
        )
        .expect("ops fixture");
        let what = |name: &str| {
            let l = model.layers.iter().find(|l| l.name == name).expect(name);
            layer(&model, l)
        };
        assert_eq!(what("conv1"), "conv 3×3");
        assert_eq!(what("se"), "× channel gate");
        assert_eq!(what("scale"), "× constant");
        assert_eq!(what("res"), "+ residual");
        assert_eq!(what("sum3"), "sum of 3");
        assert_eq!(what("shuffle"), "channel shuffle ×3");
        assert_eq!(what("half"), "channels 2…4");
        assert_eq!(what("up"), "upsample ×2 nearest");
        assert_eq!(what("up_odd"), "resize nearest");
        assert_eq!(what("up_corners"), "upsample ×2×3 bilinear");
        assert_eq!(what("deconv"), "transposed conv 3×3 /2");
        assert_eq!(what("padded"), "pad 1,0,2,3");
        assert_eq!(what("gap"), "global avg pool");
        assert_eq!(block(&model, &[0, 1]), "conv 3×3 → prelu");
        assert_eq!(block(&model, &[]), "", "the input's label already says input");
    }

    #[test]
    fn depthwise_and_grouped_convolutions_are_named() {
        let json = r#"{"format": "netwalk-model/1", "name": "g", "weights": "w.safetensors", "input": {"name": "x", "shape": [8, 6, 6]},
            "layers": [{"name": "dw", "op": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "groups": 8},
                       {"name": "gc", "op": "conv2d", "out_channels": 8, "kernel": 1, "groups": 2},
                       {"name": "dil", "op": "conv2d", "out_channels": 8, "kernel": 3, "dilation": 2, "padding": 2}]}"#;
        let model = Model::parse(json, std::path::Path::new("g/model.json")).expect("model");
        let d: Vec<String> = model.layers.iter().map(|l| layer(&model, l)).collect();
        assert_eq!(d, ["depthwise conv 3×3 /2", "grouped conv (g2) 1×1", "conv 3×3 dil 2"]);
    }
}

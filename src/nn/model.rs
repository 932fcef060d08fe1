//! The `netwalk-model/1` model in memory: shapes, ops, layers and their parameters, checked when
//! loaded (by [`super::parse`] from `model.json`, each op by [`super::ops`]), and what the rest of
//! the program asks of a model.

use std::path::PathBuf;

use super::error::{NnError, Result};

pub const FORMAT: &str = "netwalk-model/1";

/// Most activations one layer may have; larger models are refused before anything is allocated.
pub const MAX_LAYER_ELEMENTS: usize = 1 << 28;
/// Most activations in the whole model (f32: 4 GiB).
pub const MAX_TOTAL_ELEMENTS: usize = 1 << 30;
/// Largest kernel side, stride, padding, dilation or channel count accepted.
pub(super) const MAX_DIM: usize = 1 << 20;

/// A layer output shape: `[C, H, W]` or `[N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Chw(usize, usize, usize),
    Flat(usize),
}

impl Shape {
    pub fn elements(&self) -> usize {
        match *self {
            Shape::Chw(c, h, w) => c * h * w,
            Shape::Flat(n) => n,
        }
    }
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Chw(c, h, w) => vec![c, h, w],
            Shape::Flat(n) => vec![n],
        }
    }
    /// Number of "channels": C for maps, N for vectors.
    pub fn channels(&self) -> usize {
        match *self {
            Shape::Chw(c, _, _) => c,
            Shape::Flat(n) => n,
        }
    }
    /// Row-major flat offset of a neuron index (`[c, y, x]` or `[i]`), `None` if out of range.
    pub fn offset(&self, index: &[usize]) -> Option<usize> {
        match (*self, index) {
            (Shape::Chw(c, h, w), &[ic, iy, ix]) if ic < c && iy < h && ix < w => Some((ic * h + iy) * w + ix),
            (Shape::Flat(n), &[i]) if i < n => Some(i),
            _ => None,
        }
    }
    /// The neuron index of a flat offset.
    pub fn index_of(&self, offset: usize) -> Vec<usize> {
        match *self {
            Shape::Chw(_, h, w) => vec![offset / (h * w), (offset / w) % h, offset % w],
            Shape::Flat(_) => vec![offset],
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Chw(c, h, w) => write!(f, "[{c}, {h}, {w}]"),
            Shape::Flat(n) => write!(f, "[{n}]"),
        }
    }
}

/// Height/width pair of a 2-D attribute.
pub type Pair = (usize, usize);

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv2d {
        out_channels: usize,
        kernel: Pair,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: usize,
    },
    Dense {
        out_features: usize,
    },
    BatchNorm2d {
        eps: f32,
    },
    /// `ceil_mode` as PyTorch's (see [`super::pool`]).
    MaxPool2d {
        kernel: Pair,
        stride: Pair,
        padding: Pair,
        ceil_mode: bool,
    },
    /// `ceil_mode` and `count_include_pad` as PyTorch's (see [`super::pool`]).
    AvgPool2d {
        kernel: Pair,
        stride: Pair,
        padding: Pair,
        ceil_mode: bool,
        count_include_pad: bool,
    },
    /// PyTorch's AdaptiveAvgPool2d to `output` (rows, columns).
    AdaptiveAvgPool2d {
        output: Pair,
    },
    GlobalAvgPool2d,
    Flatten,
    Relu,
    Sigmoid,
    Tanh,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `min(max(x, min), max)` (PyTorch's Hardtanh).
    Clip {
        min: f32,
        max: f32,
    },
    /// `x * hardsigmoid(x)`.
    Hardswish,
    /// `clamp(x / 6 + 1/2, 0, 1)`.
    Hardsigmoid,
    /// `x * sigmoid(x)` (Swish).
    Silu,
    /// `x * Phi(x)` with the normal CDF `Phi` exact (erf) or, with `tanh`, PyTorch's tanh approximation.
    Gelu {
        tanh: bool,
    },
    /// `x` for `x >= 0`, else `negative_slope * x`.
    LeakyRelu {
        negative_slope: f32,
    },
    /// `x` for `x > 0`, else `alpha * (exp(x) - 1)`.
    Elu {
        alpha: f32,
    },
    Softmax,
    /// Elementwise sum with numpy broadcasting: of 2+ inputs, or of one input and a constant
    /// (`weight`); see [`super::binary`].
    Add,
    /// `a - b` of two inputs, or `x - weight`, broadcast as [`Op::Add`].
    Sub,
    /// `a * b` of two inputs, or `x * weight`, broadcast as [`Op::Add`].
    Mul,
    /// `a / b` of two inputs, or `x / weight`, broadcast as [`Op::Add`].
    Div,
    /// `x` for `x >= 0`, else `weight[c] * x`: one slope per channel (or feature), `[1]` shared.
    PRelu,
    Concat,
    /// ShuffleNet's channel shuffle of `[C, H, W]`: out channel `j * groups + i` is in channel
    /// `i * (C / groups) + j`.
    ChannelShuffle {
        groups: usize,
    },
    /// Channels (of `[N]`: features) `start..end`.
    Slice {
        start: usize,
        end: usize,
    },
    /// `(x - mean) / sqrt(var + eps) * weight + bias` over the channels at each position (of `[N]`:
    /// over the features), the variance biased (ConvNeXt's LayerNorm2d).
    LayerNorm {
        eps: f32,
    },
    /// Constant padding of `[C, H, W]`: `padding` = [top, left, bottom, right] rows/columns of `value`.
    Pad {
        padding: [usize; 4],
        value: f32,
    },
    /// PyTorch's F.interpolate to the layer's output size: nearest (`src = floor(dst * in / out)`)
    /// or bilinear (half-pixel, or `align_corners`); see [`super::resample`].
    Upsample {
        bilinear: bool,
        align_corners: bool,
    },
    /// PyTorch's ConvTranspose2d: weight `[in, out / groups, kh, kw]`; out = (H - 1) * stride -
    /// 2 * padding + dilation * (kernel - 1) + output_padding + 1.
    ConvTranspose2d {
        out_channels: usize,
        kernel: Pair,
        stride: Pair,
        padding: Pair,
        output_padding: Pair,
        dilation: Pair,
        groups: usize,
    },
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "conv2d",
            Op::Dense { .. } => "dense",
            Op::BatchNorm2d { .. } => "batchnorm2d",
            Op::MaxPool2d { .. } => "maxpool2d",
            Op::AvgPool2d { .. } => "avgpool2d",
            Op::AdaptiveAvgPool2d { .. } => "adaptive_avgpool2d",
            Op::GlobalAvgPool2d => "global_avgpool2d",
            Op::Flatten => "flatten",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::Relu6 => "relu6",
            Op::Clip { .. } => "clip",
            Op::Hardswish => "hardswish",
            Op::Hardsigmoid => "hardsigmoid",
            Op::Silu => "silu",
            Op::Gelu { .. } => "gelu",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::Elu { .. } => "elu",
            Op::Softmax => "softmax",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::PRelu => "prelu",
            Op::Concat => "concat",
            Op::ChannelShuffle { .. } => "channel_shuffle",
            Op::Slice { .. } => "slice",
            Op::LayerNorm { .. } => "layernorm",
            Op::Pad { .. } => "pad",
            Op::Upsample { .. } => "upsample",
            Op::ConvTranspose2d { .. } => "conv_transpose2d",
        }
    }
    /// Ops applied neuron by neuron: shown folded into the preceding conv/dense block.
    pub fn is_elementwise(&self) -> bool {
        self.is_activation() || matches!(self, Op::BatchNorm2d { .. } | Op::PRelu)
    }
    /// The elementwise binary ops (broadcasting; two inputs, or one and a constant).
    pub fn is_binary(&self) -> bool {
        matches!(self, Op::Add | Op::Sub | Op::Mul | Op::Div)
    }
    /// Activation functions: one output per input value, `f(x)` without parameters (softmax is not one).
    pub fn is_activation(&self) -> bool {
        matches!(
            self,
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
        )
    }
}

/// Where a layer reads from: the model input or an earlier layer (index into `Model::layers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Input,
    Layer(usize),
}

/// Role of a parameter tensor within its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamRole {
    Weight,
    Bias,
    RunningMean,
    RunningVar,
}

impl ParamRole {
    pub fn suffix(self) -> &'static str {
        match self {
            ParamRole::Weight => "weight",
            ParamRole::Bias => "bias",
            ParamRole::RunningMean => "running_mean",
            ParamRole::RunningVar => "running_var",
        }
    }
}

/// A parameter a layer needs: its tensor name in the weights file and expected shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub role: ParamRole,
    pub tensor: String,
    pub shape: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<Source>,
    pub shape: Shape,
    pub params: Vec<ParamSpec>,
}

impl Layer {
    pub fn param(&self, role: ParamRole) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.role == role)
    }
    /// Inputs feeding one output of a conv/dense layer (weight elements per output channel);
    /// `None` for layers without a weight.
    pub fn fan_in(&self) -> Option<usize> {
        self.param(ParamRole::Weight).map(|w| w.shape[1..].iter().product())
    }
    pub fn param_count(&self) -> usize {
        self.params.iter().map(|p| p.shape.iter().product::<usize>()).sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub shape: Shape,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub label: String,
    pub weights: PathBuf,
}

/// A validated model: layers in an order where every input precedes its reader.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub path: PathBuf,
    pub name: String,
    pub input: InputSpec,
    pub classes: Option<Vec<String>>,
    pub weights: PathBuf,
    pub checkpoints: Vec<Checkpoint>,
    pub samples: Option<PathBuf>,
    pub layers: Vec<Layer>,
}

impl Model {
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }

    pub fn source_shape(&self, src: Source) -> Shape {
        match src {
            Source::Input => self.input.shape,
            Source::Layer(i) => self.layers[i].shape,
        }
    }

    pub fn source_name(&self, src: Source) -> &str {
        match src {
            Source::Input => &self.input.name,
            Source::Layer(i) => &self.layers[i].name,
        }
    }

    pub fn param_count(&self) -> usize {
        self.layers.iter().map(Layer::param_count).sum()
    }

    pub fn activation_count(&self) -> usize {
        self.layers.iter().map(|l| l.shape.elements()).sum()
    }

    /// Index of the layer whose output feeds the loss: the input of a final softmax, else the last.
    pub fn logits_layer(&self) -> Option<usize> {
        let last = self.layers.len().checked_sub(1)?;
        match (&self.layers[last].op, self.layers[last].inputs.as_slice()) {
            (Op::Softmax, [Source::Layer(i)]) => Some(*i),
            _ => Some(last),
        }
    }

    /// Resolve a checkpoint given as a label or an index.
    pub fn checkpoint(&self, key: &str) -> Result<&Checkpoint> {
        if let Some(c) = self.checkpoints.iter().find(|c| c.label == key) {
            return Ok(c);
        }
        if let Ok(i) = key.parse::<usize>()
            && let Some(c) = self.checkpoints.get(i)
        {
            return Ok(c);
        }
        let known: Vec<&str> = self.checkpoints.iter().map(|c| c.label.as_str()).collect();
        Err(NnError::format(
            &self.path,
            format!(
                "no checkpoint `{key}` (the model has {}: {})",
                known.len(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ))
    }
}

//! Each layer op of `netwalk-model/1`: its attributes read from the layer's JSON object, its
//! output shape computed from its inputs' shapes, and the parameter tensors it needs, all checked
//! against the model limits ([`super::model::MAX_LAYER_ELEMENTS`]). The layer graph around them
//! (names, inputs, order) is [`super::parse`]'s.

use std::path::Path;

use serde_json::{Map, Value};

use super::error::{NnError, Result};
use super::model::{Layer, MAX_DIM, MAX_LAYER_ELEMENTS, Op, Pair, ParamRole, ParamSpec, Shape, Source};
use super::pool::{self, pool_out};

/// The attributes each op accepts (besides `name`, `op` and `inputs`); `None` for an unknown op.
fn known_attributes(op_name: &str) -> Option<&'static [&'static str]> {
    Some(match op_name {
        "conv2d" => &[
            "out_channels",
            "kernel",
            "stride",
            "padding",
            "dilation",
            "groups",
            "weight",
            "bias",
        ],
        "dense" => &["out_features", "weight", "bias"],
        "batchnorm2d" => &["eps", "weight", "bias", "running_mean", "running_var"],
        "maxpool2d" => &["kernel", "stride", "padding", "ceil_mode"],
        "avgpool2d" => &["kernel", "stride", "padding", "ceil_mode", "count_include_pad"],
        "adaptive_avgpool2d" => &["output_size"],
        "clip" => &["min", "max"],
        "gelu" => &["approximate"],
        "leaky_relu" => &["negative_slope"],
        "elu" => &["alpha"],
        "add" | "sub" | "mul" | "div" => &["constant", "weight"],
        "prelu" => &["weight"],
        "channel_shuffle" => &["groups"],
        "slice" => &["start", "end"],
        "layernorm" => &["eps", "weight", "bias"],
        "pad" => &["padding", "value"],
        "upsample" => &["scale", "size", "mode", "align_corners"],
        "conv_transpose2d" => &[
            "out_channels",
            "kernel",
            "stride",
            "padding",
            "output_padding",
            "dilation",
            "groups",
            "weight",
            "bias",
        ],
        "global_avgpool2d" | "flatten" | "relu" | "sigmoid" | "tanh" | "relu6" | "hardswish" | "hardsigmoid"
        | "silu" | "softmax" | "concat" => &[],
        _ => return None,
    })
}

/// Layer `name` of model file `file` from its JSON object, reading `inputs` of shapes `in_shapes`.
pub(super) fn layer(
    file: &Path,
    name: &str,
    obj: &Map<String, Value>,
    inputs: Vec<Source>,
    in_shapes: &[Shape],
) -> Result<Layer> {
    let a = Attrs { file, layer: name, obj };
    let op_name = obj
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| a.err("missing \"op\""))?;
    let known = known_attributes(op_name).ok_or_else(|| {
        a.err(format!(
            "unknown op `{op_name}` (known: conv2d, dense, batchnorm2d, maxpool2d, \
             avgpool2d, adaptive_avgpool2d, global_avgpool2d, flatten, relu, sigmoid, tanh, relu6, clip, hardswish, \
             hardsigmoid, silu, gelu, leaky_relu, elu, prelu, softmax, add, sub, mul, div, concat, channel_shuffle, slice, layernorm, pad, upsample, \
             conv_transpose2d)"
        ))
    })?;
    for key in obj.keys() {
        if !matches!(key.as_str(), "name" | "op" | "inputs") && !known.contains(&key.as_str()) {
            return Err(a.err(format!("unknown attribute `{key}` for op `{op_name}`")));
        }
    }
    let ins = Inputs {
        a: &a,
        shapes: in_shapes,
    };
    let mut params = Vec::new();
    let (op, shape) = match op_name {
        "conv2d" => conv2d(&a, ins.chw(op_name)?, &mut params)?,
        "conv_transpose2d" => conv_transpose2d(&a, ins.chw(op_name)?, &mut params)?,
        "pad" => pad(&a, ins.chw(op_name)?)?,
        "upsample" => upsample(&a, ins.chw(op_name)?)?,
        "dense" => dense(&a, ins.single(op_name)?, &mut params)?,
        "batchnorm2d" => batchnorm2d(&a, ins.chw(op_name)?, &mut params)?,
        "maxpool2d" | "avgpool2d" => pool(&a, op_name == "maxpool2d", ins.chw(op_name)?)?,
        "adaptive_avgpool2d" => {
            let (c, _, _) = ins.chw(op_name)?;
            let output = a.pair("output_size", None)?;
            (Op::AdaptiveAvgPool2d { output }, Shape::Chw(c, output.0, output.1))
        }
        "global_avgpool2d" => {
            let (c, _, _) = ins.chw(op_name)?;
            (Op::GlobalAvgPool2d, Shape::Chw(c, 1, 1))
        }
        "flatten" => (Op::Flatten, Shape::Flat(ins.single(op_name)?.elements())),
        "relu" => (Op::Relu, ins.single(op_name)?),
        "sigmoid" => (Op::Sigmoid, ins.single(op_name)?),
        "tanh" => (Op::Tanh, ins.single(op_name)?),
        "relu6" => (Op::Relu6, ins.single(op_name)?),
        "clip" => (clip(&a)?, ins.single(op_name)?),
        "hardswish" => (Op::Hardswish, ins.single(op_name)?),
        "hardsigmoid" => (Op::Hardsigmoid, ins.single(op_name)?),
        "silu" => (Op::Silu, ins.single(op_name)?),
        "gelu" => (gelu(&a)?, ins.single(op_name)?),
        "leaky_relu" => (
            Op::LeakyRelu {
                negative_slope: a.number("negative_slope", Some(0.01))?,
            },
            ins.single(op_name)?,
        ),
        "elu" => (
            Op::Elu {
                alpha: a.number("alpha", Some(1.0))?,
            },
            ins.single(op_name)?,
        ),
        "prelu" => {
            let s = ins.single(op_name)?;
            a.param(&mut params, ParamRole::Weight, vec![s.channels()], false)?;
            (Op::PRelu, s)
        }
        "softmax" => (Op::Softmax, ins.single(op_name)?),
        "add" | "sub" | "mul" | "div" => binary(&a, op_name, in_shapes, &mut params)?,
        "concat" => (Op::Concat, concat(&a, in_shapes)?),
        "channel_shuffle" => {
            let (c, h, w) = ins.chw(op_name)?;
            let groups = a.count("groups", None)?;
            if c % groups != 0 {
                return Err(a.err(format!("groups = {groups} must divide the input channels ({c})")));
            }
            (Op::ChannelShuffle { groups }, Shape::Chw(c, h, w))
        }
        "slice" => slice(&a, ins.single(op_name)?)?,
        "layernorm" => {
            let s = ins.single(op_name)?;
            let eps = a.eps()?;
            a.param(&mut params, ParamRole::Weight, vec![s.channels()], false)?;
            a.param(&mut params, ParamRole::Bias, vec![s.channels()], false)?;
            (Op::LayerNorm { eps }, s)
        }
        _ => unreachable!("op names were checked above"),
    };
    check_limits(&a, &op, shape, in_shapes, &params)?;
    Ok(Layer {
        name: name.to_owned(),
        op,
        inputs,
        shape,
        params,
    })
}

/// A layer's input shapes, as the ops that take one input want them.
struct Inputs<'a> {
    a: &'a Attrs<'a>,
    shapes: &'a [Shape],
}

impl Inputs<'_> {
    fn single(&self, what: &str) -> Result<Shape> {
        match self.shapes {
            [s] => Ok(*s),
            _ => Err(self
                .a
                .err(format!("`{what}` takes exactly one input, got {}", self.shapes.len()))),
        }
    }

    fn chw(&self, what: &str) -> Result<(usize, usize, usize)> {
        match self.single(what)? {
            Shape::Chw(c, h, w) => Ok((c, h, w)),
            s => Err(self.a.err(format!("`{what}` needs a [C, H, W] input, got {s}"))),
        }
    }
}

fn conv2d(a: &Attrs, (c, h, w): (usize, usize, usize), params: &mut Vec<ParamSpec>) -> Result<(Op, Shape)> {
    let out_channels = a.count("out_channels", None)?;
    let kernel = a.pair("kernel", None)?;
    let stride = a.pair("stride", Some((1, 1)))?;
    let padding = a.pair_zero("padding")?;
    let dilation = a.pair("dilation", Some((1, 1)))?;
    let groups = a.count("groups", Some(1))?;
    if c % groups != 0 || out_channels % groups != 0 {
        return Err(a.err(format!(
            "groups = {groups} must divide the input channels ({c}) and out_channels ({out_channels})"
        )));
    }
    let oh = conv_out(h, kernel.0, stride.0, padding.0, dilation.0);
    let ow = conv_out(w, kernel.1, stride.1, padding.1, dilation.1);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(a.err(format!(
            "kernel {kernel:?} (dilation {dilation:?}) does not fit the padded {h}x{w} input"
        )));
    };
    a.param(
        params,
        ParamRole::Weight,
        vec![out_channels, c / groups, kernel.0, kernel.1],
        false,
    )?;
    a.param(params, ParamRole::Bias, vec![out_channels], true)?;
    Ok((
        Op::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
        },
        Shape::Chw(out_channels, oh, ow),
    ))
}

fn conv_transpose2d(a: &Attrs, (c, h, w): (usize, usize, usize), params: &mut Vec<ParamSpec>) -> Result<(Op, Shape)> {
    let out_channels = a.count("out_channels", None)?;
    let kernel = a.pair("kernel", None)?;
    let stride = a.pair("stride", Some((1, 1)))?;
    let padding = a.pair_zero("padding")?;
    let output_padding = a.pair_min("output_padding", Some((0, 0)), 0)?;
    let dilation = a.pair("dilation", Some((1, 1)))?;
    let groups = a.count("groups", Some(1))?;
    if c % groups != 0 || out_channels % groups != 0 {
        return Err(a.err(format!(
            "groups = {groups} must divide the input channels ({c}) and out_channels ({out_channels})"
        )));
    }
    for (op, s, d) in [
        (output_padding.0, stride.0, dilation.0),
        (output_padding.1, stride.1, dilation.1),
    ] {
        if op >= s && op >= d {
            return Err(a.err(format!(
                "\"output_padding\" {output_padding:?} must be smaller than the stride {stride:?} or the \
                 dilation {dilation:?} (per axis, as PyTorch)"
            )));
        }
    }
    let oh = conv_transpose_out(h, kernel.0, stride.0, padding.0, output_padding.0, dilation.0);
    let ow = conv_transpose_out(w, kernel.1, stride.1, padding.1, output_padding.1, dilation.1);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(a.err(format!(
            "padding {padding:?} leaves no output of the {h}x{w} input (kernel {kernel:?}, stride {stride:?})"
        )));
    };
    a.param(
        params,
        ParamRole::Weight,
        vec![c, out_channels / groups, kernel.0, kernel.1],
        false,
    )?;
    a.param(params, ParamRole::Bias, vec![out_channels], true)?;
    let op = Op::ConvTranspose2d {
        out_channels,
        kernel,
        stride,
        padding,
        output_padding,
        dilation,
        groups,
    };
    Ok((op, Shape::Chw(out_channels, oh, ow)))
}

/// PyTorch's ConvTranspose2d output size; `None` when it would be empty or overflow.
pub fn conv_transpose_out(
    size: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    output_padding: usize,
    dilation: usize,
) -> Option<usize> {
    let full = (size - 1)
        .checked_mul(stride)?
        .checked_add(dilation.checked_mul(kernel - 1)?)?
        .checked_add(output_padding)?
        .checked_add(1)?;
    full.checked_sub(pad.checked_mul(2)?).filter(|&n| n > 0)
}

/// Constant padding: `padding` [top, left, bottom, right], `value`.
fn pad(a: &Attrs, (c, h, w): (usize, usize, usize)) -> Result<(Op, Shape)> {
    let v = a.obj.get("padding").ok_or_else(|| a.err("missing \"padding\""))?;
    let padding: [usize; 4] = v
        .as_array()
        .and_then(|p| {
            p.iter()
                .map(|n| n.as_u64().filter(|&n| n <= MAX_DIM as u64).map(|n| n as usize))
                .collect::<Option<Vec<usize>>>()
        })
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| {
            a.err(format!(
                "\"padding\" must be [top, left, bottom, right], integers in 0..={MAX_DIM}, got {v}"
            ))
        })?;
    let value = a.number("value", Some(0.0))?;
    let [t, l, b, r] = padding;
    Ok((Op::Pad { padding, value }, Shape::Chw(c, h + t + b, w + l + r)))
}

/// F.interpolate: exactly one of `scale` (int or [sh, sw]) and `size` ([h, w]); `mode`
/// nearest or bilinear; `align_corners` (bilinear only).
fn upsample(a: &Attrs, (c, h, w): (usize, usize, usize)) -> Result<(Op, Shape)> {
    let (oh, ow) = match (a.obj.contains_key("scale"), a.obj.contains_key("size")) {
        (true, false) => {
            let (sh, sw) = a.pair("scale", None)?;
            let big = || a.err(format!("\"scale\" ({sh}, {sw}) makes the {h}x{w} input too large"));
            (h.checked_mul(sh).ok_or_else(big)?, w.checked_mul(sw).ok_or_else(big)?)
        }
        (false, true) => a.pair("size", None)?,
        _ => return Err(a.err("give exactly one of \"scale\" and \"size\"")),
    };
    let bilinear = match a.obj.get("mode") {
        None => false,
        Some(Value::String(s)) if s == "nearest" => false,
        Some(Value::String(s)) if s == "bilinear" => true,
        Some(v) => return Err(a.err(format!("\"mode\" must be \"nearest\" or \"bilinear\", got {v}"))),
    };
    let align_corners = a.flag("align_corners", false)?;
    if align_corners && !bilinear {
        return Err(a.err("\"align_corners\" applies to mode \"bilinear\" only (as in PyTorch)"));
    }
    Ok((
        Op::Upsample {
            bilinear,
            align_corners,
        },
        Shape::Chw(c, oh, ow),
    ))
}

fn dense(a: &Attrs, input: Shape, params: &mut Vec<ParamSpec>) -> Result<(Op, Shape)> {
    let n = match input {
        Shape::Flat(n) => n,
        s => {
            return Err(a.err(format!(
                "`dense` needs a flat [N] input, got {s} (add a `flatten` layer)"
            )));
        }
    };
    let out_features = a.count("out_features", None)?;
    a.param(params, ParamRole::Weight, vec![out_features, n], false)?;
    a.param(params, ParamRole::Bias, vec![out_features], true)?;
    Ok((Op::Dense { out_features }, Shape::Flat(out_features)))
}

fn batchnorm2d(a: &Attrs, (c, h, w): (usize, usize, usize), params: &mut Vec<ParamSpec>) -> Result<(Op, Shape)> {
    let eps = a.eps()?;
    for role in [
        ParamRole::Weight,
        ParamRole::Bias,
        ParamRole::RunningMean,
        ParamRole::RunningVar,
    ] {
        a.param(
            params,
            role,
            vec![c],
            role != ParamRole::RunningMean && role != ParamRole::RunningVar,
        )?;
    }
    Ok((Op::BatchNorm2d { eps }, Shape::Chw(c, h, w)))
}

/// Channels (features) `start..end` of the input.
fn slice(a: &Attrs, input: Shape) -> Result<(Op, Shape)> {
    let (start, end) = (a.index("start")?, a.index("end")?);
    let n = input.channels();
    if start >= end || end > n {
        return Err(a.err(format!(
            "\"start\" ({start}) and \"end\" ({end}) must satisfy 0 <= start < end <= {n}, the input's {}",
            if matches!(input, Shape::Chw(..)) {
                "channels"
            } else {
                "features"
            }
        )));
    }
    let shape = match input {
        Shape::Chw(_, h, w) => Shape::Chw(end - start, h, w),
        Shape::Flat(_) => Shape::Flat(end - start),
    };
    Ok((Op::Slice { start, end }, shape))
}

fn clip(a: &Attrs) -> Result<Op> {
    let (min, max) = (a.number("min", None)?, a.number("max", None)?);
    if min > max {
        return Err(a.err(format!("\"min\" ({min}) must not be above \"max\" ({max})")));
    }
    Ok(Op::Clip { min, max })
}

fn gelu(a: &Attrs) -> Result<Op> {
    match a.obj.get("approximate") {
        None => Ok(Op::Gelu { tanh: false }),
        Some(Value::String(s)) if s == "none" => Ok(Op::Gelu { tanh: false }),
        Some(Value::String(s)) if s == "tanh" => Ok(Op::Gelu { tanh: true }),
        Some(v) => Err(a.err(format!("\"approximate\" must be \"none\" or \"tanh\", got {v}"))),
    }
}

fn pool(a: &Attrs, is_max: bool, (c, h, w): (usize, usize, usize)) -> Result<(Op, Shape)> {
    let kernel = a.pair("kernel", None)?;
    let stride = a.pair("stride", Some(kernel))?;
    let padding = a.pair_zero("padding")?;
    if padding.0 * 2 > kernel.0 || padding.1 * 2 > kernel.1 {
        return Err(a.err(format!(
            "padding {padding:?} must be at most half the kernel {kernel:?}"
        )));
    }
    let ceil_mode = a.flag("ceil_mode", false)?;
    let oh = pool_out(h, kernel.0, stride.0, padding.0, ceil_mode);
    let ow = pool_out(w, kernel.1, stride.1, padding.1, ceil_mode);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(a.err(format!("kernel {kernel:?} does not fit the padded {h}x{w} input")));
    };
    let op = if is_max {
        Op::MaxPool2d {
            kernel,
            stride,
            padding,
            ceil_mode,
        }
    } else {
        Op::AvgPool2d {
            kernel,
            stride,
            padding,
            ceil_mode,
            count_include_pad: a.flag("count_include_pad", true)?,
        }
    };
    Ok((op, Shape::Chw(c, oh, ow)))
}

/// A binary op: two inputs (`add`: two or more), or one and a `"constant"` operand of the given
/// shape (the layer's weight), broadcast as numpy does ([`super::binary`]).
fn binary(a: &Attrs, op_name: &str, in_shapes: &[Shape], params: &mut Vec<ParamSpec>) -> Result<(Op, Shape)> {
    let op = match op_name {
        "add" => Op::Add,
        "sub" => Op::Sub,
        "mul" => Op::Mul,
        _ => Op::Div,
    };
    let mut operands: Vec<Vec<usize>> = in_shapes.iter().map(Shape::dims).collect();
    match a.obj.get("constant") {
        None if a.obj.contains_key("weight") => {
            return Err(a.err(format!(
                "\"weight\" names the constant operand of `{op_name}`: give its shape as \"constant\" too"
            )));
        }
        None if in_shapes.len() < 2 || (op_name != "add" && in_shapes.len() != 2) => {
            let want = if op_name == "add" { "at least 2" } else { "2" };
            return Err(a.err(format!(
                "`{op_name}` needs {want} inputs, or one input and a \"constant\", got {} input(s)",
                in_shapes.len()
            )));
        }
        None => {}
        Some(v) => {
            if in_shapes.len() != 1 {
                return Err(a.err(format!(
                    "with a \"constant\", `{op_name}` takes exactly one input, got {}",
                    in_shapes.len()
                )));
            }
            let rank = in_shapes[0].dims().len();
            let dims = v
                .as_array()
                .filter(|d| d.len() == rank)
                .and_then(|d| {
                    d.iter()
                        .map(|n| {
                            n.as_u64()
                                .filter(|&n| n >= 1 && n <= MAX_DIM as u64)
                                .map(|n| n as usize)
                        })
                        .collect::<Option<Vec<usize>>>()
                })
                .ok_or_else(|| {
                    a.err(format!(
                        "\"constant\" must be the constant operand's shape, {rank} integers in 1..={MAX_DIM} \
                         for the {} input ([C, H, W] for a map, [N] for a vector), got {v}",
                        in_shapes[0]
                    ))
                })?;
            a.param(params, ParamRole::Weight, dims.clone(), false)?;
            operands.push(dims);
        }
    }
    let mut out = operands[0].clone();
    for d in &operands[1..] {
        out = super::binary::broadcast(&out, d).ok_or_else(|| {
            a.err(format!(
                "`{op_name}` cannot broadcast {out:?} with {d:?} (both [C, H, W] or both [N], each axis equal or 1)"
            ))
        })?;
    }
    let shape = match *out.as_slice() {
        [c, h, w] => Shape::Chw(c, h, w),
        [n] => Shape::Flat(n),
        _ => unreachable!("operands are of rank 1 or 3"),
    };
    Ok((op, shape))
}

fn concat(a: &Attrs, in_shapes: &[Shape]) -> Result<Shape> {
    if in_shapes.len() < 2 {
        return Err(a.err("`concat` needs at least 2 inputs"));
    }
    Ok(match in_shapes[0] {
        Shape::Flat(_) => {
            let mut n = 0usize;
            for s in in_shapes {
                match s {
                    Shape::Flat(k) => n += k,
                    _ => {
                        return Err(a.err("`concat` inputs must all be [N] or all [C, H, W]"));
                    }
                }
            }
            Shape::Flat(n)
        }
        Shape::Chw(_, h, w) => {
            let mut c = 0usize;
            for s in in_shapes {
                match *s {
                    Shape::Chw(k, hh, ww) if hh == h && ww == w => c += k,
                    other => {
                        return Err(a.err(format!(
                            "`concat` joins channels: inputs need the same H, W, got [_, {h}, {w}] and {other}"
                        )));
                    }
                }
            }
            Shape::Chw(c, h, w)
        }
    })
}

/// The layer's output, the forward passes' temporary buffers and each parameter within
/// [`MAX_LAYER_ELEMENTS`], so nothing huge is allocated for a hostile model file.
fn check_limits(a: &Attrs, op: &Op, shape: Shape, in_shapes: &[Shape], params: &[ParamSpec]) -> Result<()> {
    if checked_elements(&shape.dims()).is_none_or(|e| e > MAX_LAYER_ELEMENTS) {
        return Err(a.err(format!(
            "output {shape} exceeds the limit of {MAX_LAYER_ELEMENTS} activations per layer"
        )));
    }
    if in_shapes
        .first()
        .is_some_and(|&s| work_elements(op, s, Some(shape)).is_none_or(|e| e > MAX_LAYER_ELEMENTS))
    {
        return Err(a.err(format!(
            "the forward pass would need a temporary buffer (padded input, dilated kernel or \
             unfolded patches) over the limit of {MAX_LAYER_ELEMENTS} values; reduce padding, \
             dilation or kernel size"
        )));
    }
    for p in params {
        if checked_elements(&p.shape).is_none_or(|e| e > MAX_LAYER_ELEMENTS) {
            return Err(a.err(format!("parameter `{}` of shape {:?} is too large", p.tensor, p.shape)));
        }
    }
    Ok(())
}

/// Attribute readers for one layer object.
struct Attrs<'a> {
    file: &'a Path,
    layer: &'a str,
    obj: &'a Map<String, Value>,
}

impl Attrs<'_> {
    fn err(&self, msg: impl Into<String>) -> NnError {
        NnError::layer(self.file, self.layer, msg)
    }

    fn count(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match (self.obj.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.err(format!("missing \"{key}\""))),
            (Some(v), _) => v
                .as_u64()
                .filter(|&n| n >= 1 && n <= MAX_DIM as u64)
                .map(|n| n as usize)
                .ok_or_else(|| self.err(format!("\"{key}\" must be an integer in 1..={MAX_DIM}, got {v}"))),
        }
    }

    /// A required integer in `0..=MAX_DIM`.
    fn index(&self, key: &str) -> Result<usize> {
        let v = self
            .obj
            .get(key)
            .ok_or_else(|| self.err(format!("missing \"{key}\"")))?;
        v.as_u64()
            .filter(|&n| n <= MAX_DIM as u64)
            .map(|n| n as usize)
            .ok_or_else(|| self.err(format!("\"{key}\" must be an integer in 0..={MAX_DIM}, got {v}")))
    }

    /// A normalization's `eps`: positive and finite, 1e-5 when absent.
    fn eps(&self) -> Result<f32> {
        match self.obj.get("eps") {
            None => Ok(1e-5),
            Some(v) => v
                .as_f64()
                .filter(|e| *e > 0.0 && e.is_finite())
                .map(|e| e as f32)
                .ok_or_else(|| self.err(format!("\"eps\" must be a positive number, got {v}"))),
        }
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.obj.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.err(format!("\"{key}\" must be true or false, got {v}"))),
        }
    }

    /// A finite number, as f32.
    fn number(&self, key: &str, default: Option<f32>) -> Result<f32> {
        match (self.obj.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.err(format!("missing \"{key}\""))),
            (Some(v), _) => v
                .as_f64()
                .map(|n| n as f32)
                .filter(|n| n.is_finite())
                .ok_or_else(|| self.err(format!("\"{key}\" must be a finite number, got {v}"))),
        }
    }

    /// An int or [h, w]; `min` is the smallest allowed value.
    fn pair_min(&self, key: &str, default: Option<Pair>, min: u64) -> Result<Pair> {
        let bad = |v: &Value| {
            self.err(format!(
                "\"{key}\" must be an integer or [h, w] of integers in {min}..={MAX_DIM}, got {v}"
            ))
        };
        let one = |v: &Value| -> Option<usize> {
            v.as_u64()
                .filter(|&n| n >= min && n <= MAX_DIM as u64)
                .map(|n| n as usize)
        };
        match (self.obj.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.err(format!("missing \"{key}\""))),
            (Some(v @ Value::Array(a)), _) => match a.as_slice() {
                [h, w] => Ok((one(h).ok_or_else(|| bad(v))?, one(w).ok_or_else(|| bad(v))?)),
                _ => Err(bad(v)),
            },
            (Some(v), _) => one(v).map(|n| (n, n)).ok_or_else(|| bad(v)),
        }
    }
    fn pair(&self, key: &str, default: Option<Pair>) -> Result<Pair> {
        self.pair_min(key, default, 1)
    }
    fn pair_zero(&self, key: &str) -> Result<Pair> {
        self.pair_min(key, Some((0, 0)), 0)
    }

    /// Register a parameter tensor: explicit name, `null` (none, where `optional`), or the default.
    fn param(&self, out: &mut Vec<ParamSpec>, role: ParamRole, shape: Vec<usize>, optional: bool) -> Result<()> {
        let key = role.suffix();
        let tensor = match self.obj.get(key) {
            None => format!("{}.{key}", self.layer),
            Some(Value::Null) if optional => return Ok(()),
            Some(Value::Null) => {
                return Err(self.err(format!("\"{key}\" cannot be null for this op")));
            }
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                return Err(self.err(format!("\"{key}\" must be a tensor name or null, got {v}")));
            }
        };
        out.push(ParamSpec { role, tensor, shape });
        Ok(())
    }
}

/// The largest temporary buffer, in f32 values, the CPU forward passes allocate for a layer with
/// this op reading `input`, beyond its output and parameters. The inference engine
/// (`engine.rs`) unfolds every conv input into an im2col matrix of `C/groups * kh * kw` rows by
/// `oh * ow` columns. The candle path (`forward.rs`, training) builds a padded copy of the input
/// (pools; conv with unequal padding), a spread-out kernel (conv with unequal dilation), a
/// full-resolution output (conv with unequal strides) and candle's im2col tiles (whole image for
/// 1x1 kernels, else 512 output pixels). Keep this in step with both. `None` on overflow; `Some(0)`
/// for ops that need none.
pub fn work_elements(op: &Op, input: Shape, output: Option<Shape>) -> Option<usize> {
    let Shape::Chw(c, h, w) = input else {
        return Some(0);
    };
    let out_hw = match output {
        Some(Shape::Chw(_, oh, ow)) => Some((oh, ow)),
        _ => None,
    };
    let padded = |(ph, pw): Pair| -> Option<usize> {
        let hp = h.checked_add(ph.checked_mul(2)?)?;
        let wp = w.checked_add(pw.checked_mul(2)?)?;
        checked_elements(&[c, hp, wp])
    };
    match *op {
        // Ceil mode pads the right and bottom edges by up to a kernel more (forward.rs).
        Op::MaxPool2d { padding, kernel, .. } | Op::AvgPool2d { padding, kernel, .. } if !pool::is_plain(op) => {
            let hp = h.checked_add(padding.0.checked_mul(2)?)?.checked_add(kernel.0)?;
            let wp = w.checked_add(padding.1.checked_mul(2)?)?.checked_add(kernel.1)?;
            checked_elements(&[c, hp, wp])
        }
        Op::MaxPool2d { padding, .. } | Op::AvgPool2d { padding, .. } => padded(padding),
        // Candle's separable form keeps a c x h x ow intermediate.
        Op::AdaptiveAvgPool2d { output } => checked_elements(&[c, h.max(output.0), w.max(output.1)]),
        // Candle's separable form likewise, with its two interpolation matrices.
        Op::Upsample { .. } => {
            let (oh, ow) = out_hw?;
            let matrices = h.checked_mul(oh)?.checked_add(w.checked_mul(ow)?)?;
            Some(checked_elements(&[c, h.max(oh), w.max(ow)])?.max(matrices))
        }
        // Candle runs a conv2d over the input spread out by the stride and padded (forward.rs).
        Op::ConvTranspose2d {
            out_channels,
            kernel,
            stride,
            dilation,
            groups,
            ..
        } => {
            let (oh, ow) = out_hw?;
            let hz = oh.checked_add(dilation.0.checked_mul(kernel.0 - 1)?)?;
            let wz = ow.checked_add(dilation.1.checked_mul(kernel.1 - 1)?)?;
            let spread = checked_elements(&[c, h, stride.0, w, stride.1])?;
            let conv = Op::Conv2d {
                out_channels,
                kernel,
                stride: (1, 1),
                padding: (0, 0),
                dilation,
                groups,
            };
            Some(
                work_elements(&conv, Shape::Chw(c, hz, wz), None)?
                    .max(spread)
                    .max(checked_elements(&[c, hz, wz])?),
            )
        }
        Op::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
        } => {
            let (kh, kw) = if dilation.0 == dilation.1 {
                kernel
            } else {
                (
                    (kernel.0 - 1).checked_mul(dilation.0)?.checked_add(1)?,
                    (kernel.1 - 1).checked_mul(dilation.1)?.checked_add(1)?,
                )
            };
            let dil = if dilation.0 == dilation.1 { dilation.0 } else { 1 };
            let s = if stride.0 == stride.1 { stride.0 } else { 1 };
            let oh = conv_out(h, kh, s, padding.0, dil)?;
            let ow = conv_out(w, kw, s, padding.1, dil)?;
            let pixels = oh.checked_mul(ow)?;
            let patch = checked_elements(&[c / groups, kh, kw])?;
            let tile = patch.checked_mul(if kh == 1 && kw == 1 { pixels } else { pixels.min(512) })?;
            let kernel_elems = checked_elements(&[out_channels, c / groups, kh, kw])?;
            let full_out = out_channels.checked_mul(pixels)?;
            let pad = padded(padding)?;
            let real_pixels = conv_out(h, kernel.0, stride.0, padding.0, dilation.0)?
                .checked_mul(conv_out(w, kernel.1, stride.1, padding.1, dilation.1)?)?;
            let engine_col = checked_elements(&[c / groups, kernel.0, kernel.1, real_pixels])?;
            Some(tile.max(kernel_elems).max(full_out).max(pad).max(engine_col))
        }
        _ => Some(0),
    }
}

/// PyTorch's output size formula; `None` when the kernel does not fit.
pub fn conv_out(size: usize, kernel: usize, stride: usize, pad: usize, dilation: usize) -> Option<usize> {
    let span = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    let padded = size.checked_add(pad.checked_mul(2)?)?;
    padded.checked_sub(span).map(|d| d / stride + 1)
}

/// The product of `dims`; `None` on overflow.
pub(super) fn checked_elements(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

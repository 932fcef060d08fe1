//! The forward pass on candle tensors (CPU). Works on batches `[B, C, H, W]` / `[B, N]` so the same
//! code serves a single input, evaluation and training (parameters may be `Var`s).

use candle_core::{D, Device, Tensor};

use super::engine::{Activations, Engine};
use super::error::{ComputeContext, NnError, Result};
use super::model::{Layer, Model, Op, Pair, Shape, Source};
use super::pool::{self, Win};
use super::resample;
use super::weights::{LayerParams, Weights, batchnorm_affine};

/// Normalize a raw batch `[B, ...input shape]` per channel.
pub fn normalize(model: &Model, raw: &Tensor) -> candle_core::Result<Tensor> {
    let c = model.input.shape.channels();
    let bshape: Vec<usize> = match model.input.shape {
        Shape::Chw(..) => vec![1, c, 1, 1],
        Shape::Flat(_) => vec![1, c],
    };
    let mean = Tensor::from_slice(&model.input.mean, bshape.as_slice(), raw.device())?;
    let inv_std: Vec<f32> = model.input.std.iter().map(|s| 1.0 / s).collect();
    let inv_std = Tensor::from_slice(&inv_std, bshape.as_slice(), raw.device())?;
    raw.broadcast_sub(&mean)?.broadcast_mul(&inv_std)
}

/// Run every layer on a normalized batch with candle (autograd-capable); returns one tensor per
/// layer (with batch dimension).
pub fn forward_batch(model: &Model, params: &[LayerParams], x: &Tensor) -> Result<Vec<Tensor>> {
    let mut outs: Vec<Tensor> = Vec::with_capacity(model.layers.len());
    for (layer, p) in model.layers.iter().zip(params) {
        let ins: Vec<&Tensor> = layer
            .inputs
            .iter()
            .map(|s| match *s {
                Source::Input => x,
                Source::Layer(i) => &outs[i],
            })
            .collect();
        let y = layer_forward(layer, p, &ins).in_layer(&layer.name)?;
        outs.push(y);
    }
    Ok(outs)
}

fn check_input_len(model: &Model, raw: &[f32]) -> Result<()> {
    if raw.len() != model.input.shape.elements() {
        return Err(NnError::Usage(format!(
            "input has {} values, the model needs {} ({})",
            raw.len(),
            model.input.shape.elements(),
            model.input.shape
        )));
    }
    Ok(())
}

/// Run the model on one raw (unnormalized) input of the model's input shape (the inference
/// engine; hold an [`Engine`] instead to run many inputs on the same weights).
pub fn forward(model: &Model, weights: &Weights, raw: &[f32]) -> Result<Activations> {
    check_input_len(model, raw)?;
    Ok(Engine::new(model, weights)?.run(raw))
}

/// The same through candle's batch path (as training computes it).
pub fn forward_candle(model: &Model, weights: &Weights, raw: &[f32]) -> Result<Activations> {
    check_input_len(model, raw)?;
    let mut bdims = vec![1usize];
    bdims.extend(model.input.shape.dims());
    let x = Tensor::from_slice(raw, bdims.as_slice(), &Device::Cpu).in_layer(&model.input.name)?;
    let x = normalize(model, &x).in_layer(&model.input.name)?;
    let outs = forward_batch(model, &weights.layers, &x)?;
    let flat = |t: &Tensor, name: &str| -> Result<Vec<f32>> {
        t.flatten_all().and_then(|t| t.to_vec1::<f32>()).in_layer(name)
    };
    let input = flat(&x, &model.input.name)?;
    let layers = outs
        .iter()
        .zip(&model.layers)
        .map(|(t, l)| flat(t, &l.name))
        .collect::<Result<Vec<_>>>()?;
    Ok(Activations { input, layers })
}

/// Class scores for a batch of raw inputs: the last layer's output, `[B, classes]`.
pub fn predict_batch(model: &Model, weights: &Weights, raw: &Tensor) -> Result<Tensor> {
    let x = normalize(model, raw).in_layer(&model.input.name)?;
    let mut outs = forward_batch(model, &weights.layers, &x)?;
    outs.pop()
        .ok_or_else(|| NnError::Usage("the model has no layers".into()))
}

/// Multiply-adds of a conv/dense layer for one input (0 for other ops).
pub fn conv_macs(layer: &Layer) -> usize {
    match layer.op {
        Op::Conv2d { .. } | Op::Dense { .. } => layer.shape.elements() * layer.fan_in().unwrap_or(0),
        // Each output cell sums about in / groups * kh * kw / (stride_h * stride_w) taps.
        Op::ConvTranspose2d {
            kernel, stride, groups, ..
        } => {
            let cin = layer.param(super::model::ParamRole::Weight).map_or(0, |w| w.shape[0]);
            layer.shape.elements() * (cin / groups) * kernel.0 * kernel.1 / (stride.0 * stride.1)
        }
        _ => 0,
    }
}

fn layer_forward(layer: &Layer, p: &LayerParams, ins: &[&Tensor]) -> candle_core::Result<Tensor> {
    let x = ins[0];
    match &layer.op {
        Op::Conv2d {
            stride,
            padding,
            dilation,
            groups,
            ..
        } => {
            let w = p
                .weight
                .as_ref()
                .ok_or_else(|| candle_core::Error::Msg("weight not loaded".into()))?;
            let y = conv2d(x, w, *stride, *padding, *dilation, *groups)?;
            match &p.bias {
                Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
                None => Ok(y),
            }
        }
        Op::Dense { .. } => {
            let w = p
                .weight
                .as_ref()
                .ok_or_else(|| candle_core::Error::Msg("weight not loaded".into()))?;
            let y = x.matmul(&w.t()?)?;
            match &p.bias {
                Some(b) => y.broadcast_add(b),
                None => Ok(y),
            }
        }
        Op::BatchNorm2d { eps } => {
            let (scale, shift) = batchnorm_affine(p, *eps, x.dim(1)?)?;
            x.broadcast_mul(&scale.reshape((1, (), 1, 1))?)?
                .broadcast_add(&shift.reshape((1, (), 1, 1))?)
        }
        Op::MaxPool2d { .. } | Op::AvgPool2d { .. } if !pool::is_plain(&layer.op) => windowed_pool(layer, x),
        Op::AdaptiveAvgPool2d { .. } => windowed_pool(layer, x),
        Op::MaxPool2d {
            kernel,
            stride,
            padding,
            ..
        } => pad2d(x, *padding, f32::NEG_INFINITY)?.max_pool2d_with_stride(*kernel, *stride),
        Op::AvgPool2d {
            kernel,
            stride,
            padding,
            ..
        } => pad2d(x, *padding, 0.0)?.avg_pool2d_with_stride(*kernel, *stride),
        Op::GlobalAvgPool2d => x.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2),
        Op::Flatten => x.flatten_from(1),
        Op::Relu => x.relu(),
        Op::Sigmoid => candle_nn::ops::sigmoid(x),
        Op::Tanh => x.tanh(),
        Op::Relu6 => x.clamp(0f32, 6f32),
        Op::Clip { min, max } => x.clamp(*min, *max),
        Op::Hardsigmoid => hardsigmoid(x),
        Op::Hardswish => x * hardsigmoid(x)?,
        Op::Silu => x.silu(),
        Op::Gelu { tanh: false } => x.gelu_erf(),
        Op::Gelu { tanh: true } => x.gelu(),
        // relu(x) - slope * relu(-x): any slope, negative or above 1 included.
        Op::LeakyRelu { negative_slope } => x.relu()? - (x.neg()?.relu()? * f64::from(*negative_slope))?,
        Op::Elu { alpha } => x.elu(f64::from(*alpha)),
        Op::Softmax => candle_nn::ops::softmax(x, 1),
        Op::Add | Op::Sub | Op::Mul | Op::Div => binary(layer, p, ins),
        // relu(x) - w * relu(-x), one slope per channel (or feature).
        Op::PRelu => {
            let w = weight(p)?;
            let w = match layer.shape {
                Shape::Chw(..) => w.reshape((1, (), 1, 1))?,
                Shape::Flat(_) => w.reshape((1, ()))?,
            };
            x.relu()? - x.neg()?.relu()?.broadcast_mul(&w)?
        }
        Op::Concat => Tensor::cat(ins, 1),
        Op::ChannelShuffle { groups } => {
            let (b, c, h, w) = x.dims4()?;
            x.reshape((b, *groups, c / groups, h, w))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, c, h, w))
        }
        Op::Slice { start, end } => x.narrow(1, *start, end - start),
        Op::LayerNorm { eps } => layernorm(layer, p, x, *eps),
        Op::Pad {
            padding: [t, l, b, r],
            value,
        } => pad_sides(&pad_sides(x, 2, *t, *b, *value)?, 3, *l, *r, *value),
        Op::Upsample {
            bilinear,
            align_corners,
        } => upsample(layer, x, *bilinear, *align_corners),
        Op::ConvTranspose2d { .. } => conv_transpose2d(layer, p, x),
    }
}

fn weight(p: &LayerParams) -> candle_core::Result<&Tensor> {
    p.weight
        .as_ref()
        .ok_or_else(|| candle_core::Error::Msg("weight not loaded".into()))
}

/// A binary op folded over its inputs and its constant operand (the weight, with a batch axis of
/// 1), broadcast as numpy does.
fn binary(layer: &Layer, p: &LayerParams, ins: &[&Tensor]) -> candle_core::Result<Tensor> {
    let mut operands: Vec<Tensor> = ins.iter().map(|t| (*t).clone()).collect();
    if let ([_], Some(w)) = (ins, &p.weight) {
        let mut dims = vec![1];
        dims.extend(w.dims());
        operands.push(w.reshape(dims)?);
    }
    let mut acc = operands[0].clone();
    for b in &operands[1..] {
        acc = match layer.op {
            Op::Add => acc.broadcast_add(b),
            Op::Sub => acc.broadcast_sub(b),
            Op::Mul => acc.broadcast_mul(b),
            _ => acc.broadcast_div(b),
        }?;
    }
    Ok(acc)
}

/// Layer norm over axis 1 (channels, or features), the variance biased, then the affine.
fn layernorm(layer: &Layer, p: &LayerParams, x: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    let per_axis = |t: &Tensor| match layer.shape {
        Shape::Chw(..) => t.reshape((1, (), 1, 1)),
        Shape::Flat(_) => t.reshape((1, ())),
    };
    let bias = p
        .bias
        .as_ref()
        .ok_or_else(|| candle_core::Error::Msg("bias not loaded".into()))?;
    let centred = x.broadcast_sub(&x.mean_keepdim(1)?)?;
    let var = centred.sqr()?.mean_keepdim(1)?;
    centred
        .broadcast_div(&(var + f64::from(eps))?.sqrt()?)?
        .broadcast_mul(&per_axis(weight(p)?)?)?
        .broadcast_add(&per_axis(bias)?)
}

/// `clamp(x + 3, 0, 6) / 6`, PyTorch's hardsigmoid.
fn hardsigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x + 3.0)?.clamp(0f32, 6f32)? / 6.0
}

/// Conv2d with per-axis stride/padding/dilation on top of candle's square-parameter kernel.
fn conv2d(
    x: &Tensor,
    w: &Tensor,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: usize,
) -> candle_core::Result<Tensor> {
    let (x, pad) = if padding.0 == padding.1 {
        (x.clone(), padding.0)
    } else {
        (pad2d(x, padding, 0.0)?, 0)
    };
    let (w, dil) = if dilation.0 == dilation.1 {
        (w.clone(), dilation.0)
    } else {
        (dilate_kernel(w, dilation)?, 1)
    };
    if stride.0 == stride.1 {
        x.conv2d(&w, pad, stride.0, dil, groups)
    } else {
        // Unequal strides: full-resolution conv, then keep every stride-th row/column.
        let y = x.conv2d(&w, pad, 1, dil, groups)?;
        let (_, _, h, wd) = y.dims4()?;
        let rows = Tensor::arange_step(0u32, h as u32, stride.0 as u32, y.device())?;
        let cols = Tensor::arange_step(0u32, wd as u32, stride.1 as u32, y.device())?;
        y.index_select(&rows, 2)?.index_select(&cols, 3)
    }
}

/// Spread a kernel's taps apart with zeros so a dilation of 1 applies `dilation` (differentiable:
/// training reaches the weights through it).
fn dilate_kernel(w: &Tensor, dilation: Pair) -> candle_core::Result<Tensor> {
    spread(&spread(w, 2, dilation.0)?, 3, dilation.1)
}

/// Pad H and W of an NCHW tensor with a constant.
/// The pools candle's own cannot do: ceil-mode max pooling as a max pool over the input padded with
/// -inf far enough right and down for every window (a clipped window keeps its real cells, and
/// each has one), and every other average as `A_h x A_w^T`, each axis's matrix holding its windows'
/// `1 / div` (the divisor is separable, so this is exact, and it stays differentiable).
fn windowed_pool(layer: &Layer, x: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let Shape::Chw(_, oh, ow) = layer.shape else {
        candle_core::bail!("{}: pooling needs a [C, H, W] output", layer.name)
    };
    if let Op::MaxPool2d {
        kernel,
        stride,
        padding,
        ..
    } = layer.op
    {
        let right = |n: usize, out: usize, k: usize, s: usize, p: usize| ((out - 1) * s + k).saturating_sub(n + p);
        let x = pad_sides(
            x,
            2,
            padding.0,
            right(h, oh, kernel.0, stride.0, padding.0),
            f32::NEG_INFINITY,
        )?;
        let x = pad_sides(
            &x,
            3,
            padding.1,
            right(w, ow, kernel.1, stride.1, padding.1),
            f32::NEG_INFINITY,
        )?;
        return x
            .max_pool2d_with_stride(kernel, stride)?
            .narrow(2, 0, oh)?
            .narrow(3, 0, ow);
    }
    let Some((rows, cols)) = pool::windows(&layer.op, (h, w), (oh, ow)) else {
        candle_core::bail!("{}: not a pooling op", layer.name)
    };
    // The transposed matrices: n input cells by one column per window.
    let matrix_t = |wins: &[Win], n: usize| {
        let mut m = vec![0f32; n * wins.len()];
        for (i, win) in wins.iter().enumerate() {
            for j in win.lo..win.hi {
                m[j * wins.len() + i] = 1.0 / win.div as f32;
            }
        }
        Tensor::from_vec(m, (n, wins.len()), x.device())
    };
    separable(x, &matrix_t(&rows, h)?, &matrix_t(&cols, w)?)
}

/// `A_h x A_w^T` per plane of `x` `[B, C, H, W]`, from the transposed matrices `rows_t` `[H, OH]`
/// and `cols_t` `[W, OW]`: differentiable.
fn separable(x: &Tensor, rows_t: &Tensor, cols_t: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = (rows_t.dim(1)?, cols_t.dim(1)?);
    let y = x.contiguous()?.reshape((b * c * h, w))?.matmul(cols_t)?;
    let y = y
        .reshape((b * c, h, ow))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * c * ow, h))?;
    let y = y.matmul(rows_t)?;
    y.reshape((b, c, ow, oh))?.transpose(2, 3)?.contiguous()
}

/// F.interpolate as [`separable`] through each axis's tap matrix.
fn upsample(layer: &Layer, x: &Tensor, bilinear: bool, align_corners: bool) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let Shape::Chw(_, oh, ow) = layer.shape else {
        candle_core::bail!("{}: upsample needs a [C, H, W] output", layer.name)
    };
    let matrix_t = |n: usize, out: usize| {
        let mut m = vec![0f32; n * out];
        for (d, t) in resample::taps(n, out, bilinear, align_corners).into_iter().enumerate() {
            for (i, wt) in resample::cells(t) {
                m[i * out + d] += wt;
            }
        }
        Tensor::from_vec(m, (n, out), x.device())
    };
    separable(x, &matrix_t(h, oh)?, &matrix_t(w, ow)?)
}

/// ConvTranspose2d as a conv2d (stride 1, the same dilation and groups) over the input spread
/// out by the stride (zeros between cells) and padded by `dilation * (kernel - 1) - padding`
/// (cropped where negative; `output_padding` more after), with the kernel flipped and its two
/// channel axes swapped per group. Differentiable (the spread is reshapes and concatenations).
fn conv_transpose2d(layer: &Layer, p: &LayerParams, x: &Tensor) -> candle_core::Result<Tensor> {
    let Op::ConvTranspose2d {
        stride,
        padding,
        output_padding,
        dilation,
        groups,
        ..
    } = layer.op
    else {
        candle_core::bail!("{}: not a conv_transpose2d", layer.name)
    };
    let w = weight(p)?;
    let (cin, cout_g, kh, kw) = w.dims4()?;
    let flip = |n: usize| Tensor::from_vec((0..n as u32).rev().collect::<Vec<u32>>(), n, w.device());
    let k = w
        .reshape((groups, cin / groups, cout_g, kh, kw))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((groups * cout_g, cin / groups, kh, kw))?
        .index_select(&flip(kh)?, 2)?
        .index_select(&flip(kw)?, 3)?;
    let mut z = x.clone();
    for (dim, s, k, p, op, d) in [
        (2, stride.0, kh, padding.0, output_padding.0, dilation.0),
        (3, stride.1, kw, padding.1, output_padding.1, dilation.1),
    ] {
        z = spread(&z, dim, s)?;
        let before = (d * (k - 1)) as isize - p as isize;
        z = pad_or_crop(&z, dim, before, before + op as isize)?;
    }
    let y = conv2d(&z, &k, (1, 1), (0, 0), dilation, groups)?;
    match &p.bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

/// `stride - 1` zeros between the cells of dimension `dim`.
fn spread(x: &Tensor, dim: usize, stride: usize) -> candle_core::Result<Tensor> {
    if stride == 1 {
        return Ok(x.clone());
    }
    let n = x.dim(dim)?;
    let mut dims = x.dims().to_vec();
    let x = x.unsqueeze(dim + 1)?;
    let mut zeros = x.dims().to_vec();
    zeros[dim + 1] = stride - 1;
    let zeros = Tensor::zeros(zeros, x.dtype(), x.device())?;
    dims[dim] = n * stride;
    Tensor::cat(&[&x, &zeros], dim + 1)?
        .reshape(dims)?
        .narrow(dim, 0, (n - 1) * stride + 1)
}

/// Pad dimension `dim` with zeros, `before` and `after` cells, cropping where either is negative.
fn pad_or_crop(x: &Tensor, dim: usize, before: isize, after: isize) -> candle_core::Result<Tensor> {
    let n = x.dim(dim)?;
    let (cut0, cut1) = ((-before).max(0) as usize, (-after).max(0) as usize);
    let x = x.narrow(dim, cut0, n - cut0 - cut1)?;
    pad_sides(&x, dim, before.max(0) as usize, after.max(0) as usize, 0.0)
}

/// Pad dimension `dim` with `before` and `after` rows of `value`.
fn pad_sides(x: &Tensor, dim: usize, before: usize, after: usize, value: f32) -> candle_core::Result<Tensor> {
    let band = |n: usize| {
        let mut dims = x.dims().to_vec();
        dims[dim] = n;
        Tensor::full(value, dims, x.device())
    };
    let (head, tail) = (band(before)?, band(after)?);
    let mut all = Vec::new();
    if before > 0 {
        all.push(&head);
    }
    all.push(x);
    if after > 0 {
        all.push(&tail);
    }
    Tensor::cat(&all, dim)
}

fn pad2d(x: &Tensor, padding: Pair, value: f32) -> candle_core::Result<Tensor> {
    let (ph, pw) = padding;
    if ph == 0 && pw == 0 {
        return Ok(x.clone());
    }
    let (b, c, h, w) = x.dims4()?;
    let mut x = x.clone();
    if ph > 0 {
        let band = Tensor::full(value, (b, c, ph, w), x.device())?;
        x = Tensor::cat(&[&band, &x, &band], 2)?;
    }
    if pw > 0 {
        let band = Tensor::full(value, (b, c, h + 2 * ph, pw), x.device())?;
        x = Tensor::cat(&[&band, &x, &band], 3)?;
    }
    Ok(x)
}

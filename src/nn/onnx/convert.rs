//! ONNX nodes to netwalk layers. Each node either folds to a constant ([`super::fold`]), passes its
//! input through (Identity, Dropout, layout-only transposes and reshapes: [`super::plumbing`]), or
//! emits one netwalk layer
//! (several for Split); a few decompositions are recognised: those of [`super::patterns`], MatMul +
//! Add (dense with bias), a channels-last MatMul (a 1×1 conv), ShuffleNet's reshape–transpose–reshape
//! (channel shuffle).

use candle_onnx::onnx::NodeProto;
use serde_json::json;

use super::fold;
use super::graph::{Act, Graph, Layout, Pending, Src, Val};
use super::proto::{Attrs, Const};
use crate::nn::error::Result;
use crate::nn::pool::pool_out;

type Params = Vec<(&'static str, Vec<usize>, Vec<f32>)>;

impl Graph<'_> {
    /// Translate one node (inputs already bound, as ONNX's topological order guarantees).
    pub fn node(&mut self, n: &NodeProto) -> Result<()> {
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(self.err(n, format!("custom op of domain `{}` is not supported", n.domain)));
        }
        if n.op_type == "Constant" {
            let c = self.constant_node(n)?;
            self.set(n, 0, Val::Const(c));
            return Ok(());
        }
        if n.op_type == "Shape"
            && let Val::Act(a) = self.val(n, 0)?
        {
            let dims: Vec<i64> = a.onnx_dims().iter().map(|&d| d as i64).collect();
            let r = dims.len() as i64;
            let a = Attrs::new(n);
            let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (s, e) = (clampi(a.int("start").unwrap_or(0)), clampi(a.int("end").unwrap_or(r)));
            let v = dims[s..e.max(s)].to_vec();
            self.set(n, 0, Val::Const(Const::i64(vec![v.len()], v)));
            return Ok(());
        }
        let mut consts = Vec::new();
        let mut all_const = !n.input.is_empty();
        for (i, name) in n.input.iter().enumerate() {
            if name.is_empty() {
                consts.push(None);
                continue;
            }
            match self.val(n, i)? {
                Val::Const(c) => consts.push(Some(c)),
                _ => {
                    all_const = false;
                    consts.push(None);
                }
            }
        }
        if all_const {
            match fold::fold(n, &consts, self.opset) {
                Ok(Some(outs)) => {
                    for (i, c) in outs.into_iter().enumerate() {
                        self.set(n, i, Val::Const(c));
                    }
                    return Ok(());
                }
                Ok(None) => {}
                Err(msg) => return Err(self.err(n, msg)),
            }
        }
        self.layer_node(n)
    }

    fn constant_node(&self, n: &NodeProto) -> Result<Const> {
        let a = Attrs::new(n);
        if let Some(t) = a.tensor("value") {
            return super::proto::tensor_value(t, self.dir, self.file);
        }
        if let Some(f) = a.float("value_float") {
            return Ok(Const::f32(vec![], vec![f]));
        }
        if let Some(i) = a.int("value_int") {
            return Ok(Const::i64(vec![], vec![i]));
        }
        if let Some(v) = a.floats("value_floats") {
            return Ok(Const::f32(vec![v.len()], v.to_vec()));
        }
        if let Some(v) = a.ints("value_ints") {
            return Ok(Const::i64(vec![v.len()], v.to_vec()));
        }
        Err(self.err(n, "a Constant without a supported value attribute"))
    }

    pub(super) fn pass(&mut self, n: &NodeProto, a: Act) -> Result<()> {
        self.set(n, 0, Val::Act(a));
        Ok(())
    }

    fn simple(&mut self, n: &NodeProto, attrs: serde_json::Value) -> Result<()> {
        let x = self.act(n, 0)?;
        let out = self.emit(n, attrs, vec![x.clone()], x.shape.clone(), x.layout, vec![]);
        self.pass(n, out)
    }

    fn layer_node(&mut self, n: &NodeProto) -> Result<()> {
        let a = Attrs::new(n);
        match n.op_type.as_str() {
            "Identity" | "Dropout" => {
                let x = self.act(n, 0)?;
                self.pass(n, x)
            }
            "Conv" => self.conv(n),
            "ConvTranspose" => self.conv_transpose(n),
            "BatchNormalization" => self.batchnorm(n),
            "Gemm" => self.gemm(n),
            "MatMul" => self.matmul(n),
            "MaxPool" | "AveragePool" => self.pool(n),
            "GlobalAveragePool" => {
                let x = self.chw_act(n)?;
                let c = x.shape[0];
                let out = self.emit(
                    n,
                    json!({"op": "global_avgpool2d"}),
                    vec![x],
                    vec![c, 1, 1],
                    Layout::Nchw,
                    vec![],
                );
                self.pass(n, out)
            }
            "GlobalMaxPool" => {
                let x = self.chw_act(n)?;
                let (c, h, w) = (x.shape[0], x.shape[1], x.shape[2]);
                let attrs = json!({"op": "maxpool2d", "kernel": [h, w], "stride": [h, w]});
                let out = self.emit(n, attrs, vec![x], vec![c, 1, 1], Layout::Nchw, vec![]);
                self.pass(n, out)
            }
            "ReduceMean" if matches!(self.val(n, 0)?, Val::Pending(_)) => self.layernorm_variance(n),
            "ReduceMean" => self.reduce_mean(n),
            "Pow" => self.layernorm_square(n),
            "Sqrt" => self.layernorm_sqrt(n),
            "Flatten" => self.flatten(n),
            "Reshape" => self.reshape(n),
            "Transpose" => self.transpose(n),
            "Squeeze" => self.squeeze(n),
            "Unsqueeze" => self.unsqueeze(n),
            "Gather" => self.gather(n),
            "Concat" => self.concat(n),
            "Split" => self.split(n),
            "Slice" => self.slice(n),
            "Add" | "Sub" | "Mul" | "Div" => self.binary(n),
            "Sum" => {
                let ins: Vec<Act> = (0..n.input.len()).map(|i| self.act(n, i)).collect::<Result<_>>()?;
                if ins.len() == 1 {
                    return self.pass(n, ins[0].clone());
                }
                let shape = self.broadcast_acts(n, &ins)?;
                let layout = ins[0].layout;
                let out = self.emit(n, json!({"op": "add"}), ins, shape, layout, vec![]);
                self.pass(n, out)
            }
            "Relu" => self.simple(n, json!({"op": "relu"})),
            "Sigmoid" => self.simple(n, json!({"op": "sigmoid"})),
            "Tanh" => self.simple(n, json!({"op": "tanh"})),
            "HardSwish" => self.simple(n, json!({"op": "hardswish"})),
            "Elu" => self.simple(n, json!({"op": "elu", "alpha": a.float("alpha").unwrap_or(1.0)})),
            "LeakyRelu" => self.simple(
                n,
                json!({"op": "leaky_relu", "negative_slope": a.float("alpha").unwrap_or(0.01)}),
            ),
            "HardSigmoid" => {
                let (alpha, beta) = (a.float("alpha").unwrap_or(0.2), a.float("beta").unwrap_or(0.5));
                if (alpha - 1.0 / 6.0).abs() > 1e-6 || (beta - 0.5).abs() > 1e-6 {
                    return Err(self.err(
                        n,
                        format!("HardSigmoid with alpha {alpha}, beta {beta}: netwalk's hardsigmoid is PyTorch's (alpha 1/6, beta 0.5)"),
                    ));
                }
                self.simple(n, json!({"op": "hardsigmoid"}))
            }
            "Gelu" => {
                let tanh = a.string("approximate").as_deref() == Some("tanh");
                self.simple(
                    n,
                    json!({"op": "gelu", "approximate": if tanh { "tanh" } else { "none" }}),
                )
            }
            "Clip" => self.clip(n),
            "PRelu" => self.prelu(n),
            "Softmax" => self.softmax(n),
            "Erf" => self.erf(n),
            "LayerNormalization" => self.layernorm(n),
            "Pad" => self.pad(n),
            "Resize" | "Upsample" => self.resize(n),
            other => Err(self.err(n, unsupported_hint(other))),
        }
    }

    /// Input 0 as `[C, H, W]` in NCHW.
    pub(super) fn chw_act(&self, n: &NodeProto) -> Result<Act> {
        let x = self.act(n, 0)?;
        if x.layout != Layout::Nchw || x.chw().is_none() {
            return Err(self.err(
                n,
                format!("needs an NCHW image tensor, got ONNX shape {:?}", x.onnx_dims()),
            ));
        }
        Ok(x)
    }

    fn hw_attr(&self, n: &NodeProto, name: &str, default: usize) -> Result<(usize, usize)> {
        match Attrs::new(n).ints(name) {
            None => Ok((default, default)),
            Some([h, w]) if *h >= 0 && *w >= 0 => Ok((*h as usize, *w as usize)),
            Some(v) => Err(self.err(
                n,
                format!("`{name}` {v:?}: netwalk reads 2-D ops (two non-negative values)"),
            )),
        }
    }

    /// Symmetric `(pad_h, pad_w)` or the four pads `[top, left, bottom, right]`, with `auto_pad`.
    fn pads(
        &self,
        n: &NodeProto,
        hw: (usize, usize),
        k: (usize, usize),
        s: (usize, usize),
        d: (usize, usize),
    ) -> Result<[usize; 4]> {
        let a = Attrs::new(n);
        match a.string("auto_pad").as_deref().unwrap_or("NOTSET") {
            "NOTSET" | "" => match a.ints("pads") {
                None => Ok([0; 4]),
                Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => {
                    Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
                }
                Some(p) => Err(self.err(n, format!("`pads` {p:?}: expected four non-negative values"))),
            },
            "VALID" => Ok([0; 4]),
            mode @ ("SAME_UPPER" | "SAME_LOWER") => {
                let total = |size: usize, k: usize, s: usize, d: usize| {
                    let out = size.div_ceil(s.max(1));
                    ((out.saturating_sub(1)) * s + (k.saturating_sub(1)) * d + 1).saturating_sub(size)
                };
                let (th, tw) = (total(hw.0, k.0, s.0, d.0), total(hw.1, k.1, s.1, d.1));
                let upper = mode == "SAME_UPPER";
                let split = |t: usize| if upper { (t / 2, t - t / 2) } else { (t - t / 2, t / 2) };
                let ((t, b), (l, r)) = (split(th), split(tw));
                Ok([t, l, b, r])
            }
            other => Err(self.err(n, format!("auto_pad `{other}` is not supported"))),
        }
    }

    /// A `pad` layer in front of an op whose padding is not the same on both sides.
    fn pad_layer(&mut self, n: &NodeProto, x: Act, p: [usize; 4], value: f32) -> Act {
        let (c, h, w) = x.chw().unwrap_or((0, 0, 0));
        let shape = vec![c, h + p[0] + p[2], w + p[1] + p[3]];
        let attrs = json!({"op": "pad", "padding": [p[0], p[1], p[2], p[3]], "value": value});
        let act = self.emit(n, attrs, vec![x], shape, Layout::Nchw, vec![]);
        // Named `<module>.pad`, not after the node's op: the convolution keeps that name.
        self.name_last_after("pad");
        act
    }

    fn conv(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.chw_act(n)?;
        let w = self.constant(n, 1)?;
        let b = self.opt_constant(n, 2)?;
        let &[o, ig, kh, kw] = w.dims.as_slice() else {
            return Err(self.err(
                n,
                format!("weight of shape {:?}: netwalk reads 2-D convolutions", w.dims),
            ));
        };
        let (c, h, wd) = x.chw().unwrap_or_default();
        let groups = Attrs::new(n).int("group").unwrap_or(1).max(1) as usize;
        if ig * groups != c || o % groups != 0 {
            return Err(self.err(
                n,
                format!(
                    "weight {:?} with group {groups} does not fit {c} input channels",
                    w.dims
                ),
            ));
        }
        let s = self.hw_attr(n, "strides", 1)?;
        let d = self.hw_attr(n, "dilations", 1)?;
        let p = self.pads(n, (h, wd), (kh, kw), s, d)?;
        let (x, pad) = if p[0] == p[2] && p[1] == p[3] {
            (x, (p[0], p[1]))
        } else {
            (self.pad_layer(n, x, p, 0.0), (0, 0))
        };
        let (_, h, wd) = x.chw().unwrap_or_default();
        let out = |size: usize, k: usize, s: usize, p: usize, d: usize| {
            (size + 2 * p)
                .checked_sub(d * (k.max(1) - 1) + 1)
                .map(|v| v / s.max(1) + 1)
        };
        let (Some(oh), Some(ow)) = (out(h, kh, s.0, pad.0, d.0), out(wd, kw, s.1, pad.1, d.1)) else {
            return Err(self.err(n, format!("kernel {kh}x{kw} does not fit the padded {h}x{wd} input")));
        };
        let mut params: Params = vec![("weight", w.dims.clone(), w.floats())];
        if let Some(b) = b {
            params.push(("bias", vec![o], b.floats()));
        }
        let attrs = json!({"op": "conv2d", "out_channels": o, "kernel": [kh, kw], "stride": [s.0, s.1],
            "padding": [pad.0, pad.1], "dilation": [d.0, d.1], "groups": groups});
        let out = self.emit(n, attrs, vec![x], vec![o, oh, ow], Layout::Nchw, params);
        self.pass(n, out)
    }

    fn conv_transpose(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.chw_act(n)?;
        let w = self.constant(n, 1)?;
        let b = self.opt_constant(n, 2)?;
        let &[i, og, kh, kw] = w.dims.as_slice() else {
            return Err(self.err(
                n,
                format!(
                    "weight of shape {:?}: netwalk reads 2-D transposed convolutions",
                    w.dims
                ),
            ));
        };
        let (c, h, wd) = x.chw().unwrap_or_default();
        let groups = Attrs::new(n).int("group").unwrap_or(1).max(1) as usize;
        if i != c {
            return Err(self.err(n, format!("weight {:?} does not fit {c} input channels", w.dims)));
        }
        if Attrs::new(n).has("output_shape") {
            return Err(self.err(
                n,
                "`output_shape` is not supported: export with pads and output_padding",
            ));
        }
        let s = self.hw_attr(n, "strides", 1)?;
        let d = self.hw_attr(n, "dilations", 1)?;
        let op = self.hw_attr(n, "output_padding", 0)?;
        let p = self.pads(n, (h, wd), (kh, kw), s, d)?;
        if p[0] != p[2] || p[1] != p[3] {
            return Err(self.err(n, format!("asymmetric pads {p:?} are not supported")));
        }
        let o = og * groups;
        let out = |size: usize, k: usize, s: usize, p: usize, d: usize, op: usize| {
            ((size.max(1) - 1) * s + d * (k.max(1) - 1) + op + 1).checked_sub(2 * p)
        };
        let (Some(oh), Some(ow)) = (out(h, kh, s.0, p[0], d.0, op.0), out(wd, kw, s.1, p[1], d.1, op.1)) else {
            return Err(self.err(n, "padding larger than the output"));
        };
        let mut params: Params = vec![("weight", w.dims.clone(), w.floats())];
        if let Some(b) = b {
            params.push(("bias", vec![o], b.floats()));
        }
        let attrs = json!({"op": "conv_transpose2d", "out_channels": o, "kernel": [kh, kw], "stride": [s.0, s.1],
            "padding": [p[0], p[1]], "output_padding": [op.0, op.1], "dilation": [d.0, d.1], "groups": groups});
        let out = self.emit(n, attrs, vec![x], vec![o, oh, ow], Layout::Nchw, params);
        self.pass(n, out)
    }

    fn batchnorm(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.chw_act(n)?;
        let c = x.shape[0];
        let mut params: Params = Vec::new();
        for (i, role) in [(1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")] {
            let t = self.constant(n, i)?;
            if t.len() != c {
                return Err(self.err(n, format!("{role} has {} values for {c} channels", t.len())));
            }
            params.push((role, vec![c], t.floats()));
        }
        let eps = Attrs::new(n).float("epsilon").unwrap_or(1e-5);
        let shape = x.shape.clone();
        let out = self.emit(
            n,
            json!({"op": "batchnorm2d", "eps": eps}),
            vec![x],
            shape,
            Layout::Nchw,
            params,
        );
        self.pass(n, out)
    }

    /// `[1, N]` input of a dense layer.
    fn flat_act(&self, n: &NodeProto) -> Result<Act> {
        let x = self.act(n, 0)?;
        if x.layout != Layout::Flat {
            return Err(self.err(
                n,
                format!(
                    "needs a [1, N] input, got ONNX shape {:?} (flatten first)",
                    x.onnx_dims()
                ),
            ));
        }
        Ok(x)
    }

    fn dense(&mut self, n: &NodeProto, x: Act, weight: Vec<f32>, out: usize, bias: Option<Vec<f32>>) -> Result<()> {
        let inputs = x.shape[0];
        let mut params: Params = vec![("weight", vec![out, inputs], weight)];
        if let Some(b) = bias {
            params.push(("bias", vec![out], b));
        }
        let act = self.emit(
            n,
            json!({"op": "dense", "out_features": out}),
            vec![x],
            vec![out],
            Layout::Flat,
            params,
        );
        self.pass(n, act)
    }

    fn gemm(&mut self, n: &NodeProto) -> Result<()> {
        let a = Attrs::new(n);
        if a.int("transA").unwrap_or(0) != 0 {
            return Err(self.err(n, "transA = 1 is not supported (the data must be the first operand)"));
        }
        let x = self.flat_act(n)?;
        let b = self.constant(n, 1)?;
        let &[r, k] = b.dims.as_slice() else {
            return Err(self.err(n, format!("B of shape {:?} must be 2-D", b.dims)));
        };
        let (alpha, beta) = (a.float("alpha").unwrap_or(1.0), a.float("beta").unwrap_or(1.0));
        let vals = b.floats();
        let (out, inn, weight) = if a.int("transB").unwrap_or(0) != 0 {
            (r, k, vals.iter().map(|v| v * alpha).collect())
        } else {
            (k, r, transpose(&vals, r, k).iter().map(|v| v * alpha).collect())
        };
        if inn != x.shape[0] {
            return Err(self.err(n, format!("B of shape {:?} does not fit {} inputs", b.dims, x.shape[0])));
        }
        let bias = match self.opt_constant(n, 2)? {
            None => None,
            Some(c) => {
                let v = c.floats();
                match v.len() {
                    1 => Some(vec![v[0] * beta; out]),
                    l if l == out => Some(v.iter().map(|x| x * beta).collect()),
                    l => return Err(self.err(n, format!("C has {l} values for {out} outputs"))),
                }
            }
        };
        self.dense(n, x, weight, out, bias)
    }

    fn matmul(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let b = self.constant(n, 1)?;
        let &[k, o] = b.dims.as_slice() else {
            return Err(self.err(
                n,
                format!("the second operand of shape {:?} must be a 2-D constant", b.dims),
            ));
        };
        let weight = transpose(&b.floats(), k, o);
        match x.layout {
            Layout::Flat if x.shape[0] == k => self.dense(n, x, weight, o, None),
            // A Linear over the channels of a channels-last map (ConvNeXt): a 1×1 convolution.
            Layout::Nhwc if x.shape[0] == k => {
                let (_, h, w) = x.chw().unwrap_or_default();
                let attrs = json!({"op": "conv2d", "out_channels": o, "kernel": [1, 1]});
                let out = self.emit(
                    n,
                    attrs,
                    vec![x],
                    vec![o, h, w],
                    Layout::Nhwc,
                    vec![("weight", vec![o, k, 1, 1], weight)],
                );
                self.pass(n, out)
            }
            _ => Err(self.err(
                n,
                format!(
                    "MatMul of ONNX shape {:?} by {:?} is not supported",
                    x.onnx_dims(),
                    b.dims
                ),
            )),
        }
    }

    fn pool(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.chw_act(n)?;
        let a = Attrs::new(n);
        let max = n.op_type == "MaxPool";
        if n.output.get(1).is_some_and(|s| !s.is_empty()) && self.uses.get(&n.output[1]).copied().unwrap_or(0) > 0 {
            return Err(self.err(n, "the Indices output is not supported"));
        }
        let k = match a.ints("kernel_shape") {
            Some([h, w]) if *h > 0 && *w > 0 => (*h as usize, *w as usize),
            v => return Err(self.err(n, format!("`kernel_shape` {v:?}: netwalk reads 2-D pooling"))),
        };
        let s = self.hw_attr(n, "strides", 1)?;
        if self.hw_attr(n, "dilations", 1)? != (1, 1) {
            return Err(self.err(n, "dilated pooling is not supported"));
        }
        let (c, h, w) = x.chw().unwrap_or_default();
        let p = self.pads(n, (h, w), k, s, (1, 1))?;
        if p[0] != p[2] || p[1] != p[3] {
            return Err(self.err(n, format!("asymmetric pads {p:?} are not supported for pooling")));
        }
        let ceil = a.int("ceil_mode").unwrap_or(0) != 0;
        let (Some(oh), Some(ow)) = (
            pool_out(h, k.0, s.0.max(1), p[0], ceil),
            pool_out(w, k.1, s.1.max(1), p[1], ceil),
        ) else {
            return Err(self.err(n, format!("kernel {k:?} does not fit the padded {h}x{w} input")));
        };
        let mut attrs = json!({"op": if max { "maxpool2d" } else { "avgpool2d" }, "kernel": [k.0, k.1],
            "stride": [s.0, s.1], "padding": [p[0], p[1]], "ceil_mode": ceil});
        if !max {
            attrs["count_include_pad"] = json!(a.int("count_include_pad").unwrap_or(0) != 0);
        }
        let out = self.emit(n, attrs, vec![x], vec![c, oh, ow], Layout::Nchw, vec![]);
        self.pass(n, out)
    }

    fn reduce_mean(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let a = Attrs::new(n);
        let axes = if self.opset >= 18 {
            self.opt_constant(n, 1)?.map(|c| c.ints())
        } else {
            a.ints("axes").map(<[i64]>::to_vec)
        };
        let mut axes: Vec<i64> = axes
            .unwrap_or_default()
            .iter()
            .map(|&v| if v < 0 { v + 4 } else { v })
            .collect();
        axes.sort_unstable();
        let spatial = match x.layout {
            Layout::Nchw => vec![2, 3],
            Layout::Nhwc => vec![1, 2],
            _ => vec![],
        };
        if self.is_channel_mean(&x, &axes, a.int("keepdims").unwrap_or(1) != 0) {
            self.set(n, 0, Val::Pending(Pending::LnMean(x)));
            return Ok(());
        }
        if axes != spatial || x.chw().is_none() {
            return Err(self.err(n, format!("ReduceMean over axes {axes:?} of ONNX shape {:?}: netwalk averages over H and W (or, in a LayerNorm, over channels) only", x.onnx_dims())));
        }
        let c = x.shape[0];
        let layout = x.layout;
        let pooled = self.emit(
            n,
            json!({"op": "global_avgpool2d"}),
            vec![x],
            vec![c, 1, 1],
            layout,
            vec![],
        );
        if a.int("keepdims").unwrap_or(1) != 0 {
            return self.pass(n, pooled);
        }
        let flat = self.emit(n, json!({"op": "flatten"}), vec![pooled], vec![c], Layout::Flat, vec![]);
        self.name_last_after("flatten");
        self.pass(n, flat)
    }

    /// The broadcast netwalk shape of several values of one layout.
    fn broadcast_acts(&self, n: &NodeProto, ins: &[Act]) -> Result<Vec<usize>> {
        let mut shape = ins[0].shape.clone();
        for x in &ins[1..] {
            let same_kind = x.shape.len() == shape.len()
                && matches!((x.layout, ins[0].layout), (a, b) if a == b || x.chw().is_some_and(|(_, h, w)| h == 1 && w == 1));
            let b = fold::broadcast(&shape, &x.shape).filter(|b| b.len() == shape.len() && same_kind);
            shape = b.ok_or_else(|| {
                self.err(
                    n,
                    format!(
                        "ONNX shapes {:?} and {:?} do not broadcast in netwalk",
                        ins[0].onnx_dims(),
                        x.onnx_dims()
                    ),
                )
            })?;
        }
        Ok(shape)
    }

    /// A constant operand in netwalk's shape for value `x` (`[C, H, W]`-ranked or `[N]`-ranked).
    pub(super) fn operand(&self, n: &NodeProto, x: &Act, c: &Const) -> Result<(Vec<usize>, Vec<f32>)> {
        let rank = x.onnx_dims().len();
        if c.dims.len() > rank || c.dims.len() == rank && c.dims[0] != 1 {
            return Err(self.err(
                n,
                format!(
                    "constant of shape {:?} does not broadcast over ONNX shape {:?}",
                    c.dims,
                    x.onnx_dims()
                ),
            ));
        }
        let mut d = vec![1; rank - c.dims.len()];
        d.extend_from_slice(&c.dims);
        let v = c.floats();
        let (dims, vals) = match x.layout {
            Layout::Nchw | Layout::Flat => (d[1..].to_vec(), v),
            Layout::Nhwc => {
                let (h, w, ch) = (d[1], d[2], d[3]);
                let mut t = vec![0.0; v.len()];
                for y in 0..h {
                    for xx in 0..w {
                        for k in 0..ch {
                            t[(k * h + y) * w + xx] = v[(y * w + xx) * ch + k];
                        }
                    }
                }
                (vec![ch, h, w], t)
            }
            _ => return Err(self.err(n, "arithmetic inside a channel shuffle is not supported")),
        };
        let fits = dims.iter().zip(&x.shape).all(|(&a, &b)| a == 1 || a == b);
        if !fits {
            return Err(self.err(
                n,
                format!(
                    "constant of shape {:?} does not broadcast over ONNX shape {:?}",
                    c.dims,
                    x.onnx_dims()
                ),
            ));
        }
        Ok((dims, vals))
    }

    fn binary(&mut self, n: &NodeProto) -> Result<()> {
        let op = n.op_type.to_ascii_lowercase();
        let (v0, v1) = (self.val(n, 0)?.clone(), self.val(n, 1)?.clone());
        match (v0, v1) {
            (Val::Pending(p), other) | (other, Val::Pending(p)) => self.pending_step(n, &op, p, other),
            (Val::Act(a), Val::Act(b)) => {
                if op == "mul"
                    && let Some((x, fused)) = self.self_gate(&a, &b).or_else(|| self.self_gate(&b, &a))
                {
                    return self.simple_on(n, x, fused);
                }
                let shape = self.broadcast_acts(n, &[a.clone(), b.clone()])?;
                let layout = if a.shape == shape { a.layout } else { b.layout };
                let out = self.emit(n, json!({"op": op}), vec![a, b], shape, layout, vec![]);
                self.pass(n, out)
            }
            (Val::Act(x), Val::Const(c)) => self.binary_const(n, &op, x, c),
            (Val::Const(c), Val::Act(x)) if op == "add" || op == "mul" => self.binary_const(n, &op, x, c),
            (Val::Const(_), Val::Act(_)) => {
                Err(self.err(n, format!("a constant {op} a tensor (constant first) is not supported")))
            }
            (Val::Const(_), Val::Const(_)) => Err(self.err(n, "constant arithmetic that could not be folded")),
        }
    }

    fn simple_on(&mut self, n: &NodeProto, x: Act, op: &str) -> Result<()> {
        let shape = x.shape.clone();
        let layout = x.layout;
        let out = self.emit(n, json!({"op": op}), vec![x], shape, layout, vec![]);
        self.name_last_after(op);
        self.pass(n, out)
    }

    fn binary_const(&mut self, n: &NodeProto, op: &str, x: Act, c: Const) -> Result<()> {
        if self.layernorm_affine(n, op, &x, &c)? {
            return self.pass(n, x);
        }
        // MatMul + Add: the bias of the dense layer (or 1×1 conv) just made.
        if op == "add"
            && let Src::Layer(l) = x.src
            && matches!(self.layers[l].op(), "dense" | "conv2d")
            && !self.layers[l].params.iter().any(|p| p.0 == "bias")
            && self.used_once(&n.input[0])
            && c.len() == x.shape[0]
            && c.dims.iter().rev().skip(1).all(|&d| d == 1)
        {
            self.layers[l].params.push(("bias", vec![x.shape[0]], c.floats()));
            return self.pass(n, x);
        }
        let (dims, vals) = self.operand(n, &x, &c)?;
        let shape = x.shape.clone();
        let layout = x.layout;
        let attrs = json!({"op": op, "constant": dims});
        let out = self.emit(n, attrs, vec![x], shape, layout, vec![("weight", dims, vals)]);
        self.pass(n, out)
    }

    fn clip(&mut self, n: &NodeProto) -> Result<()> {
        let a = Attrs::new(n);
        let (lo, hi) = if self.opset >= 11 {
            let get = |g: &Self, i| -> Result<Option<f32>> {
                match g.opt_constant(n, i)? {
                    None => Ok(None),
                    Some(c) => c.scalar().map(Some).ok_or_else(|| g.err(n, "min/max must be scalars")),
                }
            };
            (get(self, 1)?, get(self, 2)?)
        } else {
            (a.float("min"), a.float("max"))
        };
        let attrs = match (lo, hi) {
            (Some(l), Some(h)) if l == 0.0 && h == 6.0 => json!({"op": "relu6"}),
            (Some(0.0), None) => json!({"op": "relu"}),
            (l, h) => json!({"op": "clip", "min": l.unwrap_or(f32::MIN), "max": h.unwrap_or(f32::MAX)}),
        };
        self.simple(n, attrs)
    }

    fn prelu(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let slope = self.constant(n, 1)?;
        let (dims, vals) = self.operand(n, &x, &slope)?;
        let per_channel = dims[0] == x.shape[0] && dims[1..].iter().all(|&d| d == 1);
        let len = if per_channel { x.shape[0] } else { 1 };
        if !per_channel && vals.len() != 1 {
            return Err(self.err(
                n,
                format!(
                    "slope of shape {:?}: netwalk's prelu has one slope per channel or one in all",
                    slope.dims
                ),
            ));
        }
        let shape = x.shape.clone();
        let layout = x.layout;
        let out = self.emit(
            n,
            json!({"op": "prelu"}),
            vec![x],
            shape,
            layout,
            vec![("weight", vec![len], vals)],
        );
        self.pass(n, out)
    }

    fn softmax(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let default = if self.opset >= 13 { -1 } else { 1 };
        let axis = Attrs::new(n).int("axis").unwrap_or(default);
        let ok = match x.layout {
            Layout::Flat => axis == 1 || axis == -1,
            Layout::Nchw => axis == 1 || axis == -3,
            Layout::Nhwc => axis == 3 || axis == -1,
            _ => false,
        };
        if !ok {
            return Err(self.err(
                n,
                format!(
                    "softmax over axis {axis} of ONNX shape {:?}: netwalk's is over features or channels",
                    x.onnx_dims()
                ),
            ));
        }
        self.simple(n, json!({"op": "softmax"}))
    }

    fn pad(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.chw_act(n)?;
        let a = Attrs::new(n);
        let mode = a.string("mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(self.err(
                n,
                format!("pad mode `{mode}` is not supported (netwalk pads with a constant)"),
            ));
        }
        let (pads, value) = if self.opset >= 11 {
            let v = self.opt_constant(n, 2)?.and_then(|c| c.scalar()).unwrap_or(0.0);
            (self.constant(n, 1)?.ints(), v)
        } else {
            (
                a.ints("pads").map(<[i64]>::to_vec).unwrap_or_default(),
                a.float("value").unwrap_or(0.0),
            )
        };
        match pads.as_slice() {
            &[0, 0, t, l, 0, 0, b, r] if [t, l, b, r].iter().all(|&v| v >= 0) => {
                let out = self.pad_layer(n, x, [t as usize, l as usize, b as usize, r as usize], value);
                self.pass(n, out)
            }
            p => Err(self.err(n, format!("pads {p:?}: netwalk pads H and W by non-negative amounts"))),
        }
    }

    fn resize(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.chw_act(n)?;
        let a = Attrs::new(n);
        let (c, h, w) = x.chw().unwrap_or_default();
        let (scales, sizes) = if n.op_type == "Upsample" {
            (
                self.opt_constant(n, 1)?
                    .map(|c| c.floats())
                    .or_else(|| a.floats("scales").map(<[f32]>::to_vec)),
                None,
            )
        } else if self.opset >= 11 {
            (
                self.opt_constant(n, 2)?.map(|c| c.floats()).filter(|v| !v.is_empty()),
                self.opt_constant(n, 3)?.map(|c| c.ints()).filter(|v| !v.is_empty()),
            )
        } else {
            (self.opt_constant(n, 1)?.map(|c| c.floats()), None)
        };
        let mode = a.string("mode").unwrap_or_else(|| "nearest".into());
        let coord = a
            .string("coordinate_transformation_mode")
            .unwrap_or_else(|| "half_pixel".into());
        let nearest = a.string("nearest_mode").unwrap_or_else(|| "round_prefer_floor".into());
        let mut attrs = match (mode.as_str(), coord.as_str()) {
            ("nearest", "asymmetric") if nearest == "floor" || n.op_type == "Upsample" => {
                json!({"op": "upsample", "mode": "nearest"})
            }
            ("nearest", _) if n.op_type == "Upsample" => json!({"op": "upsample", "mode": "nearest"}),
            ("linear" | "bilinear", "half_pixel" | "pytorch_half_pixel") => {
                json!({"op": "upsample", "mode": "bilinear"})
            }
            ("linear" | "bilinear", "align_corners") => {
                json!({"op": "upsample", "mode": "bilinear", "align_corners": true})
            }
            ("linear", _) if n.op_type == "Upsample" => json!({"op": "upsample", "mode": "bilinear"}),
            _ => {
                return Err(self.err(n, format!("Resize mode `{mode}` with `{coord}` coordinates (nearest_mode `{nearest}`) is not supported: netwalk's is PyTorch's nearest or bilinear")));
            }
        };
        let (oh, ow) = match (scales, sizes) {
            (_, Some(s)) if s.len() == 4 && s[0] == 1 && s[1] == c as i64 && s[2] > 0 && s[3] > 0 => {
                attrs["size"] = json!([s[2], s[3]]);
                (s[2] as usize, s[3] as usize)
            }
            (Some(s), None)
                if s.len() == 4
                    && s[0] == 1.0
                    && s[1] == 1.0
                    && s[2] >= 1.0
                    && s[3] >= 1.0
                    && s[2].fract() == 0.0
                    && s[3].fract() == 0.0 =>
            {
                let (sh, sw) = (s[2] as usize, s[3] as usize);
                attrs["scale"] = json!([sh, sw]);
                (h * sh, w * sw)
            }
            (Some(s), None) if s.len() == 4 && s[0] == 1.0 && s[1] == 1.0 && s[2] > 0.0 && s[3] > 0.0 => {
                let (oh, ow) = ((h as f32 * s[2]).floor() as usize, (w as f32 * s[3]).floor() as usize);
                attrs["size"] = json!([oh, ow]);
                (oh, ow)
            }
            _ => return Err(self.err(n, "Resize needs constant scales [1, 1, sh, sw] or sizes [1, C, H, W]")),
        };
        let out = self.emit(n, attrs, vec![x], vec![c, oh, ow], Layout::Nchw, vec![]);
        self.pass(n, out)
    }
}

fn transpose(v: &[f32], r: usize, k: usize) -> Vec<f32> {
    let mut t = vec![0.0; v.len()];
    for i in 0..r {
        for j in 0..k {
            t[j * r + i] = v[i * k + j];
        }
    }
    t
}

/// The one-line message for an op netwalk does not read, with the nearest alternative where there is one.
fn unsupported_hint(op: &str) -> String {
    let hint = match op {
        "LogSoftmax" => " (export the model with Softmax, or without the final LogSoftmax)",
        "Softplus" | "Mish" | "Selu" | "Celu" | "ThresholdedRelu" => " (netwalk has relu, elu, silu, gelu, leaky_relu)",
        "InstanceNormalization" | "GroupNormalization" => {
            " (netwalk has BatchNormalization and channel LayerNormalization)"
        }
        "LRN" => " (netwalk has no local response normalization; AlexNet's torchvision form has none)",
        "MaxUnpool" | "DepthToSpace" | "SpaceToDepth" => " (netwalk upsamples with Resize or ConvTranspose)",
        "LSTM" | "GRU" | "RNN" | "Attention" => " (netwalk shows convolutional networks)",
        "QuantizeLinear" | "DequantizeLinear" | "QLinearConv" => " (export the float model)",
        _ => "",
    };
    format!("op `{op}` is not supported by netwalk{hint}")
}

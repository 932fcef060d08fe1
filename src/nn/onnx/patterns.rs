//! Decompositions recognised as one netwalk op: GELU's erf form `x · (1 + erf(x / √2)) · 0.5`,
//! `x · sigmoid(x)` (SiLU), `x · hardsigmoid(x)` (Hardswish), and LayerNorm over channels, either as
//! ONNX's LayerNormalization (opset 17) or as the mean–sub–pow–mean–add–sqrt–div(–mul–add) chain that
//! PyTorch writes at lower opsets (ConvNeXt). The intermediate values of a chain are
//! [`Pending`]: they exist only symbolically until the chain completes.

use candle_onnx::onnx::NodeProto;
use serde_json::json;

use super::graph::{Act, Graph, Layout, Pending, Src, Val};
use super::proto::{Attrs, Const};
use crate::nn::error::Result;

impl Graph<'_> {
    /// `x · f(x)` for f = sigmoid (SiLU) or hardsigmoid (Hardswish): `gate` made by f from `x`.
    pub(super) fn self_gate(&self, x: &Act, gate: &Act) -> Option<(Act, &'static str)> {
        let Src::Layer(g) = gate.src else { return None };
        let l = &self.layers[g];
        let fused = match l.op() {
            "sigmoid" => "silu",
            "hardsigmoid" => "hardswish",
            _ => return None,
        };
        (l.inputs.first() == Some(x)).then(|| (x.clone(), fused))
    }

    /// GELU's erf form starts with `erf(x / √2)`: the `div` layer just made is folded away.
    pub(super) fn erf(&mut self, n: &NodeProto) -> Result<()> {
        let d = self.act(n, 0)?;
        if let Src::Layer(l) = d.src
            && let layer = &self.layers[l]
            && layer.op() == "div"
            && let Some((_, _, w)) = layer.params.first()
            && w.len() == 1
            && (w[0] - std::f32::consts::SQRT_2).abs() < 1e-5
        {
            let x = layer.inputs[0].clone();
            self.set(n, 0, Val::Pending(Pending::GeluErf(x)));
            return Ok(());
        }
        Err(self.err(n, "Erf is supported only in GELU's form x · (1 + erf(x / √2)) · 0.5"))
    }

    fn gelu_step(&mut self, n: &NodeProto, op: &str, p: Pending, other: Val) -> Result<()> {
        let one =
            |v: &Val, want: f32| matches!(v, Val::Const(c) if c.scalar().is_some_and(|s| (s - want).abs() < 1e-6));
        let next = match (&p, op) {
            (Pending::GeluErf(x), "add") if one(&other, 1.0) => Pending::GeluErfPlusOne(x.clone()),
            (Pending::GeluErfPlusOne(x), "mul") if other == Val::Act(x.clone()) => Pending::GeluProduct(x.clone()),
            (Pending::GeluProduct(x), "mul") if one(&other, 0.5) => {
                let x = x.clone();
                let shape = x.shape.clone();
                let layout = x.layout;
                let out = self.emit(
                    n,
                    json!({"op": "gelu", "approximate": "none"}),
                    vec![x],
                    shape,
                    layout,
                    vec![],
                );
                self.name_last_after("gelu");
                return self.pass(n, out);
            }
            _ => return Err(self.err(n, "Erf is supported only in GELU's form x · (1 + erf(x / √2)) · 0.5")),
        };
        self.set(n, 0, Val::Pending(next));
        Ok(())
    }

    pub(super) fn layernorm(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let axis = Attrs::new(n).int("axis").unwrap_or(-1);
        let ok = match x.layout {
            Layout::Nhwc => axis == -1 || axis == 3,
            Layout::Flat => axis == -1 || axis == 1,
            _ => false,
        };
        if !ok {
            return Err(self.err(n, format!("LayerNormalization from axis {axis} of ONNX shape {:?}: netwalk normalises over channels (channels-last) or features", x.onnx_dims())));
        }
        let c = x.shape[0];
        let scale = self.constant(n, 1)?;
        let bias = self
            .opt_constant(n, 2)?
            .map(|b| b.floats())
            .unwrap_or_else(|| vec![0.0; c]);
        if scale.len() != c || bias.len() != c {
            return Err(self.err(n, format!("scale/bias sizes do not match {c} channels")));
        }
        let eps = Attrs::new(n).float("epsilon").unwrap_or(1e-5);
        let shape = x.shape.clone();
        let layout = x.layout;
        let params = vec![("weight", vec![c], scale.floats()), ("bias", vec![c], bias)];
        let out = self.emit(
            n,
            json!({"op": "layernorm", "eps": eps}),
            vec![x],
            shape,
            layout,
            params,
        );
        self.pass(n, out)
    }

    /// A binary op with a half-recognised chain on one side.
    pub(super) fn pending_step(&mut self, n: &NodeProto, op: &str, p: Pending, other: Val) -> Result<()> {
        match p {
            Pending::GeluErf(_) | Pending::GeluErfPlusOne(_) | Pending::GeluProduct(_) => {
                self.gelu_step(n, op, p, other)
            }
            _ => self.layernorm_step(n, op, p, other),
        }
    }

    /// `ReduceMean` over the channels only, keeping dimensions: the first step of a LayerNorm.
    pub(super) fn is_channel_mean(&self, x: &Act, axes: &[i64], keepdims: bool) -> bool {
        let channel = match x.layout {
            Layout::Nhwc => 3,
            Layout::Nchw => 1,
            _ => return false,
        };
        keepdims && x.chw().is_some() && axes == [channel]
    }

    /// `(x − mean)²`.
    pub(super) fn layernorm_square(&mut self, n: &NodeProto) -> Result<()> {
        let exponent = self.constant(n, 1).ok().and_then(|c| c.scalar());
        match self.val(n, 0)? {
            Val::Pending(Pending::LnCentered(x)) if exponent == Some(2.0) => {
                let x = x.clone();
                self.set(n, 0, Val::Pending(Pending::LnSquared(x)));
                Ok(())
            }
            _ => Err(self.err(n, "Pow is supported only as the square in LayerNorm's decomposed form")),
        }
    }

    /// The mean of `(x − mean)²` over the channels: the variance.
    pub(super) fn layernorm_variance(&mut self, n: &NodeProto) -> Result<()> {
        let a = Attrs::new(n);
        let axes = if self.opset >= 18 {
            self.opt_constant(n, 1)?.map(|c| c.ints())
        } else {
            a.ints("axes").map(<[i64]>::to_vec)
        };
        let Val::Pending(Pending::LnSquared(x)) = self.val(n, 0)? else {
            return Err(self.err(n, ln_form()));
        };
        let x = x.clone();
        let r = x.onnx_dims().len() as i64;
        let axes: Vec<i64> = axes
            .unwrap_or_default()
            .iter()
            .map(|&v| if v < 0 { v + r } else { v })
            .collect();
        if !self.is_channel_mean(&x, &axes, a.int("keepdims").unwrap_or(1) != 0) {
            return Err(self.err(n, ln_form()));
        }
        self.set(n, 0, Val::Pending(Pending::LnVariance(x)));
        Ok(())
    }

    /// `sqrt(variance + eps)`.
    pub(super) fn layernorm_sqrt(&mut self, n: &NodeProto) -> Result<()> {
        match self.val(n, 0)? {
            Val::Pending(Pending::LnVarianceEps(x, eps)) => {
                let next = Pending::LnStd(x.clone(), *eps);
                self.set(n, 0, Val::Pending(next));
                Ok(())
            }
            _ => Err(self.err(n, "Sqrt is supported only in LayerNorm's decomposed form")),
        }
    }

    fn layernorm_step(&mut self, n: &NodeProto, op: &str, p: Pending, other: Val) -> Result<()> {
        let next = match (p, op, other) {
            // `x − mean(x)`: the pending value is the subtrahend.
            (Pending::LnMean(m), "sub", Val::Act(x))
                if n.input
                    .get(1)
                    .is_some_and(|i| matches!(self.vals.get(i), Some(Val::Pending(_))))
                    && m == x =>
            {
                Pending::LnCentered(x)
            }
            (Pending::LnVariance(x), "add", Val::Const(c)) if c.scalar().is_some_and(|e| e > 0.0) => {
                Pending::LnVarianceEps(x, c.scalar().unwrap_or_default())
            }
            (Pending::LnCentered(x), "div", Val::Pending(Pending::LnStd(y, eps))) if x == y && n.input.len() == 2 => {
                if !matches!(self.vals.get(&n.input[0]), Some(Val::Pending(Pending::LnCentered(_)))) {
                    return Err(self.err(n, ln_form()));
                }
                let c = x.shape[0];
                let shape = x.shape.clone();
                let layout = x.layout;
                // Unit scale and zero shift until a following Mul / Add gives them (layernorm_affine).
                let params = vec![("weight", vec![c], vec![1.0; c]), ("bias", vec![c], vec![0.0; c])];
                let out = self.emit(
                    n,
                    json!({"op": "layernorm", "eps": eps}),
                    vec![x],
                    shape,
                    layout,
                    params,
                );
                return self.pass(n, out);
            }
            _ => return Err(self.err(n, ln_form())),
        };
        self.set(n, 0, Val::Pending(next));
        Ok(())
    }

    /// The `· weight` and `+ bias` after a decomposed LayerNorm, folded into its parameters
    /// (only while they are still the identity: a second scale is a layer of its own).
    pub(super) fn layernorm_affine(&mut self, n: &NodeProto, op: &str, x: &Act, c: &Const) -> Result<bool> {
        let Src::Layer(l) = x.src else { return Ok(false) };
        if self.layers[l].op() != "layernorm" || !self.used_once(&n.input[0]) || !matches!(op, "mul" | "add") {
            return Ok(false);
        }
        let ch = x.shape[0];
        let Ok((dims, vals)) = self.operand(n, x, c) else {
            return Ok(false);
        };
        if dims.first() != Some(&ch) || dims[1..].iter().any(|&d| d != 1) {
            return Ok(false);
        }
        let role = if op == "mul" { "weight" } else { "bias" };
        let identity = if op == "mul" { 1.0 } else { 0.0 };
        let layer = &mut self.layers[l];
        let Some(p) = layer.params.iter_mut().find(|p| p.0 == role) else {
            return Ok(false);
        };
        if p.2.iter().any(|&v| v != identity) {
            return Ok(false);
        }
        // `(x̂ · w) + b`: a Mul after the bias is set would scale the bias too.
        if op == "mul"
            && layer
                .params
                .iter()
                .any(|p| p.0 == "bias" && p.2.iter().any(|&v| v != 0.0))
        {
            return Ok(false);
        }
        let Some(p) = layer.params.iter_mut().find(|p| p.0 == role) else {
            return Ok(false);
        };
        p.2 = vals;
        Ok(true)
    }
}

fn ln_form() -> &'static str {
    "this chain is supported only in LayerNorm's decomposed form over channels: (x − mean) / sqrt(mean((x − mean)²) + eps)"
}

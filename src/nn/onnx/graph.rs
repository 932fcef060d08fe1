//! The graph being translated: what each ONNX tensor is (a constant, or a netwalk layer's output in a
//! given memory layout), the netwalk layers emitted so far, and the final pass that drops layers the
//! output does not need, names the rest and writes `model.json`'s layer list and the weights.

use std::collections::HashMap;
use std::path::Path;

use candle_onnx::onnx::NodeProto;
use serde_json::{Map, Value, json};

use super::names;
use super::proto::Const;
use crate::nn::error::{NnError, Result};

/// Where a netwalk layer reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    Input,
    Layer(usize),
}

/// How a netwalk value (`[C, H, W]` or `[N]`) sits in the ONNX tensor that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[1, C, H, W]`.
    Nchw,
    /// `[1, H, W, C]` (channels-last: between ConvNeXt's permutes, TensorFlow's graphs).
    Nhwc,
    /// `[1, N]`.
    Flat,
    /// `[1, g, C/g, H, W]`: the first reshape of a channel shuffle.
    Grouped(usize),
    /// `[1, C/g, g, H, W]`: its transpose, waiting for the reshape back.
    GroupedT(usize),
    /// `[1, H, W]` of netwalk shape `[1, H, W]`: one channel gathered out, waiting for the
    /// unsqueeze back (torchvision's `transform_input`: `x[:, 0].unsqueeze(1)`).
    Nhw,
}

/// A netwalk value: the layer (or input) that makes it, its netwalk shape and its ONNX layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub src: Src,
    pub shape: Vec<usize>,
    pub layout: Layout,
}

impl Act {
    /// The ONNX tensor's dimensions.
    pub fn onnx_dims(&self) -> Vec<usize> {
        let s = &self.shape;
        match (self.layout, s.as_slice()) {
            (Layout::Nchw, &[c, h, w]) => vec![1, c, h, w],
            (Layout::Nhwc, &[c, h, w]) => vec![1, h, w, c],
            (Layout::Grouped(g), &[c, h, w]) => vec![1, g, c / g, h, w],
            (Layout::GroupedT(g), &[c, h, w]) => vec![1, c / g, g, h, w],
            (Layout::Nhw, &[_, h, w]) => vec![1, h, w],
            _ => vec![1, s.iter().product()],
        }
    }
    pub fn chw(&self) -> Option<(usize, usize, usize)> {
        match self.shape.as_slice() {
            &[c, h, w] => Some((c, h, w)),
            _ => None,
        }
    }
}

/// Half-recognised decompositions, resolved by the nodes that follow.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// `erf(x / √2)`, then `+ 1`, then `· x` (then `· 0.5`): PyTorch's GELU before opset 20.
    GeluErf(Act),
    GeluErfPlusOne(Act),
    GeluProduct(Act),
    /// LayerNorm's decomposed form: `mean(x)` over channels, `x − mean`, its square, the variance,
    /// `variance + eps`, `sqrt(variance + eps)`.
    LnMean(Act),
    LnCentered(Act),
    LnSquared(Act),
    LnVariance(Act),
    LnVarianceEps(Act, f32),
    LnStd(Act, f32),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Const(Const),
    Act(Act),
    Pending(Pending),
}

/// A netwalk layer emitted from one or more ONNX nodes.
#[derive(Debug, Clone)]
pub struct Emitted {
    /// `op` and its attributes (no name, no inputs: those are assigned at the end).
    pub attrs: Map<String, Value>,
    pub inputs: Vec<Act>,
    /// Module path and op segment, for the readable name.
    pub part: (String, String),
    /// Parameters by role suffix (`weight`, `bias`, `running_mean`, `running_var`).
    pub params: Vec<(&'static str, Vec<usize>, Vec<f32>)>,
    /// The ONNX tensor whose value equals this layer's output (NCHW or flat), if there is one.
    pub tensor: Option<String>,
}

impl Emitted {
    pub fn op(&self) -> &str {
        self.attrs.get("op").and_then(Value::as_str).unwrap_or("")
    }
}

pub struct Graph<'a> {
    pub file: &'a Path,
    pub dir: &'a Path,
    pub opset: i64,
    pub vals: HashMap<String, Val>,
    pub layers: Vec<Emitted>,
    /// How many nodes (and graph outputs) read each tensor.
    pub uses: HashMap<String, usize>,
}

impl<'a> Graph<'a> {
    /// Error about `node`, naming it, its op type and the opset.
    pub fn err(&self, node: &NodeProto, msg: impl std::fmt::Display) -> NnError {
        let name = if node.name.is_empty() {
            node.output.first().map(String::as_str).unwrap_or("?")
        } else {
            node.name.as_str()
        };
        NnError::format(
            self.file,
            format!("node `{name}` ({}, opset {}): {msg}", node.op_type, self.opset),
        )
    }

    pub fn val(&self, node: &NodeProto, i: usize) -> Result<&Val> {
        let name = node
            .input
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.err(node, format!("missing input {i}")))?;
        self.vals.get(name).ok_or_else(|| {
            self.err(
                node,
                format!("input `{name}` is neither a graph input, an initializer nor an earlier node's output"),
            )
        })
    }

    /// Input `i` if it is given (optional inputs may be absent or empty).
    pub fn opt_val(&self, node: &NodeProto, i: usize) -> Result<Option<&Val>> {
        match node.input.get(i) {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(_) => self.val(node, i).map(Some),
        }
    }

    pub fn act(&self, node: &NodeProto, i: usize) -> Result<Act> {
        match self.val(node, i)? {
            Val::Act(a) => Ok(a.clone()),
            Val::Const(_) => Err(self.err(node, format!("input {i} is a constant where netwalk needs the data flowing through the network"))),
            Val::Pending(_) => Err(self.err(
                node,
                "this use of a partial result is not supported (netwalk recognises GELU's erf form and LayerNorm's decomposed form)",
            )),
        }
    }

    pub fn constant(&self, node: &NodeProto, i: usize) -> Result<Const> {
        match self.val(node, i)? {
            Val::Const(c) => Ok(c.clone()),
            _ => Err(self.err(
                node,
                format!("input {i} must be a constant (an initializer) for netwalk"),
            )),
        }
    }

    pub fn opt_constant(&self, node: &NodeProto, i: usize) -> Result<Option<Const>> {
        match self.opt_val(node, i)? {
            None => Ok(None),
            Some(Val::Const(c)) => Ok(Some(c.clone())),
            Some(_) => Err(self.err(node, format!("input {i} must be a constant for netwalk"))),
        }
    }

    /// Bind output `i` of `node`.
    pub fn set(&mut self, node: &NodeProto, i: usize, v: Val) {
        if let Some(name) = node.output.get(i).filter(|s| !s.is_empty()) {
            if let Val::Act(a) = &v
                && let Src::Layer(l) = a.src
                && matches!(a.layout, Layout::Nchw | Layout::Flat)
            {
                self.layers[l].tensor = Some(name.clone());
            }
            self.vals.insert(name.clone(), v);
        }
    }

    /// Add a layer reading `inputs`, with `attrs` (must hold `op`); returns its output value.
    pub fn emit(
        &mut self,
        node: &NodeProto,
        attrs: Value,
        inputs: Vec<Act>,
        shape: Vec<usize>,
        layout: Layout,
        params: Vec<(&'static str, Vec<usize>, Vec<f32>)>,
    ) -> Act {
        let fallback = node.output.first().cloned().unwrap_or_default();
        let attrs = match attrs {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        self.layers.push(Emitted {
            attrs,
            inputs,
            part: names::split(&node.name, &fallback),
            params,
            tensor: None,
        });
        Act {
            src: Src::Layer(self.layers.len() - 1),
            shape,
            layout,
        }
    }

    /// Name the layer just emitted after `op` rather than its node's op type (a SiLU recognised at
    /// a Mul node is `<module>.silu`; the pad in front of a convolution `<module>.pad`).
    pub fn name_last_after(&mut self, op: &str) {
        if let Some(last) = self.layers.last_mut() {
            last.part.1 = op.to_owned();
        }
    }

    /// Whether tensor `name` is read once only (so its producer may be fused with the reader).
    pub fn used_once(&self, name: &str) -> bool {
        self.uses.get(name).copied().unwrap_or(0) <= 1
    }
}

/// The translated network: `model.json`'s layers, the weights, and the ONNX tensor of each layer.
pub struct Translated {
    pub layers: Vec<Value>,
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    pub onnx_tensors: Map<String, Value>,
}

/// Keep the layers `output` needs, name them and write them out.
pub fn finish(layers: Vec<Emitted>, output: &Act, input_name: &str, file: &Path) -> Result<Translated> {
    let Src::Layer(last) = output.src else {
        return Err(NnError::format(
            file,
            "the graph's output is its input: there are no layers to show",
        ));
    };
    let mut needed = vec![false; layers.len()];
    needed[last] = true;
    for i in (0..=last).rev() {
        if needed[i] {
            for a in &layers[i].inputs {
                if let Src::Layer(j) = a.src {
                    needed[j] = true;
                }
            }
        }
    }
    let kept: Vec<usize> = (0..=last).filter(|&i| needed[i]).collect();
    let parts: Vec<(String, String)> = kept.iter().map(|&i| layers[i].part.clone()).collect();
    let names = names::assign(&parts, input_name);
    let mut name_of: HashMap<usize, &str> = HashMap::new();
    for (k, &i) in kept.iter().enumerate() {
        name_of.insert(i, &names[k]);
    }
    let mut out = Translated {
        layers: Vec::new(),
        tensors: Vec::new(),
        onnx_tensors: Map::new(),
    };
    for (k, &i) in kept.iter().enumerate() {
        let l = &layers[i];
        let mut obj = Map::new();
        obj.insert("name".into(), json!(names[k]));
        for (key, v) in &l.attrs {
            obj.insert(key.clone(), v.clone());
        }
        // A convolution or dense layer exported without a bias says so; the reader would otherwise
        // look for `<name>.bias` in the weights.
        let op = l.attrs.get("op").and_then(Value::as_str).unwrap_or("");
        if matches!(op, "conv2d" | "dense" | "conv_transpose2d") && !l.params.iter().any(|p| p.0 == "bias") {
            obj.insert("bias".into(), Value::Null);
        }
        let inputs: Vec<&str> = l
            .inputs
            .iter()
            .map(|a| match a.src {
                Src::Input => input_name,
                Src::Layer(j) => name_of[&j],
            })
            .collect();
        obj.insert("inputs".into(), json!(inputs));
        out.layers.push(Value::Object(obj));
        for (role, dims, data) in &l.params {
            out.tensors
                .push((format!("{}.{role}", names[k]), dims.clone(), data.clone()));
        }
        if let Some(t) = &l.tensor {
            out.onnx_tensors.insert(names[k].clone(), json!(t));
        }
    }
    Ok(out)
}

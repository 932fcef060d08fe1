//! The `netwalk-model/1` format: `model.json` parsed, validated and shape-checked into a [`Model`].
//!
//! Parsing goes through `serde_json::Value` by hand rather than derive, so every mistake is reported
//! with the layer and attribute it concerns instead of a column number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{NnError, Result};

pub const FORMAT: &str = "netwalk-model/1";

/// Most activations one layer may have; larger models are refused before anything is allocated.
pub const MAX_LAYER_ELEMENTS: usize = 1 << 28;
/// Most activations in the whole model (f32: 4 GiB).
pub const MAX_TOTAL_ELEMENTS: usize = 1 << 30;
/// Largest kernel side, stride, padding, dilation or channel count accepted.
const MAX_DIM: usize = 1 << 20;

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
    MaxPool2d {
        kernel: Pair,
        stride: Pair,
        padding: Pair,
    },
    AvgPool2d {
        kernel: Pair,
        stride: Pair,
        padding: Pair,
    },
    GlobalAvgPool2d,
    Flatten,
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
    Add,
    Concat,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "conv2d",
            Op::Dense { .. } => "dense",
            Op::BatchNorm2d { .. } => "batchnorm2d",
            Op::MaxPool2d { .. } => "maxpool2d",
            Op::AvgPool2d { .. } => "avgpool2d",
            Op::GlobalAvgPool2d => "global_avgpool2d",
            Op::Flatten => "flatten",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::Softmax => "softmax",
            Op::Add => "add",
            Op::Concat => "concat",
        }
    }
    /// Ops applied neuron by neuron: shown folded into the preceding conv/dense block.
    pub fn is_elementwise(&self) -> bool {
        matches!(self, Op::Relu | Op::Sigmoid | Op::Tanh | Op::BatchNorm2d { .. })
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
    /// Load `model.json` (or a directory holding one).
    pub fn load(path: &Path) -> Result<Model> {
        let path = if path.is_dir() {
            path.join("model.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).map_err(|e| NnError::io(&path, e))?;
        Model::parse(&text, &path)
    }

    /// Parse model JSON text; `path` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Model> {
        let root: Value = serde_json::from_str(text).map_err(|source| NnError::Json {
            file: path.to_path_buf(),
            source,
        })?;
        Parser { file: path }.model(&root)
    }

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

struct Parser<'a> {
    file: &'a Path,
}

impl Parser<'_> {
    fn err(&self, msg: impl Into<String>) -> NnError {
        NnError::format(self.file, msg)
    }
    fn lerr(&self, layer: &str, msg: impl Into<String>) -> NnError {
        NnError::layer(self.file, layer, msg)
    }

    fn resolve(&self, rel: &str) -> PathBuf {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        dir.join(rel)
    }

    fn model(&self, root: &Value) -> Result<Model> {
        let obj = root
            .as_object()
            .ok_or_else(|| self.err("top level must be a JSON object"))?;
        match obj.get("format").and_then(Value::as_str) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(self.err(format!("unsupported format `{other}` (expected `{FORMAT}`)")));
            }
            None => return Err(self.err(format!("missing \"format\": \"{FORMAT}\""))),
        }
        let name = match obj.get("name") {
            None => self
                .file
                .parent()
                .and_then(|p| p.file_name())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".to_owned()),
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.err("\"name\" must be a string"))?
                .to_owned(),
        };
        let input = self.input(obj.get("input").ok_or_else(|| self.err("missing \"input\""))?)?;
        let classes = match obj.get("classes") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| self.err("\"classes\" must be an array of strings"))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(_) => return Err(self.err("\"classes\" must be an array of strings")),
        };
        let weights = self.resolve(
            obj.get("weights")
                .and_then(Value::as_str)
                .ok_or_else(|| self.err("missing \"weights\" (path of a .safetensors file)"))?,
        );
        let checkpoints = match obj.get("checkpoints") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let label = c.get("label").and_then(Value::as_str);
                    let w = c.get("weights").and_then(Value::as_str);
                    match (label, w) {
                        (Some(label), Some(w)) => Ok(Checkpoint {
                            label: label.to_owned(),
                            weights: self.resolve(w),
                        }),
                        _ => Err(self.err(format!("checkpoint {i} needs string fields \"label\" and \"weights\""))),
                    }
                })
                .collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(self.err("\"checkpoints\" must be an array")),
        };
        let samples = match obj.get("samples") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(self.resolve(s)),
            Some(_) => return Err(self.err("\"samples\" must be a path string")),
        };
        let layers_v = obj
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| self.err("missing \"layers\" array"))?;
        if layers_v.is_empty() {
            return Err(self.err("\"layers\" is empty"));
        }
        let layers = self.layers(layers_v, &input)?;
        if let (Some(classes), Some(last)) = (&classes, layers.last())
            && classes.len() != last.shape.elements()
        {
            return Err(self.err(format!(
                "{} classes given but the last layer `{}` has {} outputs",
                classes.len(),
                last.name,
                last.shape.elements()
            )));
        }
        Ok(Model {
            path: self.file.to_path_buf(),
            name,
            input,
            classes,
            weights,
            checkpoints,
            samples,
            layers,
        })
    }

    fn input(&self, v: &Value) -> Result<InputSpec> {
        let obj = v.as_object().ok_or_else(|| self.err("\"input\" must be an object"))?;
        let name = obj.get("name").and_then(Value::as_str).unwrap_or("input").to_owned();
        let dims = obj
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| self.err("input: missing \"shape\" ([C, H, W] or [N])"))?
            .iter()
            .map(|d| {
                d.as_u64()
                    .filter(|&d| d > 0 && d <= MAX_DIM as u64)
                    .map(|d| d as usize)
                    .ok_or_else(|| self.err(format!("input: bad dimension {d} in \"shape\"")))
            })
            .collect::<Result<Vec<_>>>()?;
        let shape = match *dims.as_slice() {
            [c, h, w] => Shape::Chw(c, h, w),
            [n] => Shape::Flat(n),
            _ => return Err(self.err("input: \"shape\" must be [C, H, W] or [N]")),
        };
        if checked_elements(&dims).is_none_or(|e| e > MAX_LAYER_ELEMENTS) {
            return Err(self.err(format!(
                "input: shape {shape} exceeds the limit of {MAX_LAYER_ELEMENTS} values"
            )));
        }
        let c = shape.channels();
        let per_channel = |key: &str, default: f32| -> Result<Vec<f32>> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(vec![default; c]),
                Some(Value::Array(a)) => {
                    let vals = a
                        .iter()
                        .map(|x| {
                            x.as_f64()
                                .map(|x| x as f32)
                                .filter(|x| x.is_finite())
                                .ok_or_else(|| self.err(format!("input: \"{key}\" must hold numbers")))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    match vals.len() {
                        1 => Ok(vec![vals[0]; c]),
                        n if n == c => Ok(vals),
                        n => Err(self.err(format!("input: \"{key}\" has {n} values for {c} channels"))),
                    }
                }
                Some(_) => Err(self.err(format!("input: \"{key}\" must be an array"))),
            }
        };
        let mean = per_channel("mean", 0.0)?;
        let std = per_channel("std", 1.0)?;
        if std.contains(&0.0) {
            return Err(self.err("input: \"std\" must not be 0"));
        }
        Ok(InputSpec { name, shape, mean, std })
    }

    fn layers(&self, values: &[Value], input: &InputSpec) -> Result<Vec<Layer>> {
        // First pass: names and declared inputs, so inputs may be resolved and sorted.
        struct Raw<'v> {
            name: String,
            obj: &'v Map<String, Value>,
            inputs: Vec<String>,
        }
        let mut raws = Vec::with_capacity(values.len());
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, v) in values.iter().enumerate() {
            let obj = v
                .as_object()
                .ok_or_else(|| self.err(format!("layer {i} must be an object")))?;
            let name = obj
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| self.err(format!("layer {i} has no \"name\"")))?
                .to_owned();
            if name == input.name {
                return Err(self.lerr(&name, "name is already used by the model input"));
            }
            if by_name.insert(name.clone(), i).is_some() {
                return Err(self.lerr(&name, "duplicate layer name"));
            }
            let inputs = match obj.get("inputs") {
                None | Some(Value::Null) => match i {
                    0 => vec![input.name.clone()],
                    _ => vec![raws.last().map(|r: &Raw| r.name.clone()).unwrap_or_default()],
                },
                Some(Value::Array(a)) if !a.is_empty() => a
                    .iter()
                    .map(|s| {
                        s.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| self.lerr(&name, "\"inputs\" must be layer names"))
                    })
                    .collect::<Result<Vec<_>>>()?,
                Some(_) => {
                    return Err(self.lerr(&name, "\"inputs\" must be a non-empty array of names"));
                }
            };
            raws.push(Raw { name, obj, inputs });
        }
        for r in &raws {
            for inp in &r.inputs {
                if *inp == r.name {
                    return Err(self.lerr(&r.name, "lists itself in \"inputs\" (a cycle)"));
                }
                if *inp != input.name && !by_name.contains_key(inp) {
                    return Err(self.lerr(&r.name, format!("unknown input `{inp}`")));
                }
            }
        }
        // Topological order, stable with respect to file order (Kahn's algorithm, smallest index first).
        let n = raws.len();
        let mut indegree = vec![0usize; n];
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, r) in raws.iter().enumerate() {
            for inp in &r.inputs {
                if let Some(&j) = by_name.get(inp) {
                    indegree[i] += 1;
                    readers[j].push(i);
                }
            }
        }
        let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &k in &readers[i] {
                indegree[k] -= 1;
                if indegree[k] == 0 {
                    ready.insert(k);
                }
            }
        }
        if order.len() != n {
            // Every unordered layer reads from another unordered one; walking those reads n times
            // from any of them lands on a cycle (layers merely downstream of it are not on it).
            let stuck_input = |i: usize| {
                raws[i]
                    .inputs
                    .iter()
                    .filter_map(|s| by_name.get(s).copied())
                    .find(|&j| indegree[j] > 0)
            };
            let mut at = (0..n).find(|&i| indegree[i] > 0).unwrap_or(0);
            for _ in 0..n {
                at = stuck_input(at).unwrap_or(at);
            }
            let mut cycle = vec![raws[at].name.as_str()];
            let mut k = stuck_input(at).unwrap_or(at);
            while k != at && cycle.len() <= n {
                cycle.push(&raws[k].name);
                k = stuck_input(k).unwrap_or(at);
            }
            cycle.push(&raws[at].name);
            return Err(self.lerr(
                &raws[at].name,
                format!(
                    "its \"inputs\" form a cycle: {} (each reads from the next)",
                    cycle.join(" <- ")
                ),
            ));
        }
        let mut position = vec![0usize; n];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut layers: Vec<Layer> = Vec::with_capacity(n);
        let mut total = 0usize;
        for &i in &order {
            let r = &raws[i];
            let sources: Vec<Source> = r
                .inputs
                .iter()
                .map(|s| match by_name.get(s) {
                    Some(&j) => Source::Layer(position[j]),
                    None => Source::Input,
                })
                .collect();
            let in_shapes: Vec<Shape> = sources
                .iter()
                .map(|&s| match s {
                    Source::Input => input.shape,
                    Source::Layer(j) => layers[j].shape,
                })
                .collect();
            let layer = self.layer(&r.name, r.obj, sources, &in_shapes)?;
            total = total
                .checked_add(layer.shape.elements())
                .filter(|&t| t <= MAX_TOTAL_ELEMENTS)
                .ok_or_else(|| {
                    self.lerr(
                        &r.name,
                        format!("the model would need more than {MAX_TOTAL_ELEMENTS} activations in all"),
                    )
                })?;
            layers.push(layer);
        }
        Ok(layers)
    }

    fn layer(&self, name: &str, obj: &Map<String, Value>, inputs: Vec<Source>, in_shapes: &[Shape]) -> Result<Layer> {
        let op_name = obj
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| self.lerr(name, "missing \"op\""))?;
        let a = Attrs {
            p: self,
            layer: name,
            obj,
        };
        let known: &[&str] = match op_name {
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
            "maxpool2d" | "avgpool2d" => &["kernel", "stride", "padding"],
            "global_avgpool2d" | "flatten" | "relu" | "sigmoid" | "tanh" | "softmax" | "add" | "concat" => &[],
            other => {
                return Err(self.lerr(
                    name,
                    format!(
                        "unknown op `{other}` (known: conv2d, dense, batchnorm2d, maxpool2d, \
                         avgpool2d, global_avgpool2d, flatten, relu, sigmoid, tanh, softmax, add, concat)"
                    ),
                ));
            }
        };
        for key in obj.keys() {
            if !matches!(key.as_str(), "name" | "op" | "inputs") && !known.contains(&key.as_str()) {
                return Err(self.lerr(name, format!("unknown attribute `{key}` for op `{op_name}`")));
            }
        }
        let single = |what: &str| -> Result<Shape> {
            match in_shapes {
                [s] => Ok(*s),
                _ => Err(self.lerr(
                    name,
                    format!("`{what}` takes exactly one input, got {}", in_shapes.len()),
                )),
            }
        };
        let chw = |what: &str| -> Result<(usize, usize, usize)> {
            match single(what)? {
                Shape::Chw(c, h, w) => Ok((c, h, w)),
                s => Err(self.lerr(name, format!("`{what}` needs a [C, H, W] input, got {s}"))),
            }
        };
        let mut params = Vec::new();
        let (op, shape) = match op_name {
            "conv2d" => {
                let (c, h, w) = chw("conv2d")?;
                let out_channels = a.count("out_channels", None)?;
                let kernel = a.pair("kernel", None)?;
                let stride = a.pair("stride", Some((1, 1)))?;
                let padding = a.pair_zero("padding")?;
                let dilation = a.pair("dilation", Some((1, 1)))?;
                let groups = a.count("groups", Some(1))?;
                if c % groups != 0 || out_channels % groups != 0 {
                    return Err(self.lerr(
                        name,
                        format!(
                            "groups = {groups} must divide the input channels ({c}) and out_channels ({out_channels})"
                        ),
                    ));
                }
                let oh = conv_out(h, kernel.0, stride.0, padding.0, dilation.0);
                let ow = conv_out(w, kernel.1, stride.1, padding.1, dilation.1);
                let (Some(oh), Some(ow)) = (oh, ow) else {
                    return Err(self.lerr(
                        name,
                        format!("kernel {kernel:?} (dilation {dilation:?}) does not fit the padded {h}x{w} input"),
                    ));
                };
                a.param(
                    &mut params,
                    ParamRole::Weight,
                    vec![out_channels, c / groups, kernel.0, kernel.1],
                    false,
                )?;
                a.param(&mut params, ParamRole::Bias, vec![out_channels], true)?;
                (
                    Op::Conv2d {
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        dilation,
                        groups,
                    },
                    Shape::Chw(out_channels, oh, ow),
                )
            }
            "dense" => {
                let n = match single("dense")? {
                    Shape::Flat(n) => n,
                    s => {
                        return Err(self.lerr(
                            name,
                            format!("`dense` needs a flat [N] input, got {s} (add a `flatten` layer)"),
                        ));
                    }
                };
                let out_features = a.count("out_features", None)?;
                a.param(&mut params, ParamRole::Weight, vec![out_features, n], false)?;
                a.param(&mut params, ParamRole::Bias, vec![out_features], true)?;
                (Op::Dense { out_features }, Shape::Flat(out_features))
            }
            "batchnorm2d" => {
                let (c, h, w) = chw("batchnorm2d")?;
                let eps = match obj.get("eps") {
                    None => 1e-5,
                    Some(v) => v
                        .as_f64()
                        .filter(|e| *e > 0.0 && e.is_finite())
                        .ok_or_else(|| self.lerr(name, "\"eps\" must be a positive number"))?
                        as f32,
                };
                for role in [
                    ParamRole::Weight,
                    ParamRole::Bias,
                    ParamRole::RunningMean,
                    ParamRole::RunningVar,
                ] {
                    a.param(
                        &mut params,
                        role,
                        vec![c],
                        role != ParamRole::RunningMean && role != ParamRole::RunningVar,
                    )?;
                }
                (Op::BatchNorm2d { eps }, Shape::Chw(c, h, w))
            }
            "maxpool2d" | "avgpool2d" => {
                let (c, h, w) = chw(op_name)?;
                let kernel = a.pair("kernel", None)?;
                let stride = a.pair("stride", Some(kernel))?;
                let padding = a.pair_zero("padding")?;
                if padding.0 * 2 > kernel.0 || padding.1 * 2 > kernel.1 {
                    return Err(self.lerr(
                        name,
                        format!("padding {padding:?} must be at most half the kernel {kernel:?}"),
                    ));
                }
                let oh = conv_out(h, kernel.0, stride.0, padding.0, 1);
                let ow = conv_out(w, kernel.1, stride.1, padding.1, 1);
                let (Some(oh), Some(ow)) = (oh, ow) else {
                    return Err(self.lerr(name, format!("kernel {kernel:?} does not fit the padded {h}x{w} input")));
                };
                let op = if op_name == "maxpool2d" {
                    Op::MaxPool2d {
                        kernel,
                        stride,
                        padding,
                    }
                } else {
                    Op::AvgPool2d {
                        kernel,
                        stride,
                        padding,
                    }
                };
                (op, Shape::Chw(c, oh, ow))
            }
            "global_avgpool2d" => {
                let (c, _, _) = chw(op_name)?;
                (Op::GlobalAvgPool2d, Shape::Chw(c, 1, 1))
            }
            "flatten" => (Op::Flatten, Shape::Flat(single(op_name)?.elements())),
            "relu" => (Op::Relu, single(op_name)?),
            "sigmoid" => (Op::Sigmoid, single(op_name)?),
            "tanh" => (Op::Tanh, single(op_name)?),
            "softmax" => (Op::Softmax, single(op_name)?),
            "add" => {
                let first = in_shapes[0];
                if in_shapes.len() < 2 {
                    return Err(self.lerr(name, "`add` needs at least 2 inputs"));
                }
                if let Some(s) = in_shapes.iter().find(|s| **s != first) {
                    return Err(self.lerr(
                        name,
                        format!("`add` inputs must have the same shape, got {first} and {s}"),
                    ));
                }
                (Op::Add, first)
            }
            "concat" => {
                if in_shapes.len() < 2 {
                    return Err(self.lerr(name, "`concat` needs at least 2 inputs"));
                }
                let shape = match in_shapes[0] {
                    Shape::Flat(_) => {
                        let mut n = 0usize;
                        for s in in_shapes {
                            match s {
                                Shape::Flat(k) => n += k,
                                _ => {
                                    return Err(self.lerr(name, "`concat` inputs must all be [N] or all [C, H, W]"));
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
                                    return Err(self.lerr(
                                        name,
                                        format!(
                                            "`concat` joins channels: inputs need the same H, W, got [_, {h}, {w}] and {other}"
                                        ),
                                    ));
                                }
                            }
                        }
                        Shape::Chw(c, h, w)
                    }
                };
                (Op::Concat, shape)
            }
            _ => unreachable!("op names were checked above"),
        };
        if checked_elements(&shape.dims()).is_none_or(|e| e > MAX_LAYER_ELEMENTS) {
            return Err(self.lerr(
                name,
                format!("output {shape} exceeds the limit of {MAX_LAYER_ELEMENTS} activations per layer"),
            ));
        }
        if in_shapes
            .first()
            .is_some_and(|&s| work_elements(&op, s).is_none_or(|e| e > MAX_LAYER_ELEMENTS))
        {
            return Err(self.lerr(
                name,
                format!(
                    "the forward pass would need a temporary buffer (padded input, dilated kernel or \
                     unfolded patches) over the limit of {MAX_LAYER_ELEMENTS} values; reduce padding, \
                     dilation or kernel size"
                ),
            ));
        }
        for p in &params {
            if checked_elements(&p.shape).is_none_or(|e| e > MAX_LAYER_ELEMENTS) {
                return Err(self.lerr(
                    name,
                    format!("parameter `{}` of shape {:?} is too large", p.tensor, p.shape),
                ));
            }
        }
        Ok(Layer {
            name: name.to_owned(),
            op,
            inputs,
            shape,
            params,
        })
    }
}

/// Attribute readers for one layer object.
struct Attrs<'a> {
    p: &'a Parser<'a>,
    layer: &'a str,
    obj: &'a Map<String, Value>,
}

impl Attrs<'_> {
    fn count(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match (self.obj.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.p.lerr(self.layer, format!("missing \"{key}\""))),
            (Some(v), _) => v
                .as_u64()
                .filter(|&n| n >= 1 && n <= MAX_DIM as u64)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    self.p.lerr(
                        self.layer,
                        format!("\"{key}\" must be an integer in 1..={MAX_DIM}, got {v}"),
                    )
                }),
        }
    }

    /// An int or [h, w]; `min` is the smallest allowed value.
    fn pair_min(&self, key: &str, default: Option<Pair>, min: u64) -> Result<Pair> {
        let bad = |v: &Value| {
            self.p.lerr(
                self.layer,
                format!("\"{key}\" must be an integer or [h, w] of integers in {min}..={MAX_DIM}, got {v}"),
            )
        };
        let one = |v: &Value| -> Option<usize> {
            v.as_u64()
                .filter(|&n| n >= min && n <= MAX_DIM as u64)
                .map(|n| n as usize)
        };
        match (self.obj.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.p.lerr(self.layer, format!("missing \"{key}\""))),
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
                return Err(self.p.lerr(self.layer, format!("\"{key}\" cannot be null for this op")));
            }
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                return Err(self
                    .p
                    .lerr(self.layer, format!("\"{key}\" must be a tensor name or null, got {v}")));
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
pub fn work_elements(op: &Op, input: Shape) -> Option<usize> {
    let Shape::Chw(c, h, w) = input else {
        return Some(0);
    };
    let padded = |(ph, pw): Pair| -> Option<usize> {
        let hp = h.checked_add(ph.checked_mul(2)?)?;
        let wp = w.checked_add(pw.checked_mul(2)?)?;
        checked_elements(&[c, hp, wp])
    };
    match *op {
        Op::MaxPool2d { padding, .. } | Op::AvgPool2d { padding, .. } => padded(padding),
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

fn checked_elements(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

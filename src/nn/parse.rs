//! `model.json` read into a [`Model`]: the top-level schema (format, name, input, classes,
//! weights, checkpoints, samples) and the layer graph (names, inputs, an order where every input
//! comes before its reader). Each layer's op, shape and parameters are [`super::ops`]'.
//!
//! Parsing goes through `serde_json::Value` by hand rather than derive, so every mistake is reported
//! with the layer and attribute it concerns instead of a column number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{NnError, Result};
use super::model::{
    Checkpoint, FORMAT, InputSpec, Layer, MAX_DIM, MAX_LAYER_ELEMENTS, MAX_TOTAL_ELEMENTS, Model, Shape, Source,
};
use super::ops::{self, checked_elements};

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
            let layer = ops::layer(self.file, &r.name, r.obj, sources, &in_shapes)?;
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
}

//! ONNX models opened directly (issue 14): an `.onnx` file is translated into a `netwalk-model/1`
//! folder (model.json, weights.safetensors, onnx-tensors.json), cached by content, and opened as any
//! model; a folder of same-architecture `.onnx` files becomes one model with a checkpoint timeline.
//!
//! The protobuf types are candle-onnx's (prost); the graph work is netwalk's own, because netwalk
//! must keep each ONNX node as a named, inspectable layer with its own parameters: a general ONNX
//! runtime's optimiser (tract's decluttering, say) folds batch norms into convolutions and rewrites
//! Gemm as einsum, losing exactly what the scene shows (docs/models.md).

mod convert;
mod fold;
mod graph;
mod names;
mod patterns;
mod plumbing;
mod proto;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use candle_onnx::onnx::{ModelProto, ValueInfoProto, tensor_shape_proto::dimension, type_proto};
use serde_json::{Map, Value, json};

use crate::nn::error::{NnError, Result};
use graph::{Act, Graph, Layout, Src, Val};
pub use proto::{OPSETS, decode_model};

/// What `netwalk import` (and opening an `.onnx` anywhere) may add to the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOptions {
    /// `[C, H, W]` (or `[N]`) for the input's dynamic dimensions (`--input-shape`).
    pub input_shape: Option<Vec<usize>>,
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    pub classes: Option<Vec<String>>,
}

/// A translated model, ready to be written as a folder.
pub struct Imported {
    pub model_json: Value,
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// Netwalk layer → the ONNX tensor holding the same values.
    pub onnx_tensors: Map<String, Value>,
}

/// Whether `path` is an ONNX model file, or a folder of them (and not a netwalk model folder).
pub fn is_onnx(path: &Path) -> bool {
    if path.is_dir() {
        return !path.join("model.json").exists() && !onnx_files(path).unwrap_or_default().is_empty();
    }
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// The `.onnx` files of a folder, in name order.
fn onnx_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| NnError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")))
        .collect();
    files.sort();
    Ok(files)
}

/// Translate the ONNX file at `path`.
pub fn translate(path: &Path, opts: &ImportOptions) -> Result<Imported> {
    let (model, opset) = proto::read_model(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    translate_model(&model, opset, path, dir, opts)
}

/// Translate ONNX bytes (the fuzz target's entry; external data is looked up in `dir`).
pub fn translate_bytes(bytes: &[u8], path: &Path, dir: &Path, opts: &ImportOptions) -> Result<Imported> {
    let (model, opset) = decode_model(bytes, path)?;
    translate_model(&model, opset, path, dir, opts)
}

fn translate_model(model: &ModelProto, opset: i64, file: &Path, dir: &Path, opts: &ImportOptions) -> Result<Imported> {
    let g = model.graph.as_ref().ok_or_else(|| NnError::format(file, "no graph"))?;
    let mut vals = HashMap::new();
    for t in &g.initializer {
        vals.insert(t.name.clone(), Val::Const(proto::tensor_value(t, dir, file)?));
    }
    let inputs: Vec<&ValueInfoProto> = g.input.iter().filter(|i| !vals.contains_key(&i.name)).collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(NnError::format(file, "the graph has no input")),
        many => {
            let names: Vec<&str> = many.iter().map(|i| i.name.as_str()).collect();
            return Err(NnError::format(
                file,
                format!(
                    "the graph has {} inputs ({}); netwalk shows networks of one image input",
                    many.len(),
                    names.join(", ")
                ),
            ));
        }
    };
    let mut uses: HashMap<String, usize> = HashMap::new();
    for n in &g.node {
        for i in &n.input {
            *uses.entry(i.clone()).or_default() += 1;
        }
    }
    for o in &g.output {
        *uses.entry(o.name.clone()).or_default() += 1;
    }
    let nhwc_input = g
        .node
        .iter()
        .filter(|n| n.input.contains(&input.name))
        .all(|n| n.op_type == "Transpose" && proto::Attrs::new(n).ints("perm") == Some(&[0, 3, 1, 2][..]))
        && uses.get(&input.name).copied().unwrap_or(0) > 0;
    let (shape, layout) = input_shape(input, nhwc_input, opts, file)?;
    vals.insert(
        input.name.clone(),
        Val::Act(Act {
            src: Src::Input,
            shape: shape.clone(),
            layout,
        }),
    );
    let mut graph = Graph {
        file,
        dir,
        opset,
        vals,
        layers: Vec::new(),
        uses,
    };
    for n in &g.node {
        graph.node(n)?;
    }
    let out_name = &g
        .output
        .first()
        .ok_or_else(|| NnError::format(file, "the graph has no output"))?
        .name;
    let output = match graph.vals.get(out_name) {
        Some(Val::Act(a)) if matches!(a.layout, Layout::Nchw | Layout::Flat) => a.clone(),
        Some(Val::Act(a)) => {
            return Err(NnError::format(
                file,
                format!(
                    "output `{out_name}` of ONNX shape {:?} is not NCHW or flat",
                    a.onnx_dims()
                ),
            ));
        }
        Some(_) => return Err(NnError::format(file, format!("output `{out_name}` is a constant"))),
        None => {
            return Err(NnError::format(
                file,
                format!("output `{out_name}` is not produced by any node"),
            ));
        }
    };
    let input_name = "input";
    let t = graph::finish(graph.layers, &output, input_name, file)?;
    let c = shape[0];
    let per_channel = |v: &Option<Vec<f32>>, what: &str, default: f32| -> Result<Vec<f32>> {
        match v {
            None => Ok(vec![default; c]),
            Some(v) if v.len() == c => Ok(v.clone()),
            Some(v) if v.len() == 1 => Ok(vec![v[0]; c]),
            Some(v) => Err(NnError::Usage(format!(
                "--{what} has {} values for {c} input channels",
                v.len()
            ))),
        }
    };
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "onnx".into());
    let mut model_json = json!({
        "format": crate::nn::model::FORMAT,
        "name": name,
        "input": {"name": input_name, "shape": shape, "mean": per_channel(&opts.mean, "mean", 0.0)?, "std": per_channel(&opts.std, "std", 1.0)?},
        "weights": "weights.safetensors",
        "layers": t.layers,
    });
    if let Some(classes) = &opts.classes {
        model_json["classes"] = json!(classes);
    }
    Ok(Imported {
        model_json,
        tensors: t.tensors,
        onnx_tensors: t.onnx_tensors,
    })
}

/// The netwalk input shape and layout of the graph input: a dynamic batch is 1, other dynamic
/// dimensions come from `--input-shape`.
fn input_shape(input: &ValueInfoProto, nhwc: bool, opts: &ImportOptions, file: &Path) -> Result<(Vec<usize>, Layout)> {
    let ierr = |msg: String| NnError::format(file, format!("input `{}`: {msg}", input.name));
    let Some(type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(ierr("not a tensor".into()));
    };
    if t.elem_type != 1 {
        return Err(ierr(format!(
            "element type {} (netwalk feeds float32 images)",
            t.elem_type
        )));
    }
    let dims: Vec<Option<usize>> = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !matches!(dims.len(), 2 | 4) {
        return Err(ierr(format!(
            "rank {} (netwalk reads [N, C, H, W] images or [N, F] vectors)",
            dims.len()
        )));
    }
    if let Some(b) = dims[0].filter(|&b| b != 1) {
        return Err(ierr(format!("batch size {b}: export with batch 1 or a dynamic batch")));
    }
    let mut rest: Vec<Option<usize>> = dims[1..].to_vec();
    if nhwc {
        rest.rotate_right(1);
    }
    let shape: Vec<usize> = match &opts.input_shape {
        Some(given) => {
            if given.len() != rest.len() || given.iter().zip(&rest).any(|(g, r)| r.is_some_and(|r| r != *g)) {
                return Err(ierr(format!(
                    "--input-shape {given:?} does not fit the model's {}",
                    fmt_dims(&rest)
                )));
            }
            given.clone()
        }
        None => rest.iter().copied().collect::<Option<Vec<usize>>>().ok_or_else(|| {
            ierr(format!(
                "dimensions {} are dynamic: pass --input-shape {}",
                fmt_dims(&rest),
                if rest.len() == 3 { "C,H,W" } else { "N" }
            ))
        })?,
    };
    if proto::element_count(&shape).is_none_or(|n| n > crate::nn::model::MAX_LAYER_ELEMENTS) {
        return Err(ierr(format!("absurd dimensions {shape:?}")));
    }
    let layout = match (shape.len(), nhwc) {
        (3, true) => Layout::Nhwc,
        (3, false) => Layout::Nchw,
        _ => Layout::Flat,
    };
    Ok((shape, layout))
}

fn fmt_dims(d: &[Option<usize>]) -> String {
    let s: Vec<String> = d.iter().map(|d| d.map_or("?".into(), |v| v.to_string())).collect();
    format!("[{}]", s.join(", "))
}

/// Write `imported` as a `netwalk-model/1` folder at `out`.
pub fn write_folder(imported: &Imported, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| NnError::io(out, e))?;
    let weights = out.join("weights.safetensors");
    crate::nn::weights::write_f32_safetensors(&weights, &imported.tensors, &BTreeMap::new())?;
    write_json(
        &out.join("onnx-tensors.json"),
        &Value::Object(imported.onnx_tensors.clone()),
    )?;
    write_json(&out.join("model.json"), &imported.model_json)
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|source| NnError::Json {
        file: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(|e| NnError::io(path, e))
}

/// `netwalk import`: translate `src` (a file or a folder of same-architecture files) into `out`,
/// then check the result loads as a netwalk model.
pub fn import(src: &Path, out: &Path, opts: &ImportOptions) -> Result<crate::nn::Model> {
    if src.is_dir() {
        let files = onnx_files(src)?;
        let Some((last, earlier)) = files.split_last() else {
            return Err(NnError::format(src, "the folder holds no .onnx files"));
        };
        let mut imported = translate(last, opts)?;
        let epochs = out.join("checkpoints");
        std::fs::create_dir_all(&epochs).map_err(|e| NnError::io(&epochs, e))?;
        let mut checkpoints = Vec::new();
        for f in earlier.iter().chain([last]) {
            let t = if f == last { None } else { Some(translate(f, opts)?) };
            let t = t.as_ref().unwrap_or(&imported);
            if t.model_json["layers"] != imported.model_json["layers"]
                || t.model_json["input"] != imported.model_json["input"]
            {
                return Err(NnError::format(
                    f,
                    format!(
                        "its architecture differs from {}'s: a timeline folder holds checkpoints of one network",
                        last.display()
                    ),
                ));
            }
            let stem = f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rel = format!("checkpoints/{stem}.safetensors");
            let mut meta = BTreeMap::new();
            meta.insert(
                "source".to_owned(),
                f.file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            crate::nn::weights::write_f32_safetensors(&out.join(&rel), &t.tensors, &meta)?;
            checkpoints.push(json!({"label": stem, "weights": rel}));
        }
        imported.model_json["checkpoints"] = json!(checkpoints);
        imported.model_json["name"] = json!(
            src.file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        write_folder(&imported, out)?;
    } else {
        write_folder(&translate(src, opts)?, out)?;
    }
    crate::nn::Model::load(out)
}

/// Bump when the translation changes, so cached folders from an older netwalk are not reused.
const READER_VERSION: u32 = 3;

/// The cached `netwalk-model/1` folder for an `.onnx` file or folder, translated on first use.
pub fn open_cached(src: &Path, opts: &ImportOptions) -> Result<PathBuf> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    READER_VERSION.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    format!("{opts:?}").hash(&mut h);
    let files = if src.is_dir() {
        onnx_files(src)?
    } else {
        vec![src.to_path_buf()]
    };
    for f in &files {
        f.file_name().hash(&mut h);
        let bytes = std::fs::read(f).map_err(|e| NnError::io(f, e))?;
        bytes.hash(&mut h);
    }
    let stem = src
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "onnx".into());
    let root = crate::nn::demo::cache_root().join("onnx");
    let dir = root.join(format!("{stem}-{:016x}", h.finish()));
    if dir.join("model.json").exists() {
        return Ok(dir);
    }
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(".import-{}-{call}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = import(src, &tmp, opts);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // The checkpoint paths inside are relative, so the folder can move into place.
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        Err(_) if dir.join("model.json").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(NnError::io(&dir, e)),
    }
}

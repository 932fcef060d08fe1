//! Parameters from safetensors files (memory-mapped), checked against the model's layers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors};

use super::error::{ComputeContext, NnError, Result};
use super::model::{Layer, Model, Op, ParamRole};

/// A memory-mapped safetensors file with its header validated.
pub struct SafetensorsFile {
    pub path: PathBuf,
    map: memmap2::Mmap,
}

impl SafetensorsFile {
    pub fn open(path: &Path) -> Result<SafetensorsFile> {
        let file = std::fs::File::open(path).map_err(|e| NnError::io(path, e))?;
        // SAFETY: the map is read-only and private to this process; a file truncated underneath us
        // could still fault, which is the accepted trade-off of mapping weights instead of copying.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| NnError::io(path, e))?;
        let f = SafetensorsFile {
            path: path.to_path_buf(),
            map,
        };
        f.tensors()?;
        Ok(f)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    pub fn tensors(&self) -> Result<SafeTensors<'_>> {
        parse_safetensors(&self.map, &self.path)
    }

    /// The `__metadata__` map of the header.
    pub fn metadata(&self) -> Result<HashMap<String, String>> {
        let (_, meta) = SafeTensors::read_metadata(&self.map).map_err(|e| NnError::Safetensors {
            file: self.path.clone(),
            msg: e.to_string(),
        })?;
        Ok(meta.metadata().clone().unwrap_or_default())
    }
}

/// Validate a safetensors buffer (header JSON, offsets within the buffer, no overlaps).
pub fn parse_safetensors<'a>(bytes: &'a [u8], path: &Path) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| NnError::Safetensors {
        file: path.to_path_buf(),
        msg: explain_safetensors_error(bytes, e),
    })
}

/// The safetensors crate's errors, reworded to say what is wrong with the file and, where one is
/// involved, which tensor (its messages name neither for a truncated file or a size mismatch).
fn explain_safetensors_error(bytes: &[u8], e: safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    let len = bytes.len();
    let Some(n) = bytes.first_chunk::<8>().map(|b| u64::from_le_bytes(*b)) else {
        return format!("the file is {len} bytes, too short for the 8-byte header length (empty or truncated?)");
    };
    match e {
        E::HeaderTooLarge => format!("header length {n} is over the 100 MB limit (not a safetensors file?)"),
        E::InvalidHeaderLength => format!(
            "header length {n} runs past the end of the {len}-byte file (truncated, or not a safetensors file?)"
        ),
        E::MetadataIncompleteBuffer
        | E::TensorInvalidInfo
        | E::InvalidOffset(_)
        | E::ValidationOverflow
        | E::MisalignedSlice => explain_layout(bytes, (n as usize).saturating_add(8)).unwrap_or_else(|| e.to_string()),
        other => other.to_string(),
    }
}

/// Walk the header's tensors in data order, as the safetensors crate does, naming the first one
/// whose offsets do not fit. `header_end` is where the data section starts.
fn explain_layout(bytes: &[u8], header_end: usize) -> Option<String> {
    let header: HashMap<String, serde_json::Value> = serde_json::from_slice(bytes.get(8..header_end)?).ok()?;
    let mut infos: Vec<(String, safetensors::tensor::TensorInfo)> = header
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .filter_map(|(k, v)| Some((k, serde_json::from_value(v).ok()?)))
        .collect();
    infos.sort_by(|a, b| (a.1.data_offsets, &a.0).cmp(&(b.1.data_offsets, &b.0)));
    let data_len = bytes.len() - header_end;
    let mut end = 0;
    for (name, info) in &infos {
        let (s, e) = info.data_offsets;
        let (dtype, shape) = (info.dtype, &info.shape);
        if s < end {
            return Some(format!(
                "tensor `{name}`: data_offsets [{s}, {e}] overlap the previous tensor, which ends at {end}"
            ));
        }
        if e < s {
            return Some(format!(
                "tensor `{name}`: data_offsets [{s}, {e}] end before they start"
            ));
        }
        if s > end {
            return Some(format!(
                "tensor `{name}`: data_offsets [{s}, {e}] leave a gap after the previous tensor, which ends at {end}"
            ));
        }
        let bits = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.bitsize()));
        match bits {
            None => return Some(format!("tensor `{name}`: shape {shape:?} overflows")),
            Some(b) if b % 8 != 0 || e - s != b / 8 => {
                let need = match b % 8 {
                    0 => format!("{} bytes", b / 8),
                    _ => format!("{b} bits (not whole bytes)"),
                };
                return Some(format!(
                    "tensor `{name}`: data_offsets [{s}, {e}] hold {} bytes, but {dtype:?} {shape:?} needs {need}",
                    e - s
                ));
            }
            Some(_) => {}
        }
        if e > data_len {
            return Some(format!(
                "tensor `{name}`: data_offsets [{s}, {e}] run past the end of the data ({data_len} bytes): \
                 the file is truncated"
            ));
        }
        end = e;
    }
    (end < data_len).then(|| {
        format!(
            "{} unexpected bytes after the last tensor (the header describes {end} bytes of data, the file holds {data_len})",
            data_len - end
        )
    })
}

/// Write a weights file: tensors under the model's own names, plus string metadata.
pub fn save_weights(
    model: &Model,
    params: &[LayerParams],
    metadata: BTreeMap<String, String>,
    path: &Path,
) -> Result<()> {
    let mut tensors = Vec::new();
    for (layer, p) in model.layers.iter().zip(params) {
        for spec in &layer.params {
            if let Some(t) = p.get(spec.role) {
                let vals = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).in_layer(&layer.name)?;
                tensors.push((spec.tensor.clone(), spec.shape.clone(), vals));
            }
        }
    }
    write_f32_safetensors(path, &tensors, &metadata)
}

/// Write f32 tensors as a safetensors file whose bytes depend only on the arguments: the safetensors
/// crate writes `__metadata__` in hash-map order, which made two identical training runs produce
/// different files. Written to a temporary name, then renamed, so readers never see a partial file.
pub fn write_f32_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let bytes = f32_safetensors_bytes(path, tensors, metadata)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| NnError::io(dir, e))?;
    }
    let tmp = path.with_extension("safetensors.partial");
    std::fs::write(&tmp, &bytes).map_err(|e| NnError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NnError::io(path, e))
}

/// The bytes [`write_f32_safetensors`] writes (`path` only names the file in errors).
pub fn f32_safetensors_bytes(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).unwrap_or_default(),
        );
    }
    let mut offset = 0usize;
    for (name, shape, values) in tensors {
        let end = offset + values.len() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut json = serde_json::to_string(&header).map_err(|source| NnError::Json {
        file: path.to_path_buf(),
        source,
    })?;
    // The data section starts 8-byte aligned, as the format recommends.
    while (8 + json.len()) % 8 != 0 {
        json.push(' ');
    }
    let mut bytes = Vec::with_capacity(8 + json.len() + offset);
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(json.as_bytes());
    for (_, _, values) in tensors {
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    Ok(bytes)
}

/// Convert a tensor view to f32 values (f32, f16 and bf16 are accepted).
pub fn view_to_f32(view: &safetensors::tensor::TensorView<'_>) -> std::result::Result<Vec<f32>, String> {
    let data = view.data();
    let out = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => return Err(format!("dtype {other:?} is not supported (use F32, F16 or BF16)")),
    };
    Ok(out)
}

/// The parameters of one layer, as f32 tensors on the CPU.
#[derive(Debug, Clone, Default)]
pub struct LayerParams {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub running_mean: Option<Tensor>,
    pub running_var: Option<Tensor>,
}

impl LayerParams {
    pub fn get(&self, role: ParamRole) -> Option<&Tensor> {
        match role {
            ParamRole::Weight => self.weight.as_ref(),
            ParamRole::Bias => self.bias.as_ref(),
            ParamRole::RunningMean => self.running_mean.as_ref(),
            ParamRole::RunningVar => self.running_var.as_ref(),
        }
    }
    pub fn set(&mut self, role: ParamRole, t: Tensor) {
        match role {
            ParamRole::Weight => self.weight = Some(t),
            ParamRole::Bias => self.bias = Some(t),
            ParamRole::RunningMean => self.running_mean = Some(t),
            ParamRole::RunningVar => self.running_var = Some(t),
        }
    }
}

/// All parameters of a model, one entry per layer (empty for parameterless layers).
#[derive(Debug, Clone)]
pub struct Weights {
    pub source: PathBuf,
    pub layers: Vec<LayerParams>,
    /// Non-fatal findings (NaN/Inf values): shown to the user, values still used.
    pub warnings: Vec<String>,
}

impl Weights {
    /// Load the model's main weights file.
    pub fn load(model: &Model) -> Result<Weights> {
        Weights::load_file(model, &model.weights)
    }

    /// Load a weights file (the main one or a checkpoint) for `model`.
    pub fn load_file(model: &Model, path: &Path) -> Result<Weights> {
        let file = SafetensorsFile::open(path)?;
        Weights::from_safetensors(model, &file.tensors()?, path)
    }

    pub fn from_bytes(model: &Model, bytes: &[u8], path: &Path) -> Result<Weights> {
        Weights::from_safetensors(model, &parse_safetensors(bytes, path)?, path)
    }

    pub fn from_safetensors(model: &Model, st: &SafeTensors<'_>, path: &Path) -> Result<Weights> {
        let mut layers = Vec::with_capacity(model.layers.len());
        let mut warnings = Vec::new();
        for layer in &model.layers {
            layers.push(load_layer(layer, st, path, &mut warnings)?);
        }
        for w in &warnings {
            tracing::warn!(file = %path.display(), "{w}");
        }
        Ok(Weights {
            source: path.to_path_buf(),
            layers,
            warnings,
        })
    }

    /// Weights blended between two checkpoints: `a * (1 - t) + b * t`.
    pub fn lerp(a: &Weights, b: &Weights, t: f32) -> candle_core::Result<Weights> {
        let mix = |x: &Option<Tensor>, y: &Option<Tensor>| -> candle_core::Result<Option<Tensor>> {
            match (x, y) {
                (Some(x), Some(y)) => Ok(Some(((x * (1.0 - t as f64))? + (y * t as f64)?)?)),
                _ => Ok(x.clone()),
            }
        };
        let layers = a
            .layers
            .iter()
            .zip(&b.layers)
            .map(|(x, y)| {
                Ok(LayerParams {
                    weight: mix(&x.weight, &y.weight)?,
                    bias: mix(&x.bias, &y.bias)?,
                    running_mean: mix(&x.running_mean, &y.running_mean)?,
                    running_var: mix(&x.running_var, &y.running_var)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Weights {
            source: a.source.clone(),
            layers,
            warnings: Vec::new(),
        })
    }
}

fn load_layer(layer: &Layer, st: &SafeTensors<'_>, path: &Path, warnings: &mut Vec<String>) -> Result<LayerParams> {
    let mut out = LayerParams::default();
    for spec in &layer.params {
        let terr = |msg: String| NnError::Tensor {
            file: path.to_path_buf(),
            layer: layer.name.clone(),
            tensor: spec.tensor.clone(),
            msg,
        };
        let view = st.tensor(&spec.tensor).map_err(|_| {
            let hint = match spec.role {
                ParamRole::Bias => " (set \"bias\": null in model.json if the layer has none)",
                _ => "",
            };
            terr(format!("missing from the weights file{hint}"))
        })?;
        // A prelu's one shared slope stands for one per channel.
        let shared = matches!(layer.op, Op::PRelu) && view.shape() == [1];
        if view.shape() != spec.shape.as_slice() && !shared {
            return Err(terr(format!(
                "has shape {:?}, the layer needs {:?}",
                view.shape(),
                spec.shape
            )));
        }
        let mut values = view_to_f32(&view).map_err(terr)?;
        if shared {
            values = vec![values[0]; spec.shape.iter().product()];
        }
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            warnings.push(format!(
                "tensor `{}` (layer `{}`) has {bad} NaN/Inf value(s)",
                spec.tensor, layer.name
            ));
        }
        let t = Tensor::from_vec(values, spec.shape.as_slice(), &Device::Cpu).map_err(|e| terr(e.to_string()))?;
        out.set(spec.role, t);
    }
    Ok(out)
}

/// Batchnorm as a per-channel affine map `x * scale + shift` (eval mode).
pub fn batchnorm_affine(p: &LayerParams, eps: f32, c: usize) -> candle_core::Result<(Tensor, Tensor)> {
    let dev = Device::Cpu;
    let ones = Tensor::ones(c, DType::F32, &dev)?;
    let zeros = Tensor::zeros(c, DType::F32, &dev)?;
    let gamma = p.weight.clone().unwrap_or_else(|| ones.clone());
    let beta = p.bias.clone().unwrap_or_else(|| zeros.clone());
    let mean = p.running_mean.clone().unwrap_or(zeros);
    let var = p.running_var.clone().unwrap_or(ones);
    let scale = gamma.div(&(var + eps as f64)?.sqrt()?)?;
    let shift = (beta - mean.mul(&scale)?)?;
    Ok((scale, shift))
}

//! The ONNX file itself: protobuf decoding (candle-onnx's prost types), the opset, initializer and
//! constant tensors as plain arrays (raw or typed fields, external data files beside the model), and
//! node attributes. Every failure names the file and the tensor or node.

use std::collections::HashMap;
use std::path::{Component, Path};

use candle_onnx::onnx::{self, AttributeProto, ModelProto, NodeProto, TensorProto, tensor_proto::DataType};
use prost::Message;

use crate::nn::error::{NnError, Result};
use crate::nn::model::MAX_TOTAL_ELEMENTS;

/// Opsets of the default domain netwalk reads (tested: 11–21).
pub const OPSETS: std::ops::RangeInclusive<i64> = 9..=22;

/// Decode `path` as an ONNX model and return it with its default-domain opset.
pub fn read_model(path: &Path) -> Result<(ModelProto, i64)> {
    let bytes = std::fs::read(path).map_err(|e| NnError::io(path, e))?;
    decode_model(&bytes, path)
}

/// Decode ONNX bytes (`path` names them in errors).
pub fn decode_model(bytes: &[u8], path: &Path) -> Result<(ModelProto, i64)> {
    let model = ModelProto::decode(bytes).map_err(|e| {
        NnError::format(
            path,
            format!("not an ONNX model (protobuf: {e}); a netwalk model is a folder with model.json"),
        )
    })?;
    if model.graph.is_none() {
        return Err(NnError::format(path, "not an ONNX model: it has no graph"));
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| NnError::format(path, "the model imports no opset of the default ONNX domain"))?;
    if !OPSETS.contains(&opset) {
        return Err(NnError::format(
            path,
            format!(
                "opset {opset} is not supported (netwalk reads opsets {}–{}; re-export with e.g. opset_version=17)",
                OPSETS.start(),
                OPSETS.end()
            ),
        ));
    }
    Ok((model, opset))
}

/// A constant tensor: initializer, `Constant` node or a folded shape computation.
#[derive(Debug, Clone, PartialEq)]
pub struct Const {
    pub dims: Vec<usize>,
    pub data: Data,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Const {
    pub fn f32(dims: Vec<usize>, v: Vec<f32>) -> Const {
        Const {
            dims,
            data: Data::F32(v),
        }
    }
    pub fn i64(dims: Vec<usize>, v: Vec<i64>) -> Const {
        Const {
            dims,
            data: Data::I64(v),
        }
    }
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }
    /// The values as f32 (integers converted).
    pub fn floats(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// The values as i64 (floats truncated; shape tensors are integers).
    pub fn ints(&self) -> Vec<i64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
        }
    }
    /// The single value of a scalar or one-element tensor.
    pub fn scalar(&self) -> Option<f32> {
        (self.len() == 1).then(|| self.floats()[0])
    }
}

/// Checked element count of `dims`, at most the model limit.
pub fn element_count(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_TOTAL_ELEMENTS)
}

/// An initializer or constant tensor's values; external data is read from `dir` (the model's folder).
pub fn tensor_value(t: &TensorProto, dir: &Path, file: &Path) -> Result<Const> {
    let terr = |msg: String| NnError::format(file, format!("tensor `{}`: {msg}", t.name));
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        dims.push(usize::try_from(d).map_err(|_| terr(format!("negative dimension {d}")))?);
    }
    let n = element_count(&dims).ok_or_else(|| terr(format!("absurd dimensions {:?}", t.dims)))?;
    let external;
    let raw: &[u8] = if t.data_location == onnx::tensor_proto::DataLocation::External as i32 {
        external = external_bytes(t, dir, file)?;
        &external
    } else {
        &t.raw_data
    };
    let dtype = DataType::try_from(t.data_type).map_err(|_| terr(format!("unknown data type {}", t.data_type)))?;
    let size = match dtype {
        DataType::Float | DataType::Int32 => 4,
        DataType::Double | DataType::Int64 => 8,
        DataType::Float16 | DataType::Bfloat16 => 2,
        DataType::Int8 | DataType::Uint8 | DataType::Bool => 1,
        other => return Err(terr(format!("data type {} is not supported", other.as_str_name()))),
    };
    if !raw.is_empty() {
        if raw.len() != n * size {
            return Err(terr(format!(
                "holds {} bytes, its shape {:?} needs {}",
                raw.len(),
                dims,
                n * size
            )));
        }
        let chunks = raw.chunks_exact(size);
        let data = match dtype {
            DataType::Float => Data::F32(chunks.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            DataType::Double => Data::F32(
                chunks
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
                    .collect(),
            ),
            DataType::Float16 => Data::F32(
                chunks
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            DataType::Bfloat16 => Data::F32(
                chunks
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            DataType::Int64 => Data::I64(
                chunks
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            DataType::Int32 => Data::I64(
                chunks
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
            ),
            DataType::Int8 => Data::I64(chunks.map(|c| c[0] as i8 as i64).collect()),
            _ => Data::I64(chunks.map(|c| c[0] as i64).collect()),
        };
        return Ok(Const { dims, data });
    }
    let data = match dtype {
        DataType::Float => Data::F32(t.float_data.clone()),
        DataType::Double => Data::F32(t.double_data.iter().map(|&x| x as f32).collect()),
        DataType::Int64 => Data::I64(t.int64_data.clone()),
        DataType::Float16 => Data::F32(
            t.int32_data
                .iter()
                .map(|&b| half::f16::from_bits(b as u16).to_f32())
                .collect(),
        ),
        DataType::Bfloat16 => Data::F32(
            t.int32_data
                .iter()
                .map(|&b| half::bf16::from_bits(b as u16).to_f32())
                .collect(),
        ),
        _ => Data::I64(t.int32_data.iter().map(|&x| x as i64).collect()),
    };
    let c = Const { dims, data };
    if c.len() != n {
        return Err(terr(format!(
            "holds {} values, its shape {:?} needs {n}",
            c.len(),
            c.dims
        )));
    }
    Ok(c)
}

/// The bytes of a tensor stored in an external data file (`location`, `offset`, `length`).
fn external_bytes(t: &TensorProto, dir: &Path, file: &Path) -> Result<Vec<u8>> {
    let terr = |msg: String| NnError::format(file, format!("tensor `{}`: external data: {msg}", t.name));
    let entries: HashMap<&str, &str> = t
        .external_data
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let location = entries.get("location").ok_or_else(|| terr("no \"location\"".into()))?;
    let rel = Path::new(location);
    // Only files inside the model's folder: a model must not make netwalk read elsewhere.
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(terr(format!(
            "location `{location}` must be a path inside the model's folder"
        )));
    }
    let number = |key: &str| -> Result<Option<u64>> {
        match entries.get(key) {
            None => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| terr(format!("bad {key} `{v}`"))),
        }
    };
    let offset = number("offset")?.unwrap_or(0);
    let path = dir.join(rel);
    let bytes = std::fs::read(&path).map_err(|e| terr(format!("cannot read {}: {e}", path.display())))?;
    let len = bytes.len() as u64;
    let length = number("length")?.unwrap_or(len.saturating_sub(offset));
    let end = offset.checked_add(length).filter(|&e| e <= len).ok_or_else(|| {
        terr(format!(
            "bytes {offset}..{} lie past the end of {} ({len} bytes)",
            offset.saturating_add(length),
            path.display()
        ))
    })?;
    Ok(bytes[offset as usize..end as usize].to_vec())
}

/// A node's attributes, looked up by name.
pub struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Attrs<'a> {
        Attrs { node }
    }
    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }
    pub fn float(&self, name: &str) -> Option<f32> {
        self.get(name).map(|a| a.f)
    }
    pub fn ints(&self, name: &str) -> Option<&'a [i64]> {
        self.get(name).map(|a| a.ints.as_slice())
    }
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
    pub fn tensor(&self, name: &str) -> Option<&'a TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }
    pub fn floats(&self, name: &str) -> Option<&'a [f32]> {
        self.get(name).map(|a| a.floats.as_slice())
    }
}

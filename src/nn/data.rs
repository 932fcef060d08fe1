//! Inputs: PNG images, safetensors `input` tensors, and sample sets (`images` + `labels`).

use std::path::Path;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use super::error::{NnError, Result};
use super::model::{Model, Shape};
use super::weights::{SafetensorsFile, view_to_f32};

/// Values of a tensor as f32; integer images (u8) are scaled to [0, 1] like PNG pixels.
fn image_values(view: &TensorView<'_>) -> std::result::Result<Vec<f32>, String> {
    match view.dtype() {
        Dtype::U8 => Ok(view.data().iter().map(|&b| b as f32 / 255.0).collect()),
        _ => view_to_f32(view),
    }
}

/// Load one raw input (unnormalized) for `model` from a PNG or a safetensors file.
pub fn load_input(model: &Model, path: &Path) -> Result<Vec<f32>> {
    let is_png = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        load_png(model, path)
    } else {
        load_input_safetensors(model, path)
    }
}

fn load_input_safetensors(model: &Model, path: &Path) -> Result<Vec<f32>> {
    let file = SafetensorsFile::open(path)?;
    let st = file.tensors()?;
    let view = st
        .tensor("input")
        .map_err(|_| NnError::input(path, "no tensor named `input` in the safetensors file"))?;
    let want = model.input.shape.dims();
    let shape = view.shape();
    let ok = shape == want.as_slice() || (shape.first() == Some(&1) && &shape[1..] == want.as_slice());
    if !ok {
        return Err(NnError::input(
            path,
            format!(
                "tensor `input` has shape {shape:?}, the model `{}` needs {} (optionally with a leading 1)",
                model.name, model.input.shape
            ),
        ));
    }
    let v = image_values(&view).map_err(|m| NnError::input(path, format!("tensor `input`: {m}")))?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(NnError::input(path, "tensor `input` holds NaN or Inf"));
    }
    Ok(v)
}

fn load_png(model: &Model, path: &Path) -> Result<Vec<f32>> {
    let Shape::Chw(c, h, w) = model.input.shape else {
        return Err(NnError::input(
            path,
            format!(
                "the model `{}` takes a vector {}, not an image",
                model.name, model.input.shape
            ),
        ));
    };
    let file = std::fs::File::open(path).map_err(|e| NnError::io(path, e))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let bad = |e: png::DecodingError| NnError::input(path, format!("not a readable PNG: {e}"));
    let mut reader = decoder.read_info().map_err(bad)?;
    // Check the size from the header before allocating a buffer for the pixels.
    let (iw, ih) = (reader.info().width, reader.info().height);
    if (iw as usize, ih as usize) != (w, h) {
        return Err(NnError::input(
            path,
            format!("image is {iw}x{ih}, the model `{}` needs {w}x{h}", model.name),
        ));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| NnError::input(path, "PNG is too large"))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(bad)?;
    if (info.width as usize, info.height as usize) != (w, h) {
        return Err(NnError::input(
            path,
            format!(
                "image is {}x{}, the model `{}` needs {w}x{h}",
                info.width, info.height, model.name
            ),
        ));
    }
    let (png_channels, color_channels) = match info.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        png::ColorType::Indexed => (3, 3), // expanded to RGB
    };
    if color_channels != c {
        return Err(NnError::input(
            path,
            format!(
                "image has {color_channels} colour channel(s) ({:?}), the model `{}` needs {c}",
                info.color_type, model.name
            ),
        ));
    }
    let sixteen = info.bit_depth == png::BitDepth::Sixteen;
    let sample = |i: usize| -> f32 {
        if sixteen {
            u16::from_be_bytes([buf[2 * i], buf[2 * i + 1]]) as f32 / 65535.0
        } else {
            buf[i] as f32 / 255.0
        }
    };
    // Interleaved HWC pixels to planar CHW, alpha dropped.
    let mut out = vec![0f32; c * h * w];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                out[(ch * h + y) * w + x] = sample((y * w + x) * png_channels + ch);
            }
        }
    }
    Ok(out)
}

/// A set of labelled inputs, raw (unnormalized), row-major `[N, ...input shape]`.
#[derive(Debug, Clone)]
pub struct Samples {
    pub count: usize,
    pub per_item: usize,
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
}

impl Samples {
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * self.per_item..(i + 1) * self.per_item]
    }

    /// Load `images` `[N, ...input]` (u8 scaled to [0,1], or float) and `labels` `[N]` (any integer type).
    pub fn load(model: &Model, path: &Path) -> Result<Samples> {
        let file = SafetensorsFile::open(path)?;
        let st = file.tensors()?;
        let terr = |t: &str, msg: String| NnError::Tensor {
            file: path.to_path_buf(),
            layer: model.input.name.clone(),
            tensor: t.to_owned(),
            msg,
        };
        let images = st
            .tensor("images")
            .map_err(|_| terr("images", "missing from the samples file".into()))?;
        let labels = st
            .tensor("labels")
            .map_err(|_| terr("labels", "missing from the samples file".into()))?;
        let want = model.input.shape.dims();
        let ishape = images.shape();
        if ishape.len() != want.len() + 1 || ishape[1..] != want[..] {
            return Err(terr(
                "images",
                format!(
                    "has shape {ishape:?}, expected [N, {}]",
                    want.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let n = ishape[0];
        if labels.shape() != [n] {
            return Err(terr(
                "labels",
                format!("has shape {:?}, expected [{n}]", labels.shape()),
            ));
        }
        let images_v = image_values(&images).map_err(|m| terr("images", m))?;
        let classes = model.layers.last().map(|l| l.shape.elements()).unwrap_or(0);
        let labels_v = integer_values(&labels).map_err(|m| terr("labels", m))?;
        if let Some(bad) = labels_v.iter().find(|&&l| l < 0 || l as usize >= classes) {
            return Err(terr(
                "labels",
                format!("label {bad} is outside the model's {classes} outputs"),
            ));
        }
        Ok(Samples {
            count: n,
            per_item: model.input.shape.elements(),
            images: images_v,
            labels: labels_v.into_iter().map(|l| l as u32).collect(),
        })
    }
}

fn integer_values(view: &TensorView<'_>) -> std::result::Result<Vec<i64>, String> {
    let d = view.data();
    Ok(match view.dtype() {
        Dtype::U8 => d.iter().map(|&b| b as i64).collect(),
        Dtype::I8 => d.iter().map(|&b| b as i8 as i64).collect(),
        Dtype::U16 => d
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as i64)
            .collect(),
        Dtype::I16 => d
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as i64)
            .collect(),
        Dtype::U32 => d
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
            .collect(),
        Dtype::I32 => d
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
            .collect(),
        Dtype::I64 => d
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect(),
        other => return Err(format!("dtype {other:?} is not an integer type")),
    })
}

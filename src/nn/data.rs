//! Inputs: PNG images, safetensors `input` tensors, and sample sets (`images` + `labels`).

use std::path::Path;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use super::error::{NnError, Result};
use super::image;
use super::model::{Model, Shape};
use super::weights::{SafetensorsFile, view_to_f32};

/// Values of a tensor as f32; integer images (u8) are scaled to [0, 1] like PNG pixels.
fn image_values(view: &TensorView<'_>) -> std::result::Result<Vec<f32>, String> {
    match view.dtype() {
        Dtype::U8 => Ok(view.data().iter().map(|&b| b as f32 / 255.0).collect()),
        _ => view_to_f32(view),
    }
}

/// Load one raw input (unnormalized) for `model` from a PNG, a JPEG or a safetensors file.
pub fn load_input(model: &Model, path: &Path) -> Result<Vec<f32>> {
    Ok(load_input_noted(model, path)?.0)
}

/// [`load_input`], and for an image that was resized, cropped or converted a one-line notice
/// saying so (see [`super::image`]).
pub fn load_input_noted(model: &Model, path: &Path) -> Result<(Vec<f32>, Option<String>)> {
    if image::is_image_path(path) {
        load_image(model, path)
    } else {
        Ok((load_input_safetensors(model, path)?, None))
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

fn load_image(model: &Model, path: &Path) -> Result<(Vec<f32>, Option<String>)> {
    let Shape::Chw(c, h, w) = model.input.shape else {
        return Err(NnError::input(
            path,
            format!(
                "the model `{}` takes a vector {}, not an image",
                model.name, model.input.shape
            ),
        ));
    };
    if c != 1 && c != 3 {
        return Err(NnError::input(
            path,
            format!("the model `{}` takes {c} channels: images give 1 or 3", model.name),
        ));
    }
    let need = format!("the model `{}` takes {w}x{h}", model.name);
    let img = image::decode(path, &need)?;
    Ok(image::prepare(path, img, (c, h, w)))
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

/// `--classes FILE`: one class name a line (trailing blank lines ignored), one per model output.
pub fn load_classes(model: &Model, path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| NnError::io(path, e))?;
    let mut names: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
    while names.last().is_some_and(|n| n.is_empty()) {
        names.pop();
    }
    let outputs = model.layers.last().map(|l| l.shape.elements()).unwrap_or(0);
    if names.len() != outputs {
        return Err(NnError::input(
            path,
            format!(
                "{} class names, the model `{}` has {outputs} outputs",
                names.len(),
                model.name
            ),
        ));
    }
    Ok(names)
}

/// A folder of images, ImageFolder style: what [`Samples::from_folder`] found.
#[derive(Debug, Clone)]
pub struct FolderSamples {
    pub samples: Samples,
    /// The subfolders, sorted by name: (name, class index).
    pub classes: Vec<(String, u32)>,
    /// How many images were resized, cropped or converted.
    pub prepared: usize,
}

impl Samples {
    /// Each subfolder of `dir` is a class; its images (png/jpg/jpeg, sorted by name) are the
    /// samples. With class names (the model's, or `--classes`), a subfolder's name must be one
    /// of them and gives its index; without, the sorted subfolder names are the indices 0, 1, ...
    /// (torchvision's `ImageFolder`).
    pub fn from_folder(model: &Model, dir: &Path) -> Result<FolderSamples> {
        let entries = std::fs::read_dir(dir).map_err(|e| NnError::io(dir, e))?;
        let mut subdirs: Vec<(String, std::path::PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| NnError::io(dir, e))?;
            let path = entry.path();
            if path.is_dir() {
                subdirs.push((entry.file_name().to_string_lossy().into_owned(), path));
            }
        }
        subdirs.sort();
        if subdirs.is_empty() {
            return Err(NnError::input(
                dir,
                "no class subfolders (expected DIR/CLASS/IMAGE.png, as torchvision's ImageFolder)",
            ));
        }
        let outputs = model.layers.last().map(|l| l.shape.elements()).unwrap_or(0);
        let (mut images, mut labels, mut classes, mut prepared) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for (k, (name, path)) in subdirs.iter().enumerate() {
            let label = match &model.classes {
                Some(names) => names.iter().position(|n| n == name).ok_or_else(|| {
                    NnError::input(
                        path,
                        format!(
                            "folder `{name}` is not one of the model `{}`'s classes ({})",
                            model.name,
                            names.join(", ")
                        ),
                    )
                })?,
                None if k < outputs => k,
                None => {
                    return Err(NnError::input(
                        dir,
                        format!(
                            "{} class folders, the model `{}` has {outputs} outputs",
                            subdirs.len(),
                            model.name
                        ),
                    ));
                }
            };
            let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(path)
                .map_err(|e| NnError::io(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && image::is_image_path(p))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(NnError::input(path, "no images (png, jpg, jpeg) in this class folder"));
            }
            for f in &files {
                let (v, notice) = load_image(model, f)?;
                prepared += usize::from(notice.is_some());
                images.extend(v);
                labels.push(label as u32);
            }
            classes.push((name.clone(), label as u32));
        }
        Ok(FolderSamples {
            samples: Samples {
                count: labels.len(),
                per_item: model.input.shape.elements(),
                images,
                labels,
            },
            classes,
            prepared,
        })
    }
}

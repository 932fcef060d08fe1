//! `netwalk import X.onnx --out DIR`: an ONNX model (or a folder of same-architecture checkpoints)
//! written as a `netwalk-model/1` folder, with classes, preprocessing and samples added.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::nn::{self, onnx::ImportOptions};

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// An .onnx file, or a folder of .onnx files of one architecture (a checkpoint timeline, in
    /// name order).
    pub onnx: PathBuf,
    /// The netwalk-model/1 folder to write (model.json, weights.safetensors, onnx-tensors.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Class names, one a line, for the output layer.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Per-channel mean subtracted from images in [0, 1] before the network (e.g. 0.485,0.456,0.406).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub mean: Option<Vec<f32>>,
    /// Per-channel standard deviation images are divided by (e.g. 0.229,0.224,0.225).
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
    /// A folder of images, one subfolder per class: written as the model's samples.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
}

/// `--input-shape C,H,W` (or `N`): the model input's dynamic dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct InputShape(pub Vec<usize>);

pub fn parse_input_shape(s: &str) -> Result<InputShape, String> {
    let dims: Result<Vec<usize>, _> = s.split(',').map(|d| d.trim().parse::<usize>()).collect();
    match dims {
        Ok(d) if matches!(d.len(), 1 | 3) && d.iter().all(|&v| v > 0) => Ok(InputShape(d)),
        _ => Err(format!(
            "`{s}`: expected C,H,W (or N for a vector input), positive integers"
        )),
    }
}

pub fn import(args: &ImportArgs, input_shape: Option<Vec<usize>>) -> Result<()> {
    if args.out.join("model.json").exists() {
        bail!(
            "{}: already holds a model.json; choose a new --out folder",
            args.out.display()
        );
    }
    let classes = match &args.classes {
        None => None,
        Some(f) => Some(read_classes(f)?),
    };
    let opts = ImportOptions {
        input_shape,
        mean: args.mean.clone(),
        std: args.std.clone(),
        classes,
    };
    if let Some(std) = &opts.std
        && std.iter().any(|&s| !(s.is_finite() && s > 0.0))
    {
        bail!("--std {std:?}: every value must be positive");
    }
    let mut model = nn::onnx::import(&args.onnx, &args.out, &opts)?;
    if let Some(dir) = &args.inputs {
        let found = nn::Samples::from_folder(&model, dir)?;
        write_samples(&found.samples, &model, &args.out.join("samples.safetensors"))?;
        let path = args.out.join("model.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let mut json: serde_json::Value = serde_json::from_str(&text)?;
        json["samples"] = serde_json::json!("samples.safetensors");
        std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;
        model = nn::Model::load(&args.out)?;
        eprintln!(
            "samples: {} images from {} (classes {})",
            found.samples.count,
            dir.display(),
            found.classes.len()
        );
    }
    println!(
        "{}: {} layers, {} parameters, input {} → {}",
        args.out.display(),
        model.layers.len(),
        model.param_count(),
        model.input.shape,
        model.layers.last().map(|l| l.shape.to_string()).unwrap_or_default()
    );
    Ok(())
}

fn read_classes(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut names: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
    while names.last().is_some_and(|n| n.is_empty()) {
        names.pop();
    }
    Ok(names)
}

fn write_samples(s: &nn::Samples, model: &nn::Model, path: &Path) -> Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let images: Vec<u8> = s.images.iter().flat_map(|v| v.to_le_bytes()).collect();
    let labels: Vec<u8> = s.labels.iter().flat_map(|&l| (l as i64).to_le_bytes()).collect();
    let views = [
        (
            "images",
            TensorView::new(Dtype::F32, [vec![s.count], model.input.shape.dims()].concat(), &images)?,
        ),
        ("labels", TensorView::new(Dtype::I64, vec![s.count], &labels)?),
    ];
    safetensors::serialize_to_file(views, None, path).with_context(|| format!("{}", path.display()))?;
    Ok(())
}

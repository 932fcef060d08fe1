//! The bodies of the `netwalk` commands (src/main.rs parses the command line and calls these).
//!
//! This is the program's top layer, like main: its functions return `anyhow` errors, whose chain
//! main prints as one line. Everything below it (app, gfx, nn, scene, xr) has its own error types.

mod env;
pub mod import;
pub mod model;
pub mod replay;
pub mod run;
pub mod snapshot;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
pub use env::Env;

use crate::app::App;
use crate::gfx;
use crate::nn::{self, Model, Weights};
use crate::scene;

/// The input a command runs the network on: a file, or one of the model's bundled samples.
#[derive(Debug, Clone, Default)]
pub struct InputChoice {
    /// A PNG, or a safetensors file with a tensor `input` of the input shape.
    pub file: Option<PathBuf>,
    /// Index into the model's bundled samples.
    pub sample: Option<usize>,
    /// Class names, one a line, in place of the model's (`--classes`).
    pub classes: Option<PathBuf>,
}

/// The input flags of `snapshot`, `run` and `replay`: what the app starts on and its sample tray.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AppInput {
    /// Index into the model's bundled samples (or into --inputs' images).
    #[arg(long, default_value_t = 0)]
    pub sample: usize,
    /// Start on this image (PNG or JPEG of any size: converted to the model's channels, resized
    /// and centre-cropped to its input; see the README), or a safetensors file with a tensor
    /// `input`.
    #[arg(long, conflicts_with = "sample")]
    pub input: Option<PathBuf>,
    /// A folder of images, one subfolder per class (torchvision's ImageFolder): they fill the
    /// sample tray in place of the model's samples.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Class names, one a line, in place of the model's output labels.
    #[arg(long)]
    pub classes: Option<PathBuf>,
}

/// What the scene shows by the input block when there is nothing to run the network on.
pub const NO_INPUT_HINT: &str = "no input: pass --input FILE or --inputs DIR";

/// `--input-shape` (global): the dynamic input dimensions of an ONNX model, set once by main.
static INPUT_SHAPE: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();

/// Record `--input-shape` for every ONNX model this process opens.
pub fn set_input_shape(shape: Option<Vec<usize>>) {
    if let Some(s) = shape {
        let _ = INPUT_SHAPE.set(s);
    }
}

pub fn input_shape() -> Option<Vec<usize>> {
    INPUT_SHAPE.get().cloned()
}

/// `model` (a model.json or a folder holding one; an .onnx file or a folder of them, translated
/// into the cache), or the bundled demo's folder.
pub fn model_path(model: Option<PathBuf>) -> Result<PathBuf> {
    match model {
        Some(p) if nn::onnx::is_onnx(&p) => {
            let opts = nn::onnx::ImportOptions {
                input_shape: input_shape(),
                ..Default::default()
            };
            Ok(nn::onnx::open_cached(&p, &opts)?)
        }
        Some(p) => Ok(p),
        None => Ok(nn::demo::demo_dir()?),
    }
}

pub fn load_model(model: Option<PathBuf>) -> Result<Model> {
    Ok(Model::load(&model_path(model)?)?)
}

/// The model, its output labels replaced by `classes` (a file of one name a line) when given.
pub fn load_model_with(model: Option<PathBuf>, classes: Option<&Path>) -> Result<Model> {
    let mut model = load_model(model)?;
    if let Some(file) = classes {
        model.classes = Some(nn::data::load_classes(&model, file)?);
    }
    Ok(model)
}

/// The images of `--inputs DIR` as samples, with a one-line summary on stderr.
pub fn folder_samples(model: &Model, dir: &Path) -> Result<nn::Samples> {
    let found = nn::Samples::from_folder(model, dir)?;
    let names: Vec<String> = found.classes.iter().map(|(n, i)| format!("{n}={i}")).collect();
    let prepared = if found.prepared > 0 {
        format!(
            "; {} resized, cropped or converted to the model's input",
            found.prepared
        )
    } else {
        String::new()
    };
    eprintln!(
        "inputs: {}: {} images in {} classes ({}){prepared}",
        dir.display(),
        found.samples.count,
        found.classes.len(),
        names.join(", ")
    );
    Ok(found.samples)
}

/// An input file's values; the notice on stderr when it was resized or converted.
pub fn load_file_input(model: &Model, file: &Path) -> Result<Vec<f32>> {
    let (raw, notice) = nn::load_input_noted(model, file)?;
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    Ok(raw)
}

fn sample_of(s: &nn::Samples, i: usize) -> Result<Vec<f32>> {
    if i >= s.count {
        bail!(
            "sample {i} does not exist: there are {} samples (0..{})",
            s.count,
            s.count.saturating_sub(1)
        );
    }
    Ok(s.image(i).to_vec())
}

/// The model's final weights, or those of `checkpoint` (a label or an index); warnings go to stderr.
pub fn load_weights(model: &Model, checkpoint: Option<&str>) -> Result<Weights> {
    let w = match checkpoint {
        Some(key) => Weights::load_file(model, &model.checkpoint(key)?.weights)?,
        None => Weights::load(model)?,
    };
    for warning in &w.warnings {
        eprintln!("warning: {}: {warning}", w.source.display());
    }
    Ok(w)
}

pub fn load_samples(model: &Model) -> Result<nn::Samples> {
    let path = model
        .samples
        .as_ref()
        .with_context(|| {
            format!(
                "{}: the model lists no \"samples\"; give it images with --input FILE, or --inputs DIR (one subfolder per class)",
                model.path.display()
            )
        })?;
    Ok(nn::Samples::load(model, path)?)
}

pub fn load_one_input(model: &Model, input: &InputChoice) -> Result<Vec<f32>> {
    match (&input.file, input.sample) {
        (Some(file), _) => load_file_input(model, file),
        (None, Some(i)) => sample_of(&load_samples(model)?, i),
        (None, None) => bail!("give --input FILE or --sample N"),
    }
}

/// Loads a model and its weights (or a checkpoint's) and runs it on the chosen input.
pub fn run_on_input(
    model: Option<PathBuf>,
    input: &InputChoice,
    checkpoint: Option<&str>,
) -> Result<(Model, Weights, nn::Activations)> {
    let model = load_model_with(model, input.classes.as_deref())?;
    let weights = load_weights(&model, checkpoint)?;
    let raw = load_one_input(&model, input)?;
    let acts = nn::forward(&model, &weights, &raw)?;
    Ok((model, weights, acts))
}

/// The app on `model` (default: the demo) with `input`'s file or sample as its input (a black
/// image and a hint on screen when the model has no samples and none is given), its samples or
/// `--inputs` on the tray and its checkpoints as the timeline.
pub fn build_app(model: Option<PathBuf>, input: &AppInput, checkpoint: Option<&str>) -> Result<App> {
    let model = load_model_with(model, input.classes.as_deref())?;
    let weights = load_weights(&model, checkpoint)?;
    let folder = input.inputs.as_deref().map(|d| folder_samples(&model, d)).transpose()?;
    let mut hint = None;
    let raw = match (&input.input, &folder) {
        (Some(file), _) => load_file_input(&model, file)?,
        (None, Some(s)) => sample_of(s, input.sample)?,
        (None, None) if model.samples.is_some() => sample_of(&load_samples(&model)?, input.sample)?,
        (None, None) => {
            // Nothing to run on: a black image (all 0 before the model's mean/std), never an error.
            hint = Some(NO_INPUT_HINT.to_owned());
            vec![0.0; model.input.shape.elements()]
        }
    };
    let samples = match folder {
        Some(s) => Some(s),
        None => load_samples(&model).ok(),
    };
    let timeline = nn::timeline::Timeline::load(&model)?;
    let mut app = App::new(
        model,
        weights,
        samples,
        raw,
        scene::Stage::default(),
        scene::Scale::WalkIn,
    )?
    .with_timeline(timeline);
    app.hint = hint;
    if let Some(key) = checkpoint {
        let index = app
            .model
            .checkpoints
            .iter()
            .position(|c| c.label == key)
            .or_else(|| key.parse().ok());
        app.scene.set_checkpoint(&app.model, index);
    }
    Ok(app)
}

/// Writes `image` to `out` through a temporary file, so a failed write leaves no partial PNG.
pub fn save_png(image: &gfx::RgbaImage, out: &Path) -> Result<()> {
    let tmp = out.with_extension("png.partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
    image
        .write_png(std::io::BufWriter::new(file))
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("{}: cannot write", out.display()))
}

/// Fails when the validation layer of `api` ("Vulkan", "OpenXR") reported anything.
pub fn check_validation(api: &str, messages: &[String]) -> Result<()> {
    if let Some(first) = messages.first() {
        bail!(
            "{api} validation reported {} problem(s); first: {first}",
            messages.len()
        );
    }
    Ok(())
}

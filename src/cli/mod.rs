//! The bodies of the `netwalk` commands (src/main.rs parses the command line and calls these).
//!
//! This is the program's top layer, like main: its functions return `anyhow` errors, whose chain
//! main prints as one line. Everything below it (app, gfx, nn, scene, xr) has its own error types.

mod env;
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
}

/// `model` (a model.json or a folder holding one), or the bundled demo's folder.
pub fn model_path(model: Option<PathBuf>) -> Result<PathBuf> {
    match model {
        Some(p) => Ok(p),
        None => Ok(nn::demo::demo_dir()?),
    }
}

pub fn load_model(model: Option<PathBuf>) -> Result<Model> {
    Ok(Model::load(&model_path(model)?)?)
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
        .with_context(|| format!("{}: the model lists no \"samples\"", model.path.display()))?;
    Ok(nn::Samples::load(model, path)?)
}

pub fn load_one_input(model: &Model, input: &InputChoice) -> Result<Vec<f32>> {
    match (&input.file, input.sample) {
        (Some(file), _) => Ok(nn::load_input(model, file)?),
        (None, Some(i)) => {
            let s = load_samples(model)?;
            if i >= s.count {
                bail!(
                    "sample {i} does not exist: the model has {} samples (0..{})",
                    s.count,
                    s.count - 1
                );
            }
            Ok(s.image(i).to_vec())
        }
        (None, None) => bail!("give --input FILE or --sample N"),
    }
}

/// Loads a model and its weights (or a checkpoint's) and runs it on the chosen input.
pub fn run_on_input(
    model: Option<PathBuf>,
    input: &InputChoice,
    checkpoint: Option<&str>,
) -> Result<(Model, Weights, nn::Activations)> {
    let model = load_model(model)?;
    let weights = load_weights(&model, checkpoint)?;
    let raw = load_one_input(&model, input)?;
    let acts = nn::forward(&model, &weights, &raw)?;
    Ok((model, weights, acts))
}

/// The app on `model` (default: the demo) with `sample` as its input, its samples on the tray
/// and its checkpoints as the timeline.
pub fn build_app(model: Option<PathBuf>, sample: usize, checkpoint: Option<&str>) -> Result<App> {
    let model = load_model(model)?;
    let weights = load_weights(&model, checkpoint)?;
    let input = InputChoice {
        file: None,
        sample: Some(sample),
    };
    let raw = load_one_input(&model, &input)?;
    let samples = load_samples(&model).ok();
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

//! The commands on the model alone (no GPU): info, activations, neuron, eval, train.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{InputChoice, folder_samples, load_model, load_model_with, load_samples, load_weights, run_on_input};
use crate::nn::{self, Model};

/// `netwalk neuron`: one neuron's value, pre-activation, bias and its `top` inputs, as JSON.
pub fn neuron(
    model: Option<PathBuf>,
    input: &InputChoice,
    layer: &str,
    index: &[usize],
    top: usize,
    checkpoint: Option<&str>,
) -> Result<()> {
    let (model, weights, acts) = run_on_input(model, input, checkpoint)?;
    let li = model
        .layer_index(layer)
        .with_context(|| format!("{}: no layer `{layer}`", model.path.display()))?;
    let info = nn::query::neuron(&model, &weights, &acts, li, index)?;
    let n = if top == 0 {
        info.inputs.len()
    } else {
        top.min(info.inputs.len())
    };
    let inputs: Vec<serde_json::Value> = info.inputs[..n]
        .iter()
        .map(|i| {
            serde_json::json!({"layer": model.source_name(i.source), "index": i.index,
                "weight": i.weight, "activation": i.activation, "contribution": i.contribution})
        })
        .collect();
    let mut v = serde_json::json!({"layer": layer, "index": info.index, "activation": info.value,
        "pre_activation": info.pre_activation, "bias": info.bias, "inputs": inputs,
        "input_count": info.inputs.len()});
    // An output neuron's class name, when the model (or --classes) has them.
    if li + 1 == model.layers.len()
        && let (Some(names), [i]) = (&model.classes, index)
        && let Some(name) = names.get(*i)
    {
        v["class"] = serde_json::json!(name);
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `netwalk eval`: accuracy on the model's held-out samples, or on the images of `inputs` (their
/// subfolders matched to `classes`' names when given).
pub fn eval(
    model: Option<PathBuf>,
    inputs: Option<&Path>,
    classes: Option<&Path>,
    checkpoint: Option<&str>,
) -> Result<()> {
    let model = load_model_with(model, classes)?;
    let weights = load_weights(&model, checkpoint)?;
    let samples = match inputs {
        Some(dir) => folder_samples(&model, dir)?,
        None => load_samples(&model)?,
    };
    let (k, n) = nn::train::evaluate(&model, &weights, &samples)?;
    println!("accuracy {:.4} ({k}/{n})", k as f64 / n.max(1) as f64);
    Ok(())
}

/// `netwalk info`: the layers, the totals, the checkpoints.
pub fn info(model: &Model, checkpoint: Option<&str>) -> Result<()> {
    println!("{} ({})", model.name, model.path.display());
    println!(
        "input `{}` {}  mean {:?} std {:?}",
        model.input.name, model.input.shape, model.input.mean, model.input.std
    );
    println!(
        "{:<28} {:<17} {:<20} {:>12} {:>12}  inputs",
        "layer", "op", "output", "params", "activations"
    );
    for l in &model.layers {
        let ins: Vec<&str> = l.inputs.iter().map(|s| model.source_name(*s)).collect();
        println!(
            "{:<28} {:<17} {:<20} {:>12} {:>12}  {}",
            l.name,
            l.op.name(),
            l.shape.to_string(),
            l.param_count(),
            l.shape.elements(),
            ins.join(", ")
        );
    }
    println!(
        "total: {} layers, {} parameters, {} activations",
        model.layers.len(),
        model.param_count(),
        model.activation_count()
    );
    if !model.checkpoints.is_empty() {
        let labels: Vec<&str> = model.checkpoints.iter().map(|c| c.label.as_str()).collect();
        println!("checkpoints ({}): {}", labels.len(), labels.join(", "));
    }
    if let Some(key) = checkpoint {
        let c = model.checkpoint(key)?;
        println!("using checkpoint `{}` ({})", c.label, c.weights.display());
    }
    Ok(())
}

/// `netwalk activations`: every layer's values as one safetensors file.
pub fn write_activations(model: &Model, acts: &nn::Activations, out: &Path) -> Result<()> {
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = model
        .layers
        .iter()
        .zip(&acts.layers)
        .map(|(l, v)| (l.name.clone(), l.shape.dims(), v.clone()))
        .collect();
    let meta = std::collections::BTreeMap::from([("model".to_owned(), model.name.clone())]);
    nn::weights::write_f32_safetensors(out, &tensors, &meta)?;
    println!("wrote {} layers to {}", model.layers.len(), out.display());
    Ok(())
}

/// `netwalk train`: trains `model` from scratch and writes its weights and checkpoint timeline.
#[allow(clippy::too_many_arguments)] // one per flag of the command
pub fn train(
    model: Option<PathBuf>,
    epochs: usize,
    seed: u64,
    out: PathBuf,
    data: Option<PathBuf>,
    batch: usize,
    lr: f64,
) -> Result<()> {
    if epochs == 0 || batch == 0 {
        bail!("--epochs and --batch must be at least 1");
    }
    let model = load_model(model)?;
    let data = match data {
        Some(d) => d,
        None => nn::demo::demo_train_data()?,
    };
    let train_set = nn::Samples::load(&model, &data)?;
    let heldout = match &model.samples {
        Some(p) => Some(nn::Samples::load(&model, p)?),
        None => None,
    };
    println!(
        "training {} on {} samples ({}), {epochs} epochs, batch {batch}, seed {seed} -> {}",
        model.name,
        train_set.count,
        data.display(),
        out.display()
    );
    let cfg = nn::train::TrainConfig {
        epochs,
        seed,
        batch,
        lr,
        out: out.clone(),
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let weights = nn::train::train(&model, &train_set, heldout.as_ref(), &cfg, |ev| match ev {
        nn::train::TrainEvent::Started { steps, .. } => bar.set_length(steps as u64),
        nn::train::TrainEvent::Step { step, loss } => {
            bar.set_position(step as u64);
            if step % 10 == 0 {
                bar.set_message(format!("loss {loss:.4}"));
            }
        }
        nn::train::TrainEvent::Epoch { epoch, loss, accuracy } => {
            let acc = accuracy
                .map(|(k, n)| format!("  held-out accuracy {:.4} ({k}/{n})", k as f64 / n as f64))
                .unwrap_or_default();
            let line = format!("epoch {epoch}/{epochs}  loss {loss:.4}{acc}");
            // A hidden bar (not a terminal) swallows println: print plainly then.
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
        nn::train::TrainEvent::Checkpoint { label, file, .. } => {
            tracing::info!(label, file = %file.display(), "checkpoint written");
        }
    })?;
    bar.finish_and_clear();
    if let Some(h) = &heldout {
        let (k, n) = nn::train::evaluate(&model, &weights, h)?;
        println!("final held-out accuracy {:.4} ({k}/{n})", k as f64 / n as f64);
    }
    println!(
        "done in {:.1} s: {}",
        start.elapsed().as_secs_f64(),
        out.join("model.json").display()
    );
    Ok(())
}

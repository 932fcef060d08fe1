//! Training (candle autograd + AdamW) with a checkpoint timeline, and evaluation on held-out samples.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::data::Samples;
use super::error::{ComputeContext, NnError, Result};
use super::forward::{forward_batch, normalize, predict_batch};
use super::model::{Model, Op, ParamRole, Shape};
use super::weights::{LayerParams, Weights, write_f32_safetensors};

/// Accuracy of `weights` on `samples`: (correct, total).
pub fn evaluate(model: &Model, weights: &Weights, samples: &Samples) -> Result<(usize, usize)> {
    let mut correct = 0;
    for start in (0..samples.count).step_by(256) {
        let end = (start + 256).min(samples.count);
        let x = batch_tensor(model, samples, &(start..end).collect::<Vec<_>>())?;
        let scores = predict_batch(model, weights, &x)?;
        let pred = scores
            .argmax(1)
            .and_then(|t| t.to_vec1::<u32>())
            .in_layer("argmax")?;
        correct += pred
            .iter()
            .zip(&samples.labels[start..end])
            .filter(|(p, l)| p == l)
            .count();
    }
    Ok((correct, samples.count))
}

fn batch_tensor(model: &Model, samples: &Samples, idx: &[usize]) -> Result<Tensor> {
    batch_tensor_shifted(model, samples, idx, None)
}

/// A batch of samples; with `rng`, each image is shifted by up to `MAX_SHIFT` pixels (zero fill),
/// the augmentation that keeps a small CNN on 9k digits from overfitting.
fn batch_tensor_shifted(
    model: &Model,
    samples: &Samples,
    idx: &[usize],
    mut rng: Option<&mut StdRng>,
) -> Result<Tensor> {
    const MAX_SHIFT: i64 = 2;
    let mut data = Vec::with_capacity(idx.len() * samples.per_item);
    for &i in idx {
        let img = samples.image(i);
        match (rng.as_deref_mut(), model.input.shape) {
            (Some(rng), Shape::Chw(c, h, w)) => {
                let dy = rng.random_range(-MAX_SHIFT..=MAX_SHIFT);
                let dx = rng.random_range(-MAX_SHIFT..=MAX_SHIFT);
                for ch in 0..c {
                    for y in 0..h as i64 {
                        for x in 0..w as i64 {
                            let (sy, sx) = (y - dy, x - dx);
                            let inside = sy >= 0 && sx >= 0 && sy < h as i64 && sx < w as i64;
                            data.push(if inside {
                                img[(ch * h + sy as usize) * w + sx as usize]
                            } else {
                                0.0
                            });
                        }
                    }
                }
            }
            _ => data.extend_from_slice(img),
        }
    }
    let mut dims = vec![idx.len()];
    dims.extend(model.input.shape.dims());
    Tensor::from_vec(data, dims.as_slice(), &Device::Cpu).in_layer(&model.input.name)
}

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub seed: u64,
    pub batch: usize,
    pub lr: f64,
    pub out: PathBuf,
}

/// What the trainer reports while it runs.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    Started { steps: usize, steps_per_epoch: usize },
    Step { step: usize, loss: f32 },
    Checkpoint { label: String, file: PathBuf, accuracy: Option<f64> },
    Epoch { epoch: usize, loss: f32, accuracy: Option<(usize, usize)> },
}

/// Checkpoint positions in epochs: dense early (where filters form), then every epoch.
pub fn checkpoint_schedule(epochs: usize) -> Vec<(String, f64)> {
    let mut v = vec![("init".to_owned(), 0.0)];
    for (label, f) in [("epoch 1/8", 0.125), ("epoch 1/4", 0.25), ("epoch 1/2", 0.5)] {
        if (f as f64) < epochs as f64 {
            v.push((label.to_owned(), f));
        }
    }
    for e in 1..=epochs {
        v.push((format!("epoch {e}"), e as f64));
    }
    v
}

/// PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv/dense weights and biases.
fn init_params(model: &Model, rng: &mut StdRng) -> Result<Vec<HashMap<ParamRole, Var>>> {
    let mut out = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        if let Op::BatchNorm2d { .. } = layer.op {
            return Err(NnError::layer(
                &model.path,
                &layer.name,
                "`netwalk train` does not train batchnorm2d layers yet (it evaluates them fine)",
            ));
        }
        let mut vars = HashMap::new();
        let fan_in = layer.fan_in().unwrap_or(1);
        let bound = 1.0 / (fan_in as f32).sqrt();
        for p in &layer.params {
            let n: usize = p.shape.iter().product();
            let vals: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
            let t = Tensor::from_vec(vals, p.shape.as_slice(), &Device::Cpu).in_layer(&layer.name)?;
            vars.insert(p.role, Var::from_tensor(&t).in_layer(&layer.name)?);
        }
        out.push(vars);
    }
    Ok(out)
}

fn params_of(vars: &[HashMap<ParamRole, Var>]) -> Vec<LayerParams> {
    vars.iter()
        .map(|m| {
            let mut p = LayerParams::default();
            for (role, v) in m {
                p.set(*role, v.as_tensor().clone());
            }
            p
        })
        .collect()
}

/// The trainer's current parameters as `Weights` (sharing the variables' storage).
fn current_weights(vars: &[HashMap<ParamRole, Var>], source: &Path) -> Weights {
    Weights {
        source: source.to_path_buf(),
        layers: params_of(vars),
        warnings: Vec::new(),
    }
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
                let vals = t
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .in_layer(&layer.name)?;
                tensors.push((spec.tensor.clone(), spec.shape.clone(), vals));
            }
        }
    }
    write_f32_safetensors(path, &tensors, &metadata)
}

/// Train `model` from scratch on `train_set`; writes weights, checkpoints and model.json into
/// `cfg.out`. Returns the final weights.
pub fn train(
    model: &Model,
    train_set: &Samples,
    heldout: Option<&Samples>,
    cfg: &TrainConfig,
    report: impl FnMut(TrainEvent) + Send,
) -> Result<Weights> {
    // One thread, so a seed gives the same weights on any machine: candle's CPU kernels split their
    // work by the thread count, and float sums depend on how they are split.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| NnError::Usage(format!("cannot start the training thread: {e}")))?;
    pool.install(|| train_single_thread(model, train_set, heldout, cfg, report))
}

fn train_single_thread(
    model: &Model,
    train_set: &Samples,
    heldout: Option<&Samples>,
    cfg: &TrainConfig,
    mut report: impl FnMut(TrainEvent),
) -> Result<Weights> {
    let logits_layer = model
        .logits_layer()
        .ok_or_else(|| NnError::format(&model.path, "no layers to train"))?;
    let classes = model.layers[logits_layer].shape.elements();
    if train_set.count == 0 {
        return Err(NnError::Usage("the training set is empty".into()));
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let vars = init_params(model, &mut rng)?;
    let all_vars: Vec<Var> = vars.iter().flat_map(|m| m.values().cloned()).collect();
    let mut opt = candle_nn::AdamW::new(
        all_vars,
        candle_nn::ParamsAdamW {
            lr: cfg.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .in_layer("optimizer")?;

    let steps_per_epoch = train_set.count.div_ceil(cfg.batch);
    let total_steps = steps_per_epoch * cfg.epochs;
    let schedule: Vec<(String, usize)> = checkpoint_schedule(cfg.epochs)
        .into_iter()
        .map(|(l, e)| (l, (e * steps_per_epoch as f64).round() as usize))
        .collect();
    report(TrainEvent::Started {
        steps: total_steps,
        steps_per_epoch,
    });
    let mut checkpoints = Vec::new();
    let mut next_ckpt = 0;
    let mut epoch_loss = (0f64, 0usize);
    let mut last_loss = f32::NAN;
    let mut order: Vec<usize> = (0..train_set.count).collect();
    let save = |step: usize,
                label: &str,
                loss: f32,
                weights: &Weights,
                accuracy: Option<(usize, usize)>,
                checkpoints: &mut Vec<(String, String)>,
                report: &mut dyn FnMut(TrainEvent)|
     -> Result<()> {
        let acc = accuracy.map(|(k, n)| k as f64 / n as f64);
        let rel = format!("epochs/{:03}.safetensors", checkpoints.len());
        let file = cfg.out.join(&rel);
        let mut meta = BTreeMap::from([
            ("label".to_owned(), label.to_owned()),
            ("step".to_owned(), step.to_string()),
            ("epoch".to_owned(), format!("{:.4}", step as f64 / steps_per_epoch as f64)),
            ("seed".to_owned(), cfg.seed.to_string()),
        ]);
        if loss.is_finite() {
            meta.insert("train_loss".to_owned(), format!("{loss:.6}"));
        }
        if let Some(a) = acc {
            meta.insert("heldout_accuracy".to_owned(), format!("{a:.6}"));
        }
        save_weights(model, &weights.layers, meta, &file)?;
        checkpoints.push((label.to_owned(), rel));
        report(TrainEvent::Checkpoint {
            label: label.to_owned(),
            file,
            accuracy: acc,
        });
        Ok(())
    };
    for step in 0..=total_steps {
        // Checkpoints and epoch ends share one held-out evaluation of the current weights.
        let epoch_end = step > 0 && step % steps_per_epoch == 0;
        let checkpoint_due = next_ckpt < schedule.len() && schedule[next_ckpt].1 == step;
        if epoch_end || checkpoint_due {
            let w = current_weights(&vars, &cfg.out);
            let accuracy = heldout.map(|h| evaluate(model, &w, h)).transpose()?;
            while next_ckpt < schedule.len() && schedule[next_ckpt].1 == step {
                save(step, &schedule[next_ckpt].0, last_loss, &w, accuracy, &mut checkpoints, &mut report)?;
                next_ckpt += 1;
            }
            if epoch_end {
                report(TrainEvent::Epoch {
                    epoch: step / steps_per_epoch,
                    loss: (epoch_loss.0 / epoch_loss.1 as f64) as f32,
                    accuracy,
                });
                epoch_loss = (0.0, 0);
            }
        }
        if step == total_steps {
            break;
        }
        let in_epoch = step % steps_per_epoch;
        if in_epoch == 0 {
            order.shuffle(&mut rng);
        }
        let idx = &order[in_epoch * cfg.batch..((in_epoch + 1) * cfg.batch).min(train_set.count)];
        let x = batch_tensor_shifted(model, train_set, idx, Some(&mut rng))?;
        // Cosine decay to 5% of the initial rate: large steps early, fine ones at the end.
        let progress = step as f64 / total_steps as f64;
        opt.set_learning_rate(cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())));
        let y = Tensor::from_vec(
            idx.iter().map(|&i| train_set.labels[i]).collect::<Vec<u32>>(),
            idx.len(),
            &Device::Cpu,
        )
        .in_layer("labels")?;
        let x = normalize(model, &x).in_layer(&model.input.name)?;
        let params = params_of(&vars);
        let outs = forward_batch(model, &params, &x)?;
        let logits = outs[logits_layer]
            .reshape((idx.len(), classes))
            .in_layer(&model.layers[logits_layer].name)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y).in_layer("loss")?;
        opt.backward_step(&loss).in_layer("backward")?;
        last_loss = loss.to_dtype(DType::F32).and_then(|l| l.to_scalar::<f32>()).in_layer("loss")?;
        epoch_loss.0 += last_loss as f64;
        epoch_loss.1 += 1;
        report(TrainEvent::Step {
            step: step + 1,
            loss: last_loss,
        });
    }
    let final_w = current_weights(&vars, &cfg.out.join("weights.safetensors"));
    let meta = BTreeMap::from([
        ("label".to_owned(), format!("epoch {}", cfg.epochs)),
        ("seed".to_owned(), cfg.seed.to_string()),
    ]);
    save_weights(model, &final_w.layers, meta, &final_w.source)?;
    write_model_json(model, &cfg.out, &checkpoints)?;
    Ok(final_w)
}

/// Rewrite the model's JSON into `out`: same layers, new weights and checkpoints; samples copied
/// along so the folder stands on its own.
fn write_model_json(model: &Model, out: &Path, checkpoints: &[(String, String)]) -> Result<()> {
    let text = std::fs::read_to_string(&model.path).map_err(|e| NnError::io(&model.path, e))?;
    let mut v: serde_json::Value = serde_json::from_str(&text).map_err(|source| NnError::Json {
        file: model.path.clone(),
        source,
    })?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| NnError::format(&model.path, "top level must be a JSON object"))?;
    obj.insert("weights".into(), "weights.safetensors".into());
    obj.insert(
        "checkpoints".into(),
        checkpoints
            .iter()
            .map(|(label, rel)| serde_json::json!({"label": label, "weights": rel}))
            .collect::<Vec<_>>()
            .into(),
    );
    if let Some(samples) = &model.samples {
        let dst = out.join("samples.safetensors");
        let same = std::fs::canonicalize(samples).ok() == std::fs::canonicalize(&dst).ok();
        if !same {
            std::fs::copy(samples, &dst).map_err(|e| NnError::io(samples, e))?;
        }
        obj.insert("samples".into(), "samples.safetensors".into());
    }
    let path = out.join("model.json");
    let tmp = out.join("model.json.tmp");
    let json = serde_json::to_string_pretty(&v).map_err(|source| NnError::Json {
        file: path.clone(),
        source,
    })?;
    std::fs::write(&tmp, json + "\n").map_err(|e| NnError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| NnError::io(&path, e))
}

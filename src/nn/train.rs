//! Training (candle autograd + AdamW) with a checkpoint timeline, and evaluation on held-out samples.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::data::Samples;
use super::error::{ComputeContext, NnError, Result};
use super::forward::{forward_batch, normalize, predict_batch};
use super::model::{Model, Op, ParamRole, Shape};
use super::timeline::{CheckpointInfo, LoadedCheckpoint};
pub use super::weights::save_weights;
use super::weights::{LayerParams, Weights};

/// Accuracy of `weights` on `samples`: (correct, total).
pub fn evaluate(model: &Model, weights: &Weights, samples: &Samples) -> Result<(usize, usize)> {
    let mut correct = 0;
    for start in (0..samples.count).step_by(256) {
        let end = (start + 256).min(samples.count);
        let x = batch_tensor(model, samples, &(start..end).collect::<Vec<_>>())?;
        let scores = predict_batch(model, weights, &x)?;
        let pred = scores.argmax(1).and_then(|t| t.to_vec1::<u32>()).in_layer("argmax")?;
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
    Started {
        steps: usize,
        steps_per_epoch: usize,
    },
    Step {
        step: usize,
        loss: f32,
    },
    Checkpoint {
        label: String,
        file: PathBuf,
        accuracy: Option<f64>,
    },
    Epoch {
        epoch: usize,
        loss: f32,
        accuracy: Option<(usize, usize)>,
    },
}

/// Checkpoint positions in epochs: dense early (where filters form), then every epoch.
pub fn checkpoint_schedule(epochs: usize) -> Vec<(String, f64)> {
    let mut v = vec![("init".to_owned(), 0.0)];
    for (label, f) in [("epoch 1/8", 0.125), ("epoch 1/4", 0.25), ("epoch 1/2", 0.5)] {
        if f < epochs as f64 {
            v.push((label.to_owned(), f));
        }
    }
    for e in 1..=epochs {
        v.push((format!("epoch {e}"), e as f64));
    }
    v
}

/// The value every parameter of a layer with this op starts at, where PyTorch's init is a
/// constant: prelu's slope 0.25, a scale (mul/div constant, layer norm weight) 1, a shift
/// (add/sub constant, layer norm bias) 0.
fn init_constant(op: &Op, role: ParamRole) -> Option<f32> {
    match (op, role) {
        (Op::PRelu, _) => Some(0.25),
        (Op::Mul | Op::Div, _) | (Op::LayerNorm { .. }, ParamRole::Weight) => Some(1.0),
        (Op::Add | Op::Sub | Op::LayerNorm { .. }, _) => Some(0.0),
        _ => None,
    }
}

/// PyTorch's default init (constants: [`init_constant`]): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv/dense weights and biases.
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
            let vals: Vec<f32> = match init_constant(&layer.op, p.role) {
                Some(v) => vec![v; n],
                None => (0..n).map(|_| rng.random_range(-bound..bound)).collect(),
            };
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

/// Train `model` from scratch on `train_set`; writes weights, checkpoints and model.json into
/// `cfg.out`. Returns the final weights.
pub fn train(
    model: &Model,
    train_set: &Samples,
    heldout: Option<&Samples>,
    cfg: &TrainConfig,
    report: impl FnMut(TrainEvent) + Send,
) -> Result<Weights> {
    let mut sink = FileSink {
        model,
        out: &cfg.out,
        checkpoints: Vec::new(),
        report,
    };
    let final_w = on_one_thread(|| train_loop(model, train_set, heldout, cfg, &mut sink))?;
    let final_w = Weights {
        source: cfg.out.join("weights.safetensors"),
        ..final_w
    };
    let meta = BTreeMap::from([
        ("label".to_owned(), format!("epoch {}", cfg.epochs)),
        ("seed".to_owned(), cfg.seed.to_string()),
    ]);
    save_weights(model, &final_w.layers, meta, &final_w.source)?;
    write_model_json(model, &cfg.out, &sink.checkpoints)?;
    Ok(final_w)
}

/// Live training (the app's `--train`): how long, and how often to publish.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub epochs: usize,
    pub seed: u64,
    pub batch: usize,
    pub lr: f64,
    /// Steps between published checkpoints (besides the schedule's init and epoch points).
    pub every: usize,
}

impl Default for LiveConfig {
    /// `netwalk train`'s defaults, a checkpoint every 25 steps.
    fn default() -> LiveConfig {
        LiveConfig {
            epochs: 8,
            seed: 1,
            batch: 64,
            lr: 2e-3,
            every: 25,
        }
    }
}

/// Trains like [`train`] (same initialization, data order and schedule for a seed) but writes no
/// files: each checkpoint (the schedule's, and one every `cfg.every` steps) goes to `publish` as
/// a copy of the weights with its metadata (step, epoch, training loss, held-out accuracy, as in
/// a checkpoint file). Stops early, returning `None`, when `publish` returns `false` or `stop` is
/// set (checked before every step); else returns the final weights.
pub fn train_live(
    model: &Model,
    train_set: &Samples,
    heldout: Option<&Samples>,
    cfg: &LiveConfig,
    stop: &AtomicBool,
    publish: impl FnMut(LoadedCheckpoint) -> bool + Send,
) -> Result<Option<Weights>> {
    let train_cfg = TrainConfig {
        epochs: cfg.epochs,
        seed: cfg.seed,
        batch: cfg.batch,
        lr: cfg.lr,
        out: PathBuf::from("live training"),
    };
    let mut sink = LiveSink {
        every: cfg.every.max(1),
        stop,
        stopped: false,
        publish,
    };
    let w = on_one_thread(|| train_loop(model, train_set, heldout, &train_cfg, &mut sink))?;
    Ok((!sink.stopped).then_some(w))
}

/// One thread, so a seed gives the same weights on any machine: candle's CPU kernels split their
/// work by the thread count, and float sums depend on how they are split. (Live training also
/// leaves the other cores to the render loop.)
fn on_one_thread<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| NnError::Usage(format!("cannot start the training thread: {e}")))?;
    pool.install(f)
}

/// Where the training loop's checkpoints and progress go: files (`netwalk train`) or the app.
trait Sink {
    fn report(&mut self, _event: TrainEvent) {}
    /// Steps between extra checkpoints besides the schedule (`None`: the schedule only).
    fn every(&self) -> Option<usize> {
        None
    }
    /// A checkpoint of `weights` (which share the trainer's storage: copy to keep them).
    fn checkpoint(
        &mut self,
        label: &str,
        meta: BTreeMap<String, String>,
        weights: &Weights,
        accuracy: Option<f64>,
    ) -> Result<()>;
    /// Whether to stop before the next step.
    fn stop(&mut self) -> bool {
        false
    }
}

/// `netwalk train`'s checkpoints: `epochs/NNN.safetensors` under `out`.
struct FileSink<'a, R> {
    model: &'a Model,
    out: &'a Path,
    /// (label, path relative to `out`) of each checkpoint written, for model.json.
    checkpoints: Vec<(String, String)>,
    report: R,
}

impl<R: FnMut(TrainEvent)> Sink for FileSink<'_, R> {
    fn report(&mut self, event: TrainEvent) {
        (self.report)(event)
    }

    fn checkpoint(
        &mut self,
        label: &str,
        meta: BTreeMap<String, String>,
        weights: &Weights,
        accuracy: Option<f64>,
    ) -> Result<()> {
        let rel = format!("epochs/{:03}.safetensors", self.checkpoints.len());
        let file = self.out.join(&rel);
        save_weights(self.model, &weights.layers, meta, &file)?;
        self.checkpoints.push((label.to_owned(), rel));
        (self.report)(TrainEvent::Checkpoint {
            label: label.to_owned(),
            file,
            accuracy,
        });
        Ok(())
    }
}

/// Live training's checkpoints: copies handed to a callback.
struct LiveSink<'a, P> {
    every: usize,
    stop: &'a AtomicBool,
    stopped: bool,
    publish: P,
}

impl<P: FnMut(LoadedCheckpoint) -> bool> Sink for LiveSink<'_, P> {
    fn every(&self) -> Option<usize> {
        Some(self.every)
    }

    fn checkpoint(
        &mut self,
        label: &str,
        meta: BTreeMap<String, String>,
        weights: &Weights,
        _: Option<f64>,
    ) -> Result<()> {
        let copy = |t: &Option<Tensor>| t.as_ref().map(|t| t.copy()).transpose().in_layer(label);
        let layers = weights
            .layers
            .iter()
            .map(|p| {
                Ok(LayerParams {
                    weight: copy(&p.weight)?,
                    bias: copy(&p.bias)?,
                    running_mean: copy(&p.running_mean)?,
                    running_var: copy(&p.running_var)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let step = meta.get("step").map_or("", String::as_str);
        let checkpoint = LoadedCheckpoint {
            info: CheckpointInfo::from_metadata(label.to_owned(), &meta.clone().into_iter().collect()),
            weights: Weights {
                source: weights.source.join(format!("step {step}")),
                layers,
                warnings: Vec::new(),
            },
        };
        if !(self.publish)(checkpoint) {
            self.stopped = true;
        }
        Ok(())
    }

    fn stop(&mut self) -> bool {
        self.stopped |= self.stop.load(Ordering::Relaxed);
        self.stopped
    }
}

fn train_loop(
    model: &Model,
    train_set: &Samples,
    heldout: Option<&Samples>,
    cfg: &TrainConfig,
    sink: &mut dyn Sink,
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
    sink.report(TrainEvent::Started {
        steps: total_steps,
        steps_per_epoch,
    });
    let every = sink.every();
    let mut next_ckpt = 0;
    let mut epoch_loss = (0f64, 0usize);
    let mut last_loss = f32::NAN;
    let mut order: Vec<usize> = (0..train_set.count).collect();
    let save = |step: usize,
                label: &str,
                loss: f32,
                weights: &Weights,
                accuracy: Option<(usize, usize)>,
                sink: &mut dyn Sink|
     -> Result<()> {
        let acc = accuracy.map(|(k, n)| k as f64 / n as f64);
        let mut meta = BTreeMap::from([
            ("label".to_owned(), label.to_owned()),
            ("step".to_owned(), step.to_string()),
            (
                "epoch".to_owned(),
                format!("{:.4}", step as f64 / steps_per_epoch as f64),
            ),
            ("seed".to_owned(), cfg.seed.to_string()),
        ]);
        if loss.is_finite() {
            meta.insert("train_loss".to_owned(), format!("{loss:.6}"));
        }
        if let Some(a) = acc {
            meta.insert("heldout_accuracy".to_owned(), format!("{a:.6}"));
        }
        sink.checkpoint(label, meta, weights, acc)
    };
    for step in 0..=total_steps {
        // Checkpoints and epoch ends share one held-out evaluation of the current weights.
        let epoch_end = step > 0 && step % steps_per_epoch == 0;
        let checkpoint_due = next_ckpt < schedule.len() && schedule[next_ckpt].1 == step;
        let extra_due = every.is_some_and(|n| step > 0 && step % n == 0);
        if epoch_end || checkpoint_due || extra_due {
            let w = current_weights(&vars, &cfg.out);
            let accuracy = heldout.map(|h| evaluate(model, &w, h)).transpose()?;
            let mut saved = false;
            while next_ckpt < schedule.len() && schedule[next_ckpt].1 == step {
                save(step, &schedule[next_ckpt].0, last_loss, &w, accuracy, sink)?;
                next_ckpt += 1;
                saved = true;
            }
            if extra_due && !saved {
                save(step, &format!("step {step}"), last_loss, &w, accuracy, sink)?;
            }
            if epoch_end {
                sink.report(TrainEvent::Epoch {
                    epoch: step / steps_per_epoch,
                    loss: (epoch_loss.0 / epoch_loss.1 as f64) as f32,
                    accuracy,
                });
                epoch_loss = (0.0, 0);
            }
        }
        if step == total_steps || sink.stop() {
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
        last_loss = loss
            .to_dtype(DType::F32)
            .and_then(|l| l.to_scalar::<f32>())
            .in_layer("loss")?;
        epoch_loss.0 += last_loss as f64;
        epoch_loss.1 += 1;
        sink.report(TrainEvent::Step {
            step: step + 1,
            loss: last_loss,
        });
    }
    Ok(current_weights(&vars, &cfg.out))
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

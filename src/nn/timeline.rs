//! A model's training timeline: its checkpoints' weights, in order, with what `netwalk train`
//! recorded about each (step, training loss, held-out accuracy), and the weights at any
//! continuous position between them (linear interpolation), so scrubbing is smooth. It grows
//! while the app runs ([`Timeline::push`]) as checkpoints arrive (`nn::live`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{NnError, Result};
use super::model::Model;
use super::recompute::WeightsAt;
use safetensors::SafeTensors;

use super::weights::{Weights, parse_safetensors};

/// What training recorded about one checkpoint (from its file's metadata; absent: `None`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckpointInfo {
    pub label: String,
    pub step: Option<u64>,
    pub epoch: Option<f32>,
    pub train_loss: Option<f32>,
    pub heldout_accuracy: Option<f32>,
}

pub struct Timeline {
    pub info: Vec<CheckpointInfo>,
    weights: Vec<Weights>,
}

/// One checkpoint read and checked against the model: what training recorded, and its weights.
#[derive(Debug, Clone)]
pub struct LoadedCheckpoint {
    pub info: CheckpointInfo,
    pub weights: Weights,
}

impl LoadedCheckpoint {
    /// Reads the checkpoint file at `path` and validates it as [`Weights::load_file`] does (every
    /// tensor the model needs, with its shape). Its label: `label` when given (model.json's),
    /// else the file's metadata `label`, else the file's stem.
    /// The file is read into memory, not mapped: a file truncated while it is read (a writer
    /// not following the watch protocol) is then an error, never a crash.
    pub fn read(model: &Model, path: &Path, label: Option<&str>) -> Result<LoadedCheckpoint> {
        let bytes = std::fs::read(path).map_err(|e| NnError::io(path, e))?;
        let weights = Weights::from_safetensors(model, &parse_safetensors(&bytes, path)?, path)?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| NnError::Safetensors {
            file: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let meta = header.metadata().clone().unwrap_or_default();
        let stem = || {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let label = match label {
            Some(l) => l.to_owned(),
            None => meta
                .get("label")
                .cloned()
                .filter(|l| !l.trim().is_empty())
                .unwrap_or_else(stem),
        };
        Ok(LoadedCheckpoint {
            info: CheckpointInfo::from_metadata(label, &meta),
            weights,
        })
    }
}

impl CheckpointInfo {
    /// What training recorded in a checkpoint's metadata (`step`, `epoch`, `train_loss`,
    /// `heldout_accuracy`; missing or unreadable values are `None`).
    pub fn from_metadata(label: String, meta: &HashMap<String, String>) -> CheckpointInfo {
        let num = |k: &str| {
            meta.get(k)
                .and_then(|v| v.parse::<f32>().ok())
                .filter(|v| v.is_finite())
        };
        CheckpointInfo {
            label,
            step: meta.get("step").and_then(|v| v.parse().ok()),
            epoch: num("epoch"),
            train_loss: num("train_loss"),
            heldout_accuracy: num("heldout_accuracy"),
        }
    }
}

impl Timeline {
    /// A timeline without checkpoints, to be grown with [`Timeline::push`].
    pub fn empty() -> Timeline {
        Timeline {
            info: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Loads every checkpoint of `model`. `None` when the model has none.
    pub fn load(model: &Model) -> Result<Option<Timeline>> {
        if model.checkpoints.is_empty() {
            return Ok(None);
        }
        let mut t = Timeline::empty();
        for c in &model.checkpoints {
            t.push(LoadedCheckpoint::read(model, &c.weights, Some(&c.label))?);
        }
        Ok(Some(t))
    }

    /// Appends a checkpoint at the end (its weights must be the model's, as
    /// [`LoadedCheckpoint::read`] checks); returns its index.
    pub fn push(&mut self, checkpoint: LoadedCheckpoint) -> usize {
        self.info.push(checkpoint.info);
        self.weights.push(checkpoint.weights);
        self.weights.len() - 1
    }

    /// Reads the checkpoint file at `path` (see [`LoadedCheckpoint::read`]) and appends it.
    pub fn append_file(&mut self, model: &Model, path: &Path) -> Result<usize> {
        Ok(self.push(LoadedCheckpoint::read(model, path, None)?))
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// The last position (the last checkpoint).
    pub fn end(&self) -> f32 {
        self.len().saturating_sub(1) as f32
    }

    /// The checkpoint nearest to `position`.
    pub fn nearest(&self, position: f32) -> usize {
        (position.clamp(0.0, self.end()).round() as usize).min(self.len().saturating_sub(1))
    }

    /// The weights at `position` (clamped to the timeline): checkpoint `i` at `i`, the linear
    /// mix of `i` and `i + 1` between them.
    pub fn weights_at(&self, position: f32) -> Result<Weights> {
        self.at(position)?.resolve()
    }

    /// The weights at `position` as [`Timeline::weights_at`] gives them, left unmixed: cheap to
    /// make (the checkpoints' tensors are shared), mixed where the work is done.
    pub fn at(&self, position: f32) -> Result<WeightsAt> {
        let p = if position.is_finite() {
            position.clamp(0.0, self.end())
        } else {
            self.end()
        };
        let i = p.floor() as usize;
        let t = p - i as f32;
        match (self.weights.get(i), self.weights.get(i + 1)) {
            (Some(a), Some(b)) if t > 0.0 => Ok(WeightsAt::Mix {
                a: a.clone(),
                b: b.clone(),
                t,
                what: format!("checkpoints {i} and {}", i + 1),
            }),
            (Some(a), _) => Ok(WeightsAt::Given(a.clone())),
            (None, _) => Err(NnError::Usage("the model has no checkpoints".into())),
        }
    }

    /// Where checkpoint `i` was read from.
    pub fn source(&self, i: usize) -> Option<&PathBuf> {
        self.weights.get(i).map(|w| &w.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{demo, forward};

    #[test]
    fn the_demo_timeline_interpolates_between_checkpoints() {
        let model = Model::load(&demo::demo_dir().expect("demo")).expect("demo model");
        let t = Timeline::load(&model).expect("load").expect("the demo has checkpoints");
        assert_eq!(t.len(), model.checkpoints.len());
        assert_eq!(t.info[0].label, "init");
        // Training recorded its held-out accuracy, which rises from init to the end.
        let first = t.info[0].heldout_accuracy.expect("init accuracy");
        let last = t.info[t.len() - 1].heldout_accuracy.expect("last accuracy");
        assert!(first < 0.3 && last > 0.95, "{first} → {last}");
        // Whole positions are the checkpoints themselves; halfway is the mean of the two.
        let input = vec![0.25f32; model.input.shape.elements()];
        let at = |p: f32| forward(&model, &t.weights_at(p).expect("weights"), &input).expect("forward");
        let (a, b, mid) = (at(3.0), at(4.0), at(3.5));
        let lerped = Weights::lerp(&t.weights[3], &t.weights[4], 0.5).expect("lerp");
        let want = forward(&model, &lerped, &input).expect("forward");
        assert_eq!(mid.layers, want.layers);
        assert_ne!(a.layers, b.layers);
        // The first layer is linear in the weights (before its relu): exactly halfway.
        let (l0a, l0b, l0m) = (&a.layers[0], &b.layers[0], &mid.layers[0]);
        for k in (0..l0a.len()).step_by(97) {
            assert!((l0m[k] - (l0a[k] + l0b[k]) / 2.0).abs() < 1e-4, "{k}");
        }
        // Out of range clamps to the ends.
        assert_eq!(at(-3.0).layers, at(0.0).layers);
        assert_eq!(at(99.0).layers, at(t.end()).layers);
        assert_eq!((t.nearest(3.4), t.nearest(3.6), t.nearest(50.0)), (3, 4, t.len() - 1));
    }
}

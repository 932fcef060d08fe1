//! Reruns the network off the render thread. The frame loop submits what it wants computed (the
//! activations for weights at a timeline position and an input image, or how much each layer
//! changed between two checkpoints) and takes the results when they are ready, so scrubbing and
//! new checkpoints never stall a frame, however big the model. Only the newest request of each
//! kind is computed: while the user scrubs faster than the network runs, the positions in
//! between are skipped rather than queued.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::engine::Activations;
use super::error::{NnError, Result};
use super::forward::forward;
use super::model::Model;
use super::weights::Weights;

/// Weights to run: given, or the mix of two checkpoints (made on the worker: mixing a big model's
/// weights takes as long as running it).
#[derive(Debug, Clone)]
pub enum WeightsAt {
    Given(Weights),
    /// `a * (1 - t) + b * t`.
    Mix {
        a: Weights,
        b: Weights,
        t: f32,
        what: String,
    },
}

impl WeightsAt {
    pub fn resolve(self) -> Result<Weights> {
        match self {
            WeightsAt::Given(w) => Ok(w),
            WeightsAt::Mix { a, b, t, what } => {
                Weights::lerp(&a, &b, t).map_err(|source| NnError::Compute { layer: what, source })
            }
        }
    }
}

/// What the frame loop asks for.
#[derive(Debug)]
pub enum Request {
    /// The activations of `weights` on `input` (raw, before normalization).
    Run {
        id: u64,
        weights: WeightsAt,
        input: Arc<[f32]>,
    },
    /// Per layer, how much its output on `input` changed from `before`'s weights to `now`'s
    /// ([`relative_change`]); `key` comes back with the result.
    Change {
        key: (usize, u64),
        before: Weights,
        now: Weights,
        input: Arc<[f32]>,
    },
}

/// What comes back.
#[derive(Debug)]
pub enum Done {
    Run {
        id: u64,
        result: Result<(Weights, Activations)>,
    },
    /// One value per model layer.
    Change {
        key: (usize, u64),
        result: Result<Vec<f32>>,
    },
}

/// The worker thread and its two channels. Dropping it stops the thread after the job at hand.
pub struct Recompute {
    tx: Option<Sender<Request>>,
    rx: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

/// The newest request of each kind among `first` and whatever else is queued.
fn newest(first: Request, rx: &Receiver<Request>) -> std::result::Result<(Option<Request>, Option<Request>), ()> {
    let (mut run, mut change) = (None, None);
    let mut keep = |r: Request| match r {
        r @ Request::Run { .. } => run = Some(r),
        r @ Request::Change { .. } => change = Some(r),
    };
    keep(first);
    loop {
        match rx.try_recv() {
            Ok(r) => keep(r),
            Err(TryRecvError::Empty) => return Ok((run, change)),
            Err(TryRecvError::Disconnected) => return Err(()),
        }
    }
}

/// Does `request` on this thread.
pub fn compute(model: &Model, request: Request) -> Done {
    match request {
        Request::Run { id, weights, input } => Done::Run {
            id,
            result: weights
                .resolve()
                .and_then(|w| forward(model, &w, &input).map(|a| (w, a))),
        },
        Request::Change {
            key,
            before,
            now,
            input,
        } => Done::Change {
            key,
            result: forward(model, &before, &input).and_then(|b| {
                let n = forward(model, &now, &input)?;
                Ok(b.layers
                    .iter()
                    .zip(&n.layers)
                    .map(|(b, n)| relative_change(b, n))
                    .collect())
            }),
        },
    }
}

impl Recompute {
    /// Starts the worker for `model` (its own copy; only the layers matter to it).
    pub fn start(model: &Model) -> Result<Recompute> {
        let model = model.clone();
        let (tx, requests) = mpsc::channel::<Request>();
        let (done, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("netwalk recompute".into())
            .spawn(move || {
                while let Ok(first) = requests.recv() {
                    let Ok((run, change)) = newest(first, &requests) else {
                        return;
                    };
                    // The activations first: they are what the user is waiting to see.
                    for r in [run, change].into_iter().flatten() {
                        if done.send(compute(&model, r)).is_err() {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| NnError::Usage(format!("cannot start the recompute thread: {e}")))?;
        Ok(Recompute {
            tx: Some(tx),
            rx,
            thread: Some(thread),
        })
    }

    /// Queues `request` (never blocks).
    pub fn submit(&self, request: Request) -> Result<()> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(request).ok())
            .ok_or_else(|| NnError::Usage("the recompute thread has stopped".into()))
    }

    /// The results ready now, in the order they were made (never blocks).
    pub fn poll(&self) -> Vec<Done> {
        self.rx.try_iter().collect()
    }

    /// Waits up to `timeout` for the next result.
    pub fn wait(&self, timeout: Duration) -> Option<Done> {
        let deadline = Instant::now() + timeout;
        // Timed out or the worker is gone: nothing.
        self.rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    }
}

impl Drop for Recompute {
    fn drop(&mut self) {
        // Closing the request channel ends the worker's loop.
        self.tx.take();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the recompute thread panicked");
        }
    }
}

/// How much `now` differs from `before`, relative to `now`'s size: ‖now − before‖ / ‖now‖
/// (0 when both are zero; non-finite values are left out).
pub fn relative_change(before: &[f32], now: &[f32]) -> f32 {
    let (mut diff, mut size) = (0f64, 0f64);
    for (&a, &b) in before.iter().zip(now) {
        if a.is_finite() && b.is_finite() {
            diff += f64::from(b - a).powi(2);
            size += f64::from(b).powi(2);
        }
    }
    match (diff, size) {
        (0.0, _) => 0.0,
        (d, 0.0) => d.sqrt() as f32,
        (d, s) => (d / s).sqrt() as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::synthetic;

    #[test]
    fn relative_change_is_the_difference_over_the_size() {
        assert_eq!(relative_change(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((relative_change(&[0.0, 0.0], &[3.0, 4.0]) - 1.0).abs() < 1e-6);
        assert!((relative_change(&[3.0, 4.0], &[6.0, 8.0]) - 0.5).abs() < 1e-6);
        assert_eq!(relative_change(&[0.0], &[0.0]), 0.0);
    }

    /// The demo's architecture with two different random weight sets.
    fn two() -> (Model, Weights, Weights, Vec<f32>) {
        let (model, a) = synthetic::build("mnist-cnn", 1).unwrap();
        let (_, b) = synthetic::build("mnist-cnn", 2).unwrap();
        let input = (0..model.input.shape.elements())
            .map(|i| (i % 13) as f32 / 13.0)
            .collect();
        (model, a, b, input)
    }

    #[test]
    fn results_equal_the_forward_pass_and_only_the_newest_run_is_computed() {
        let (model, weights, _, input) = two();
        let worker = Recompute::start(&model).unwrap();
        let inputs: Vec<Arc<[f32]>> = (0..6).map(|k| input.iter().map(|v| v * k as f32).collect()).collect();
        for (id, x) in inputs.iter().enumerate() {
            let weights = WeightsAt::Given(weights.clone());
            worker
                .submit(Request::Run {
                    id: id as u64,
                    weights,
                    input: x.clone(),
                })
                .unwrap();
        }
        let mut ids = Vec::new();
        while ids.last() != Some(&5) {
            let Some(Done::Run { id, result }) = worker.wait(Duration::from_secs(60)) else {
                panic!("no result")
            };
            let (_, acts) = result.unwrap();
            let expected = forward(&model, &weights, &inputs[id as usize]).unwrap();
            assert_eq!(acts.layers, expected.layers, "request {id}");
            ids.push(id);
        }
        // Ids come back increasing, the last one always; ones queued behind a newer one are skipped.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(worker.wait(Duration::from_millis(50)).is_none());
    }

    #[test]
    fn a_mix_is_the_lerp_and_a_change_is_measured_per_layer() {
        let (model, a, b, input) = two();
        let worker = Recompute::start(&model).unwrap();
        let x: Arc<[f32]> = input.into();
        let what = "test".to_owned();
        let mix = WeightsAt::Mix {
            a: a.clone(),
            b: b.clone(),
            t: 0.25,
            what,
        };
        worker
            .submit(Request::Run {
                id: 9,
                weights: mix,
                input: x.clone(),
            })
            .unwrap();
        let Some(Done::Run { id: 9, result }) = worker.wait(Duration::from_secs(60)) else {
            panic!("no run")
        };
        let (w, acts) = result.unwrap();
        let expected = forward(&model, &Weights::lerp(&a, &b, 0.25).unwrap(), &x).unwrap();
        assert_eq!(acts.layers, expected.layers);
        assert_eq!(forward(&model, &w, &x).unwrap().layers, expected.layers);

        let change = Request::Change {
            key: (3, 1),
            before: a.clone(),
            now: b.clone(),
            input: x.clone(),
        };
        worker.submit(change).unwrap();
        let Some(Done::Change { key, result }) = worker.wait(Duration::from_secs(60)) else {
            panic!("no change")
        };
        assert_eq!(key, (3, 1));
        let change = result.unwrap();
        let (fa, fb) = (forward(&model, &a, &x).unwrap(), forward(&model, &b, &x).unwrap());
        assert_eq!(change.len(), model.layers.len());
        for (i, c) in change.iter().enumerate() {
            assert_eq!(*c, relative_change(&fa.layers[i], &fb.layers[i]), "layer {i}");
            assert!(*c > 0.0, "different random weights change layer {i}");
        }
    }
}

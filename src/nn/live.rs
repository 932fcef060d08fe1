//! Checkpoints that arrive while the app runs: from a folder an external training run writes
//! into (`netwalk run --watch DIR`), or from training in a background thread (`netwalk run
//! --train`). Either runs on its own thread and hands checked checkpoints over a channel, so the
//! render loop only ever takes what is ready ([`Feed::poll`]) and never waits on files or training.
//!
//! The watch protocol: a writer saves each checkpoint under a name that does not end in
//! `.safetensors` (`ckpt-0003.safetensors.tmp`, say), then renames it to its final
//! `*.safetensors` name, so a half-written file is never read. New files are taken in name order
//! (zero-pad step numbers). A file that is not a valid checkpoint for the model (corrupt,
//! truncated, missing or mis-shaped tensors) is skipped with a message, once; the watch goes on.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::data::Samples;
use super::error::{NnError, Result};
use super::model::Model;
use super::timeline::LoadedCheckpoint;
use super::train::{LiveConfig, train_live};

/// How often the watcher looks at the folder.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// What a feed delivers.
#[derive(Debug)]
pub enum LiveEvent {
    /// A new checkpoint, checked against the model: append it to the timeline.
    Checkpoint(LoadedCheckpoint),
    /// A watched file that is not a valid checkpoint for the model; it is not read again unless
    /// it changes (size or modification time).
    Skipped { file: PathBuf, error: String },
    /// Training ended: `Ok` when it ran to the end, the error when it failed.
    Finished(std::result::Result<(), String>),
}

impl LiveEvent {
    /// The one-line message to show the user, for everything but a checkpoint.
    pub fn message(&self) -> Option<String> {
        match self {
            LiveEvent::Checkpoint(_) => None,
            LiveEvent::Skipped { error, .. } => Some(format!("skipped checkpoint: {error}")),
            LiveEvent::Finished(Ok(())) => Some("live training finished".into()),
            LiveEvent::Finished(Err(e)) => Some(format!("live training failed: {e}")),
        }
    }
}

/// A background source of checkpoints: its thread, and the channel it sends on. Dropping it stops
/// the thread (at its next poll or training step) and waits for it.
pub struct Feed {
    rx: Receiver<LiveEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    what: &'static str,
}

impl Feed {
    fn spawn(
        what: &'static str,
        body: impl FnOnce(Sender<LiveEvent>, Arc<AtomicBool>) + Send + 'static,
    ) -> Result<Feed> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("netwalk {what}"))
            .spawn(move || body(tx, thread_stop))
            .map_err(|e| NnError::Usage(format!("cannot start the {what} thread: {e}")))?;
        Ok(Feed {
            rx,
            stop,
            thread: Some(thread),
            what,
        })
    }

    /// What has arrived since the last call, in order; never blocks.
    pub fn poll(&self) -> Vec<LiveEvent> {
        self.rx.try_iter().collect()
    }

    /// Waits up to `timeout` for the next event (for tests and tools, not the render loop).
    pub fn wait(&self, timeout: Duration) -> Option<LiveEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Whether the thread has ended (training done or failed; a watch ends only when dropped).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!(what = self.what, "the background thread panicked");
        }
    }
}

/// Watches `dir` for new checkpoint files of `model` (see the module documentation for the
/// protocol), every `interval`. Files already there are taken first, except those that are
/// already checkpoints of the model (the same file).
pub fn watch(model: &Model, dir: &Path, interval: Duration) -> Result<Feed> {
    let meta = std::fs::metadata(dir).map_err(|e| NnError::io(dir, e))?;
    if !meta.is_dir() {
        return Err(NnError::format(dir, "--watch needs a folder"));
    }
    let model = model.clone();
    let dir = dir.to_path_buf();
    let known: HashSet<PathBuf> = model
        .checkpoints
        .iter()
        .filter_map(|c| std::fs::canonicalize(&c.weights).ok())
        .collect();
    Feed::spawn("watch", move |tx, stop| {
        let mut watcher = Watcher {
            model,
            dir,
            known,
            seen: HashSet::new(),
            skipped: BTreeMap::new(),
        };
        while !stop.load(Ordering::Relaxed) {
            for event in watcher.scan() {
                if tx.send(event).is_err() {
                    return;
                }
            }
            std::thread::sleep(interval);
        }
    })
}

/// A file's identity for retrying a skipped one: its size and modification time.
type Signature = (u64, Option<std::time::SystemTime>);

struct Watcher {
    model: Model,
    dir: PathBuf,
    /// The model's own checkpoint files (canonical paths), not appended again.
    known: HashSet<PathBuf>,
    /// Names appended (or known).
    seen: HashSet<OsString>,
    /// Names skipped, with the signature they had then.
    skipped: BTreeMap<OsString, Signature>,
}

impl Watcher {
    /// One look at the folder: the new checkpoints and skipped files, in name order.
    fn scan(&mut self) -> Vec<LiveEvent> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "cannot read the watched folder: {e}");
                return Vec::new();
            }
        };
        let mut new: Vec<(OsString, PathBuf, Signature)> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
            .filter(|e| !self.seen.contains(&e.file_name()))
            .filter_map(|e| {
                let meta = e.metadata().ok().filter(|m| m.is_file())?;
                Some((e.file_name(), e.path(), (meta.len(), meta.modified().ok())))
            })
            .filter(|(name, _, sig)| self.skipped.get(name) != Some(sig))
            .collect();
        new.sort_by(|a, b| a.0.cmp(&b.0));
        let mut events = Vec::new();
        for (name, path, sig) in new {
            if std::fs::canonicalize(&path).is_ok_and(|p| self.known.contains(&p)) {
                self.seen.insert(name);
                continue;
            }
            match LoadedCheckpoint::read(&self.model, &path, None) {
                Ok(c) => {
                    self.skipped.remove(&name);
                    self.seen.insert(name);
                    events.push(LiveEvent::Checkpoint(c));
                }
                Err(e) => {
                    self.skipped.insert(name, sig);
                    events.push(LiveEvent::Skipped {
                        file: path,
                        error: e.to_string(),
                    });
                }
            }
        }
        events
    }
}

/// Trains `model` from scratch in a background thread (see [`train_live`]), publishing a
/// checkpoint every `cfg.every` steps and at the schedule's points (init, early fractions,
/// epochs). The feed ends with [`LiveEvent::Finished`].
pub fn train(model: &Model, train_set: Samples, heldout: Option<Samples>, cfg: LiveConfig) -> Result<Feed> {
    if cfg.epochs == 0 || cfg.batch == 0 {
        return Err(NnError::Usage(
            "live training needs at least 1 epoch and a batch of at least 1".into(),
        ));
    }
    let model = model.clone();
    Feed::spawn("training", move |tx, stop| {
        let sent = tx.clone();
        let result = train_live(&model, &train_set, heldout.as_ref(), &cfg, &stop, move |c| {
            sent.send(LiveEvent::Checkpoint(c)).is_ok()
        });
        let _ = tx.send(LiveEvent::Finished(result.map(|_| ()).map_err(|e| e.to_string())));
    })
}

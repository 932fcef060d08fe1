//! Checkpoints that arrive while the app runs: a watched folder (`netwalk run --watch`) and live
//! training (`netwalk run --train`), through the library as the app uses them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use netwalk::app::App;
use netwalk::input::InputSnapshot;
use netwalk::nn::live::{self, Feed, LiveEvent, WATCH_INTERVAL};
use netwalk::nn::timeline::{LoadedCheckpoint, Timeline};
use netwalk::nn::train::{LiveConfig, evaluate, save_weights};
use netwalk::nn::{self, Model, Samples, Weights};
use netwalk::scene;

/// Generous: only for things that must happen eventually, never a timing claim.
const PATIENCE: Duration = Duration::from_secs(20);

fn demo() -> Model {
    Model::load(&nn::demo::demo_dir().expect("demo")).expect("demo model")
}

/// The demo on sample 0 with its timeline, as `netwalk run` starts it.
fn demo_app() -> App {
    common::demo_app(0, scene::Stage::default())
}

/// The next event, waiting up to `limit`.
fn next(feed: &Feed, limit: Duration) -> Option<LiveEvent> {
    feed.wait(limit)
}

/// Writes the bytes under a temporary name, then renames: the documented protocol.
fn publish(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

#[test]
fn the_watch_takes_a_new_checkpoint_within_a_second_and_never_a_half_written_one() {
    let model = demo();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read(&model.checkpoints[3].weights).expect("demo checkpoint");
    let feed = live::watch(&model, dir.path(), WATCH_INTERVAL).expect("watch");

    // A file still being written (not yet renamed), and a truncated checkpoint.
    std::fs::write(dir.path().join("b-0002.safetensors.tmp"), &good).expect("write tmp");
    publish(dir.path(), "a-0001.safetensors", &good[..good.len() / 2]);
    match next(&feed, PATIENCE) {
        Some(LiveEvent::Skipped { file, error }) => {
            assert_eq!(file, dir.path().join("a-0001.safetensors"));
            let message = LiveEvent::Skipped { file, error }.message().expect("a message");
            assert!(
                message.contains("a-0001.safetensors") && message.contains("truncated") && !message.contains('\n'),
                "one line naming the file and the problem: {message}"
            );
        }
        other => panic!("expected the truncated file to be skipped, got {other:?}"),
    }
    // The scan that skipped it also saw the .tmp file and left it alone; a few more scans neither
    // read the .tmp nor report the skipped file again.
    assert!(next(&feed, WATCH_INTERVAL * 3).is_none(), "nothing else to report");

    // Renamed into place: taken within a second, with the label from its metadata.
    let renamed = Instant::now();
    std::fs::rename(
        dir.path().join("b-0002.safetensors.tmp"),
        dir.path().join("b-0002.safetensors"),
    )
    .expect("rename");
    let c = match next(&feed, PATIENCE) {
        Some(LiveEvent::Checkpoint(c)) => c,
        other => panic!("expected the renamed checkpoint, got {other:?}"),
    };
    let took = renamed.elapsed();
    assert!(took < Duration::from_secs(1), "picked up after {took:?}");
    assert_eq!(c.info.label, model.checkpoints[3].label);
    assert!(c.info.heldout_accuracy.is_some() && c.info.step.is_some());
    assert_eq!(c.weights.source, dir.path().join("b-0002.safetensors"));

    // A mis-shaped checkpoint is skipped with a message naming the tensor; the watch goes on and
    // takes the next good one, whose label (no metadata) is its file name.
    let mut shapes = model.clone();
    shapes.layers[0].params[0].shape[0] += 1;
    let mut wrong_layers = Weights::load(&model).expect("weights").layers;
    let w0 = wrong_layers[0].weight.as_ref().expect("conv weight").clone();
    wrong_layers[0].weight =
        Some(candle_core::Tensor::cat(&[&w0, &w0.narrow(0, 0, 1).expect("narrow")], 0).expect("cat"));
    save_weights(
        &shapes,
        &wrong_layers,
        BTreeMap::new(),
        &dir.path().join("c-0003.safetensors"),
    )
    .expect("save");
    save_weights(
        &model,
        &Weights::load(&model).expect("weights").layers,
        BTreeMap::new(),
        &dir.path().join("d-0004.safetensors"),
    )
    .expect("save");
    match next(&feed, PATIENCE) {
        Some(LiveEvent::Skipped { file, error }) => {
            assert_eq!(file, dir.path().join("c-0003.safetensors"));
            assert!(
                error.contains("c-0003.safetensors") && error.contains("shape"),
                "{error}"
            );
        }
        other => panic!("expected the mis-shaped file to be skipped, got {other:?}"),
    }
    match next(&feed, PATIENCE) {
        Some(LiveEvent::Checkpoint(c)) => assert_eq!(c.info.label, "d-0004"),
        other => panic!("expected the next checkpoint, got {other:?}"),
    }
}

/// Runs frames until `done` (the feed is taken at each).
fn step_until(app: &mut App, frame: &mut InputSnapshot, done: impl Fn(&App) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done(app) {
        assert!(Instant::now() < deadline, "the app never took the checkpoint");
        frame.time += 1.0 / 90.0;
        app.step(frame).expect("step");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn appended_checkpoints_are_followed_at_the_end_and_scrubbable() {
    let model = demo();
    let n = model.checkpoints.len();
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = live::watch(&model, dir.path(), WATCH_INTERVAL).expect("watch");
    let mut app = demo_app().with_feed(feed);
    let mut frame = InputSnapshot::default();

    // Never scrubbed (final weights): the view follows the first new checkpoint.
    publish(
        dir.path(),
        "ckpt-001.safetensors",
        &std::fs::read(&model.checkpoints[0].weights).expect("read"),
    );
    step_until(&mut app, &mut frame, |a| {
        a.timeline.as_ref().is_some_and(|t| t.len() == n + 1)
    });
    let c = app.scene.checkpoint.clone().expect("following");
    assert_eq!((c.index, c.position, c.label.as_str()), (n, n as f32, "init"));
    assert_eq!(
        app.model.checkpoints.len(),
        n + 1,
        "the scene scrubs the grown timeline"
    );
    let init = Weights::load_file(&model, &model.checkpoints[0].weights).expect("init");
    let samples = Samples::load(&model, model.samples.as_ref().expect("samples")).expect("samples");
    let want = nn::forward(&model, &init, samples.image(0)).expect("forward");
    assert_eq!(app.acts.layers, want.layers, "the new checkpoint's weights are shown");

    // Between the old last checkpoint and the new one: their mix.
    let timeline = app.timeline.as_ref().expect("timeline");
    let last = Weights::load_file(&model, &model.checkpoints[n - 1].weights).expect("last");
    let mid = timeline.weights_at(n as f32 - 0.5).expect("weights");
    let lerped = Weights::lerp(&last, &init, 0.5).expect("lerp");
    let input = vec![0.3f32; model.input.shape.elements()];
    assert_eq!(
        nn::forward(&model, &mid, &input).expect("forward").layers,
        nn::forward(&model, &lerped, &input).expect("forward").layers
    );

    // Scrubbed back (the mouse wheel), the view stays where the user put it.
    frame.scrub = -1.5;
    frame.time += 1.0 / 90.0;
    app.step(&frame).expect("step");
    frame.scrub = 0.0;
    let back = app.scene.checkpoint.clone().expect("scrubbed");
    assert!((back.position - (n as f32 - 1.5)).abs() < 1e-5, "{back:?}");
    publish(
        dir.path(),
        "ckpt-002.safetensors",
        &std::fs::read(&model.checkpoints[1].weights).expect("read"),
    );
    step_until(&mut app, &mut frame, |a| {
        a.timeline.as_ref().is_some_and(|t| t.len() == n + 2)
    });
    assert_eq!(app.scene.checkpoint, Some(back), "not at the end: no jump");
    // And the scrub reaches the newest.
    frame.scrub = 5.0;
    frame.time += 1.0 / 90.0;
    app.step(&frame).expect("step");
    assert_eq!(app.scene.checkpoint.as_ref().map(|c| c.position), Some((n + 1) as f32));
}

#[test]
fn live_training_publishes_weights_whose_heldout_accuracy_rises() {
    let model = demo();
    let full = Samples::load(&model, &nn::demo::demo_train_data().expect("train data")).expect("train set");
    let subset = |s: &Samples, n: usize| Samples {
        count: n,
        per_item: s.per_item,
        images: s.images[..n * s.per_item].to_vec(),
        labels: s.labels[..n].to_vec(),
    };
    let heldout_all = Samples::load(&model, model.samples.as_ref().expect("samples")).expect("held-out");
    let heldout = subset(&heldout_all, 500);
    let cfg = LiveConfig {
        epochs: 1,
        seed: 3,
        batch: 32,
        lr: 3e-3,
        every: 10,
    };
    // 1280 samples, 40 steps: the schedule's init, 1/8, 1/4, 1/2 and epoch, and every 10 steps.
    let feed = live::train(&model, subset(&full, 1280), Some(heldout.clone()), cfg).expect("start");
    // Through the app, as `netwalk run --train` does: the timeline starts anew.
    let mut app = demo_app();
    app.clear_timeline().expect("clear");
    assert!(app.timeline.is_none() && app.model.checkpoints.is_empty());
    let mut app = app.with_feed(feed);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut frame = InputSnapshot::default();
    while !(app.feed_finished() && app.take_messages().iter().any(|m| m.contains("finished"))) {
        assert!(Instant::now() < deadline, "training never finished");
        frame.time += 1.0 / 90.0;
        app.step(&frame).expect("step");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = app.timeline.as_ref().expect("a timeline");
    let labels: Vec<&str> = t.info.iter().map(|i| i.label.as_str()).collect();
    assert_eq!(
        labels,
        ["init", "epoch 1/8", "epoch 1/4", "epoch 1/2", "step 30", "epoch 1"]
    );
    let steps: Vec<Option<u64>> = t.info.iter().map(|i| i.step).collect();
    assert_eq!(steps, [0, 5, 10, 20, 30, 40].map(Some));
    // The published weights themselves (not just their metadata) get better on held-out digits.
    let accuracy = |i: usize| {
        let (k, n) = evaluate(&model, &t.weights_at(i as f32).expect("weights"), &heldout).expect("evaluate");
        k as f64 / n as f64
    };
    let (first, last) = (accuracy(0), accuracy(t.len() - 1));
    assert!(first < 0.3 && last > first + 0.3, "held-out accuracy {first} -> {last}");
    for (i, info) in t.info.iter().enumerate() {
        let recorded = info.heldout_accuracy.expect("accuracy recorded") as f64;
        assert!(
            (recorded - accuracy(i)).abs() < 1e-4,
            "checkpoint {i}: {recorded} vs {}",
            accuracy(i)
        );
    }
    assert!(t.info[0].train_loss.is_none() && t.info[1..].iter().all(|i| i.train_loss.is_some()));
    // The view followed training to its end.
    assert_eq!(app.scene.checkpoint.as_ref().map(|c| c.position), Some(t.end()));
}

#[test]
fn a_read_checkpoint_is_checked_against_the_model() {
    let model = demo();
    let mut t = Timeline::empty();
    assert!(t.is_empty());
    let i = t.append_file(&model, &model.checkpoints[2].weights).expect("append");
    assert_eq!((i, t.info[0].label.as_str()), (0, model.checkpoints[2].label.as_str()));
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not a checkpoint").expect("write");
    let err = LoadedCheckpoint::read(&model, &bad, None)
        .expect_err("corrupt")
        .to_string();
    assert!(err.contains("bad.safetensors"), "{err}");
    assert!(t.append_file(&model, &bad).is_err());
    assert_eq!(t.len(), 1, "a bad file adds nothing");
}

#[test]
fn live_training_matches_netwalk_train_for_a_seed() {
    let model = demo();
    let full = Samples::load(&model, &nn::demo::demo_train_data().expect("train data")).expect("train set");
    let n = 320;
    let small = Samples {
        count: n,
        per_item: full.per_item,
        images: full.images[..n * full.per_item].to_vec(),
        labels: full.labels[..n].to_vec(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = nn::train::TrainConfig {
        epochs: 1,
        seed: 9,
        batch: 32,
        lr: 2e-3,
        out: dir.path().to_path_buf(),
    };
    nn::train::train(&model, &small, None, &cfg, |_| {}).expect("train");
    let written = Model::load(dir.path()).expect("trained model");
    let live_cfg = LiveConfig {
        epochs: 1,
        seed: 9,
        batch: 32,
        lr: 2e-3,
        every: 4,
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut published = Vec::new();
    let last = nn::train::train_live(&model, &small, None, &live_cfg, &stop, |c| {
        published.push(c);
        true
    })
    .expect("train live")
    .expect("ran to the end");
    // The schedule's checkpoints (in files) are among the published ones, with the same values.
    let input = vec![0.4f32; model.input.shape.elements()];
    for c in &written.checkpoints {
        let live = published
            .iter()
            .find(|p| p.info.label == c.label)
            .unwrap_or_else(|| panic!("{} published", c.label));
        let file = Weights::load_file(&model, &c.weights).expect("checkpoint");
        assert_eq!(
            nn::forward(&model, &file, &input).expect("forward").layers,
            nn::forward(&model, &live.weights, &input).expect("forward").layers,
            "{}",
            c.label
        );
    }
    let labels: Vec<&str> = published.iter().map(|p| p.info.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "init",
            "epoch 1/8",
            "epoch 1/4",
            "step 4",
            "epoch 1/2",
            "step 8",
            "epoch 1"
        ]
    );
    let final_file = Weights::load(&written).expect("final");
    assert_eq!(
        nn::forward(&model, &final_file, &input).expect("forward").layers,
        nn::forward(&model, &last, &input).expect("forward").layers
    );
    // Asked to stop at the first checkpoint: no more are published, and no final weights.
    let mut count = 0;
    let stopped = nn::train::train_live(&model, &small, None, &live_cfg, &stop, |_| {
        count += 1;
        false
    })
    .expect("train live");
    assert!(stopped.is_none() && count == 1, "{count}");
}

#[test]
fn with_the_worker_the_shown_activations_belong_to_the_shown_weights_and_catch_up() {
    let model = demo();
    let n = model.checkpoints.len();
    let input = {
        let samples = Samples::load(&model, model.samples.as_ref().expect("samples")).expect("samples");
        samples.image(0).to_vec()
    };
    let mut app = demo_app();
    app.start_recompute().expect("worker");
    let mut sync = demo_app();
    // Scrub back a little every frame (the wheel): a new position, so a new run, each frame.
    let mut frame = InputSnapshot {
        scrub: -0.1,
        ..Default::default()
    };
    for _ in 0..30 {
        frame.time += 1.0 / 90.0;
        app.step(&frame).expect("step");
        sync.step(&frame).expect("step");
        // Whatever is shown, while runs are under way, is one run: its weights and activations.
        let shown = nn::forward(&model, &app.weights, &input).expect("forward");
        assert_eq!(app.acts.layers, shown.layers);
    }
    let position = app.scene.checkpoint.as_ref().expect("scrubbed").position;
    assert!((position - ((n - 1) as f32 - 3.0)).abs() < 1e-4, "{position}");
    // Both apps ask for the change marks of the checkpoint they are nearest to; once the worker
    // is done, the worker's app shows what the frame-thread one does.
    let eye = glam::Vec3::new(0.0, 1.6, 0.0);
    let _ = app.frame(eye);
    app.settle().expect("settle");
    assert!(!app.computing());
    let want = app
        .timeline
        .as_ref()
        .expect("timeline")
        .weights_at(position)
        .expect("weights");
    assert_eq!(
        app.acts.layers,
        nn::forward(&model, &want, &input).expect("forward").layers
    );
    assert_eq!(app.acts.layers, sync.acts.layers);
    let (_, overlay) = app.frame(eye);
    let (_, want_overlay) = sync.frame(eye);
    assert!(!want_overlay.glyphs.is_empty());
    assert_eq!(overlay, want_overlay, "the same change marks, panel and pointer");
}

/// A small CNN through the ops real CNNs add (prelu, layer norm, a layer scale, a squeeze-excitation
/// gate, channel shuffle and slice, a transposed conv, pad, bilinear upsample), as written in a
/// model folder.
const OPS_CNN: &str = r#"{
  "format": "netwalk-model/1", "name": "ops cnn", "weights": "weights.safetensors",
  "input": {"name": "image", "shape": [1, 28, 28], "mean": [0.1307], "std": [0.3081]},
  "layers": [
    {"name": "conv1", "op": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1},
    {"name": "prelu1", "op": "prelu"},
    {"name": "ln1", "op": "layernorm"},
    {"name": "scale", "op": "mul", "constant": [8, 1, 1]},
    {"name": "gap", "op": "global_avgpool2d", "inputs": ["prelu1"]},
    {"name": "gate", "op": "sigmoid"},
    {"name": "se", "op": "mul", "inputs": ["scale", "gate"]},
    {"name": "shuffle", "op": "channel_shuffle", "groups": 2},
    {"name": "half", "op": "slice", "start": 0, "end": 4},
    {"name": "pool", "op": "maxpool2d", "kernel": 2},
    {"name": "up", "op": "conv_transpose2d", "out_channels": 4, "kernel": 2, "stride": 2},
    {"name": "relu", "op": "relu"},
    {"name": "padded", "op": "pad", "padding": [1, 1, 1, 1]},
    {"name": "down", "op": "upsample", "size": [8, 8], "mode": "bilinear"},
    {"name": "flatten", "op": "flatten"},
    {"name": "fc", "op": "dense", "out_features": 10}
  ]
}"#;

/// `netwalk train` trains through every new op: the loss falls over ten epochs of 320 digits,
/// and the trained model folder loads and classifies above chance.
#[test]
fn train_runs_through_the_cnn_ops() {
    let full = Samples::load(&demo(), &nn::demo::demo_train_data().expect("train data")).expect("train set");
    let n = 320;
    let small = Samples {
        count: n,
        per_item: full.per_item,
        images: full.images[..n * full.per_item].to_vec(),
        labels: full.labels[..n].to_vec(),
    };
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::write(src.path().join("model.json"), OPS_CNN).unwrap();
    let model = Model::load(src.path()).expect("ops model");
    let out = tempfile::tempdir().expect("tempdir");
    let cfg = nn::train::TrainConfig {
        epochs: 10,
        seed: 4,
        batch: 32,
        lr: 3e-3,
        out: out.path().to_path_buf(),
    };
    let mut losses = Vec::new();
    let weights = nn::train::train(&model, &small, None, &cfg, |e| {
        if let nn::train::TrainEvent::Step { loss, .. } = e {
            losses.push(loss);
        }
    })
    .expect("train");
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (first, last) = (mean(&losses[..5]), mean(&losses[losses.len() - 5..]));
    assert!(last < first * 0.9, "loss {first} -> {last}");
    let trained = Model::load(out.path()).expect("trained model");
    let reloaded = Weights::load(&trained).expect("trained weights");
    let (k, total) = evaluate(&trained, &reloaded, &small).unwrap();
    assert!(k * 10 > total * 2, "accuracy {k}/{total}");
    assert_eq!(evaluate(&model, &weights, &small).unwrap(), (k, total));
}

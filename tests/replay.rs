//! `netwalk replay` end to end: scripted pointing, selecting, grabbing and folding on the bundled
//! demo, the state JSON checked against the library's own layout and the `neuron`/`activations`
//! commands; bad scripts fail with one line naming the file and write nothing.

mod common;

use std::path::Path;

use common::{netwalk_ok as ok, netwalk_run as netwalk};

use glam::Vec3;
use netwalk::nn::{self, Model, weights::SafetensorsFile};
use netwalk::scene::{Scale, Scene, Stage};
use serde_json::{Value, json};

fn demo_scene() -> (Model, Scene) {
    let model = Model::load(&nn::demo::demo_dir().unwrap()).unwrap();
    let scene = Scene::new(&model, Stage::default(), Scale::WalkIn);
    (model, scene)
}

fn v(p: Vec3) -> Value {
    json!([p.x, p.y, p.z])
}

fn aim(t: f32, hand: &str, from: Vec3, at: Vec3) -> Value {
    json!({"t": t, "hand": hand, "aim": {"origin": v(from), "target": v(at)}})
}

fn in_front(scene: &Scene, b: usize, at: Vec3, d: f32) -> Vec3 {
    at + scene.placed(b).unwrap().rotation * Vec3::new(0.02, 0.03, 1.0).normalize() * d
}

fn pixel(scene: &Scene, b: usize, tile: usize, y: usize, x: usize) -> Vec3 {
    let t = &scene.placement(b).unwrap().tiles[tile];
    let (u, w) = ((x as f32 + 0.5) / t.w as f32 - 0.5, 0.5 - (y as f32 + 0.5) / t.h as f32);
    t.world_from_tile.transform_point3(Vec3::new(u, w, 0.0))
}

fn vec3(v: &Value) -> Vec3 {
    let a: Vec<f32> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Vec3::new(a[0], a[1], a[2])
}

fn run_replay(dir: &Path, events: Vec<Value>, extra: &[&str]) -> Value {
    let script = dir.join("script.json");
    std::fs::write(&script, serde_json::to_string(&json!({ "events": events })).unwrap()).unwrap();
    let state = dir.join("state.json");
    let mut args = vec![
        "replay",
        "--script",
        script.to_str().unwrap(),
        "--state-out",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap()
}

const CONV1: usize = 1;
const POOL1: usize = 2;
const CONV2: usize = 3;

#[test]
fn replay_selects_grabs_and_folds_and_writes_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (_, scene) = demo_scene();
    let target = pixel(&scene, CONV1, 5, 3, 20);
    let pool1 = scene.placed(POOL1).unwrap().translation;
    let conv2 = scene.placed(CONV2).unwrap().translation;
    let (from_pool, delta) = (in_front(&scene, POOL1, pool1, 0.5), Vec3::new(-0.2, 0.1, 0.15));
    let events = vec![
        aim(0.0, "right", in_front(&scene, CONV1, target, 0.4), target),
        json!({"t": 0.1, "hand": "right", "select": true}),
        json!({"t": 0.2, "hand": "right", "select": false}),
        aim(0.3, "right", from_pool, pool1),
        json!({"t": 0.5, "hand": "right", "grab": true}),
        aim(1.0, "right", from_pool + delta, pool1 + delta),
        json!({"t": 1.2, "hand": "right", "grab": false}),
        aim(1.3, "right", Vec3::new(0.0, 1.0, 0.0), Vec3::new(0.0, 0.0, 0.0)),
        json!({"t": 2.0, "hand": "left", "aim": {"origin": v(in_front(&scene, CONV2, conv2, 0.4)), "target": v(conv2)}, "fold": true}),
        json!({"t": 2.05, "hand": "left", "fold": false}),
    ];
    let state = run_replay(dir.path(), events, &["--sample", "0", "--fps", "90"]);

    let layers = state["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "image",
            "conv1+relu1",
            "pool1",
            "conv2+relu2",
            "pool2",
            "fc1+relu3",
            "fc2",
            "softmax"
        ]
    );
    let ops: Vec<&str> = layers.iter().map(|l| l["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "input",
            "conv2d",
            "maxpool2d",
            "conv2d",
            "maxpool2d",
            "dense",
            "dense",
            "softmax"
        ]
    );
    for (k, l) in layers.iter().enumerate() {
        assert_eq!(l["layout"], "grid");
        assert_eq!(l["folded"], k == CONV2, "{}", l["name"]);
        assert_eq!(l["hovered"], k == CONV2, "{}", l["name"]);
        let (lo, hi) = (vec3(&l["bounds_min"]), vec3(&l["bounds_max"]));
        assert!(((lo + hi) / 2.0 - vec3(&l["center"])).length() < 1e-5);
        let (want_lo, want_hi) = scene.bounds(k).unwrap();
        match k {
            // Moved by the hand's displacement.
            POOL1 => assert!((lo - (want_lo + delta)).length() < 1e-4 && (hi - (want_hi + delta)).length() < 1e-4),
            // Folded: a single 0.14 m tile.
            CONV2 => assert!((hi.y - lo.y - 0.14).abs() < 1e-4 && hi.y - lo.y < (want_hi.y - want_lo.y) / 3.0),
            _ => assert!(
                (lo - want_lo).length() < 1e-5 && (hi - want_hi).length() < 1e-5,
                "{}",
                l["name"]
            ),
        }
    }
    assert_eq!(state["grabbed"], Value::Null);
    assert_eq!(state["checkpoint"], Value::Null);

    // The selection: conv1's query (as `netwalk neuron` prints it), showing relu1's value.
    let sel = &state["selection"];
    assert_eq!(
        (sel["layer"].as_str(), &sel["index"]),
        (Some("conv1"), &json!([5, 3, 20]))
    );
    let conv: Value = serde_json::from_str(&ok(&[
        "neuron", "--sample", "0", "--layer", "conv1", "--index", "5,3,20",
    ]))
    .unwrap();
    let relu: Value = serde_json::from_str(&ok(&[
        "neuron", "--sample", "0", "--layer", "relu1", "--index", "5,3,20",
    ]))
    .unwrap();
    assert_eq!(sel["pre_activation"], conv["pre_activation"]);
    assert_eq!(sel["bias"], conv["bias"]);
    assert_eq!(sel["input_count"], conv["input_count"]);
    assert_eq!(sel["activation"], relu["activation"]);
    let (ours, theirs) = (sel["inputs"].as_array().unwrap(), conv["inputs"].as_array().unwrap());
    assert_eq!(ours.len(), 9);
    for (a, b) in ours.iter().zip(theirs) {
        for field in ["layer", "index", "weight", "activation"] {
            assert_eq!(a[field], b[field], "{field}");
        }
    }
    // And the value `netwalk activations` writes for relu1.
    let acts = dir.path().join("acts.safetensors");
    ok(&["activations", "--sample", "0", "--out", acts.to_str().unwrap()]);
    let file = SafetensorsFile::open(&acts).unwrap();
    let relu1 = nn::weights::view_to_f32(&file.tensors().unwrap().tensor("relu1").unwrap()).unwrap();
    assert_eq!(
        sel["activation"].as_f64().unwrap() as f32,
        relu1[(5 * 28 + 3) * 28 + 20]
    );
}

#[test]
fn replay_reports_a_block_still_held_and_no_selection() {
    let dir = tempfile::tempdir().unwrap();
    let (_, scene) = demo_scene();
    let pool1 = scene.placed(POOL1).unwrap().translation;
    let from = in_front(&scene, POOL1, pool1, 0.5);
    let events = vec![
        aim(0.0, "right", from, pool1),
        json!({"t": 0.2, "hand": "right", "grab": true}),
        aim(0.4, "right", from + Vec3::Y * 0.3, pool1 + Vec3::Y * 0.3),
    ];
    let state = run_replay(dir.path(), events, &["--fps", "30"]);
    assert_eq!(state["grabbed"], "pool1");
    assert_eq!(state["selection"], Value::Null);
    let center = vec3(&state["layers"][POOL1]["center"]);
    let (lo, hi) = scene.bounds(POOL1).unwrap();
    assert!((center - ((lo + hi) / 2.0 + Vec3::Y * 0.3)).length() < 1e-4, "{center}");
}

#[test]
fn replay_expands_a_block_into_its_steps_and_switches_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (_, scene) = demo_scene();
    let conv1 = scene.placed(CONV1).unwrap().translation;
    let conv2 = scene.placed(CONV2).unwrap().translation;
    let events = vec![
        aim(0.0, "left", in_front(&scene, CONV2, conv2, 0.4), conv2),
        json!({"t": 0.1, "hand": "left", "layout": true}),
        json!({"t": 0.2, "hand": "left", "layout": false}),
        aim(0.3, "right", in_front(&scene, CONV1, conv1, 0.4), conv1),
        json!({"t": 0.4, "hand": "right", "thumbstick": [0.0, -1.0]}),
        json!({"t": 0.5, "hand": "right", "thumbstick": [0.0, 0.0]}),
    ];
    let state = run_replay(dir.path(), events, &[]);
    let layers = state["layers"].as_array().unwrap();
    let row: Vec<(&str, &str, &str)> = layers
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap(),
                l["op"].as_str().unwrap(),
                l["layout"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        &row[..5],
        &[
            ("image", "input", "grid"),
            ("conv1", "conv2d", "grid"),
            ("relu1", "relu", "grid"),
            ("pool1", "maxpool2d", "grid"),
            ("conv2+relu2", "conv2d", "linear"),
        ]
    );
    // Linear: 16 tiles of 0.14 m in one row, 20 % gaps.
    let (lo, hi) = (vec3(&layers[4]["bounds_min"]), vec3(&layers[4]["bounds_max"]));
    // The block stands across the path (x or z, whichever way it faces).
    let want = 16.0 * 0.14 * 1.2 - 0.14 * 0.2;
    let width = Vec3::new(hi.x - lo.x, 0.0, hi.z - lo.z).length();
    assert!(
        (width - want).abs() < 1e-3 && (hi.y - lo.y - 0.14).abs() < 1e-4,
        "{lo} {hi}"
    );
}

#[test]
fn choosing_a_sample_on_the_tray_reruns_the_network_and_the_selection() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut scene) = demo_scene();
    scene.set_sample_tray(10);
    let tray3 = netwalk::scene::scene_draw(&scene).tray[3]
        .stage_from_tile
        .transform_point3(Vec3::ZERO);
    let target = pixel(&scene, CONV1, 5, 3, 20);
    let events = vec![
        aim(0.0, "right", in_front(&scene, CONV1, target, 0.4), target),
        json!({"t": 0.1, "hand": "right", "select": true}),
        json!({"t": 0.2, "hand": "right", "select": false}),
        aim(0.3, "left", in_front(&scene, 0, tray3, 0.3), tray3),
        json!({"t": 0.4, "hand": "left", "select": true}),
        json!({"t": 0.5, "hand": "left", "select": false}),
    ];
    let state = run_replay(dir.path(), events, &["--sample", "0"]);
    let sel = &state["selection"];
    assert_eq!(sel["index"], json!([5, 3, 20]));
    let conv: Value = serde_json::from_str(&ok(&[
        "neuron", "--sample", "3", "--layer", "conv1", "--index", "5,3,20",
    ]))
    .unwrap();
    let relu: Value = serde_json::from_str(&ok(&[
        "neuron", "--sample", "3", "--layer", "relu1", "--index", "5,3,20",
    ]))
    .unwrap();
    assert_eq!(sel["pre_activation"], conv["pre_activation"]);
    assert_eq!(sel["activation"], relu["activation"]);
    assert_eq!(sel["inputs"][0]["activation"], conv["inputs"][0]["activation"]);
    let zero: Value = serde_json::from_str(&ok(&[
        "neuron", "--sample", "0", "--layer", "conv1", "--index", "5,3,20",
    ]))
    .unwrap();
    assert_ne!(
        sel["pre_activation"], zero["pre_activation"],
        "sample 3 differs from sample 0 here"
    );
}

#[test]
fn drawing_on_the_input_reruns_the_network_on_the_drawing() {
    let dir = tempfile::tempdir().unwrap();
    let (model, scene) = demo_scene();
    let center = scene.placed(0).unwrap().translation;
    let px = |y, x| pixel(&scene, 0, 0, y, x);
    let cube = scene.placement(6).unwrap().neurons[3].center;
    let events = vec![
        aim(0.0, "right", in_front(&scene, 0, center, 0.4), center),
        json!({"t": 0.1, "hand": "right", "layout": true}),
        json!({"t": 0.15, "hand": "right", "layout": false}),
        json!({"t": 0.2, "hand": "right", "fold": true}),
        json!({"t": 0.25, "hand": "right", "fold": false}),
        aim(0.3, "right", in_front(&scene, 0, px(8, 14), 0.4), px(8, 14)),
        json!({"t": 0.35, "hand": "right", "select": true}),
        aim(0.4, "right", in_front(&scene, 0, px(14, 14), 0.4), px(14, 14)),
        aim(0.45, "right", in_front(&scene, 0, px(20, 14), 0.4), px(20, 14)),
        json!({"t": 0.5, "hand": "right", "select": false}),
        aim(0.6, "right", in_front(&scene, 6, cube, 0.3), cube),
        json!({"t": 0.7, "hand": "right", "select": true}),
        json!({"t": 0.75, "hand": "right", "select": false}),
    ];
    let state = run_replay(dir.path(), events, &[]);
    assert_eq!(
        (state["selection"]["layer"].as_str(), &state["selection"]["index"]),
        (Some("fc2"), &json!([3]))
    );
    // Three 3×3 dabs down column 14: rows 7..=9, 13..=15, 19..=21, columns 13..=15.
    let raw: Vec<f32> = (0..28 * 28)
        .map(|i| {
            let (y, x) = (i / 28, i % 28);
            let row = (7..=9).contains(&y) || (13..=15).contains(&y) || (19..=21).contains(&y);
            if row && (13..=15).contains(&x) { 1.0 } else { 0.0 }
        })
        .collect();
    let weights = nn::Weights::load(&model).unwrap();
    let acts = nn::forward(&model, &weights, &raw).unwrap();
    let fc2 = model.layer_index("fc2").unwrap();
    assert_eq!(
        state["selection"]["activation"].as_f64().unwrap() as f32,
        acts.layers[fc2][3]
    );
}

#[test]
fn bad_scripts_fail_with_one_line_naming_the_file_and_write_no_state() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "malformed.json",
            r#"{"events": [ {"t": 0, "hand": "right", "#,
            "not valid JSON",
        ),
        (
            "types.json",
            r#"{"events": [{"t": 0, "hand": "right", "select": "yes"}]}"#,
            "event 0: field `select`",
        ),
        (
            "hand.json",
            r#"{"events": [{"t": 0, "hand": "third"}]}"#,
            "event 0: field `hand`",
        ),
        (
            "negative.json",
            r#"{"events": [{"t": -0.5, "hand": "left"}]}"#,
            "event 0: field `t`",
        ),
        (
            "order.json",
            r#"{"events": [{"t": 1, "hand": "left"}, {"t": 2, "hand": "left"}, {"t": 1.5, "hand": "left"}]}"#,
            "event 2: field `t`",
        ),
        (
            "aim.json",
            r#"{"events": [{"t": 0, "hand": "left", "aim": {"origin": [0, 1, 0]}}]}"#,
            "missing `target`",
        ),
    ];
    let state = dir.path().join("state.json");
    for (name, text, want) in cases {
        let script = dir.path().join(name);
        std::fs::write(&script, text).unwrap();
        let o = netwalk(&[
            "replay",
            "--script",
            script.to_str().unwrap(),
            "--state-out",
            state.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(script.to_str().unwrap()) && err.contains(want),
            "{name}: {err}"
        );
        assert!(!state.exists(), "{name}: no state is written");
    }
    let missing = dir.path().join("nope.json");
    let o = netwalk(&[
        "replay",
        "--script",
        missing.to_str().unwrap(),
        "--state-out",
        state.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains(missing.to_str().unwrap()) && err.contains("cannot read"),
        "{err}"
    );
    assert!(!state.exists());
    // A good script with a bad sample or frame rate fails too.
    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{"events": []}"#).unwrap();
    for extra in [["--sample", "100000"], ["--fps", "0"], ["--fps", "1e6"]] {
        let mut args = vec![
            "replay",
            "--script",
            good.to_str().unwrap(),
            "--state-out",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(&extra);
        let o = netwalk(&args);
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        assert!(!state.exists());
    }
}

#[test]
fn the_left_thumbstick_scrubs_the_timeline_and_the_network_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (model, scene) = demo_scene();
    let n = model.checkpoints.len();
    assert!(n >= 4, "the demo has a timeline");
    // Point at a conv1 pixel and select it, then scrub back for one second at full deflection:
    // SCRUB_SPEED checkpoints a second, from the last checkpoint.
    let at = pixel(&scene, 1, 2, 10, 12);
    let from = in_front(&scene, 1, at, 0.8);
    let speed = netwalk::scene::systems::SCRUB_SPEED;
    let events = vec![
        aim(0.0, "right", from, at),
        json!({"t": 0.1, "hand": "right", "select": true}),
        json!({"t": 0.2, "hand": "right", "select": false}),
        json!({"t": 0.5, "hand": "left", "thumbstick": [-1.0, 0.0]}),
        json!({"t": 1.5, "hand": "left", "thumbstick": [0.0, 0.0]}),
    ];
    let state = run_replay(dir.path(), events.clone(), &[]);
    let c = &state["checkpoint"];
    let position = c["position"].as_f64().unwrap() as f32;
    let want = (n - 1) as f32 - speed;
    assert!((position - want).abs() < 0.05, "{c}");
    assert_eq!(c["index"], json!(want.round() as usize));
    assert_eq!(c["label"], json!(model.checkpoints[want.round() as usize].label));

    // Scrubbed all the way back: exactly the first checkpoint, and the selected neuron's numbers
    // are `netwalk neuron --checkpoint 0`'s.
    let mut back = events;
    back[4] = json!({"t": 9.0, "hand": "left", "thumbstick": [0.0, 0.0]});
    let state = run_replay(dir.path(), back, &[]);
    assert_eq!(
        state["checkpoint"],
        json!({"index": 0, "label": model.checkpoints[0].label, "position": 0.0})
    );
    let sel = &state["selection"];
    let index: Vec<String> = sel["index"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    let out = ok(&[
        "neuron",
        "--sample",
        "0",
        "--layer",
        sel["layer"].as_str().unwrap(),
        "--index",
        &index.join(","),
        "--checkpoint",
        "0",
    ]);
    let neuron: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sel["pre_activation"], neuron["pre_activation"], "{sel} vs {neuron}");
    assert_eq!(sel["bias"], neuron["bias"]);
}

#[test]
fn a_flick_up_plays_the_timeline_from_the_start_and_a_second_one_pauses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = demo_scene();
    let n = model.checkpoints.len();
    let speed = netwalk::scene::systems::PLAY_SPEED;
    // On the final weights (the end of the timeline), play starts over from the first checkpoint.
    let flick = |t: f32| {
        [
            json!({"t": t, "hand": "left", "thumbstick": [0.0, 1.0]}),
            json!({"t": t + 0.05, "hand": "left", "thumbstick": [0.0, 0.0]}),
        ]
    };
    let mut events: Vec<Value> = flick(0.5).into();
    events.extend(flick(2.5));
    events.push(json!({"t": 4.0, "hand": "right", "select": false}));
    let state = run_replay(dir.path(), events, &[]);
    let position = state["checkpoint"]["position"].as_f64().unwrap() as f32;
    let want = speed * 2.0;
    assert!(want < (n - 1) as f32);
    assert!(
        (position - want).abs() < 0.05,
        "played 2 s then paused for 1.5 s: {position} vs {want}"
    );

    // Played long enough, it stops at the last checkpoint.
    let mut events: Vec<Value> = flick(0.1).into();
    events.push(json!({"t": 0.5 + (n as f32) / speed, "hand": "right", "select": false}));
    let state = run_replay(dir.path(), events, &[]);
    assert_eq!(state["checkpoint"]["position"].as_f64().unwrap() as f32, (n - 1) as f32);

    // Scrubbing by hand while it plays pauses it where the hand leaves it.
    let mut events: Vec<Value> = flick(0.1).into();
    events.push(json!({"t": 1.1, "hand": "left", "thumbstick": [-1.0, 0.0]}));
    events.push(json!({"t": 1.35, "hand": "left", "thumbstick": [0.0, 0.0]}));
    events.push(json!({"t": 3.0, "hand": "right", "select": false}));
    let state = run_replay(dir.path(), events, &[]);
    let position = state["checkpoint"]["position"].as_f64().unwrap() as f32;
    let want = speed * 1.0 - netwalk::scene::systems::SCRUB_SPEED * 0.25;
    assert!((position - want).abs() < 0.05, "{position} vs {want}");
}

#[test]
fn replay_starts_on_the_chosen_checkpoint_and_scrubs_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = demo_scene();
    let label = model.checkpoints[2].label.clone();
    // By index and by label: the same start.
    let idle = vec![json!({"t": 0.5, "hand": "right", "select": false})];
    for key in ["2", label.as_str()] {
        let state = run_replay(dir.path(), idle.clone(), &["--checkpoint", key]);
        assert_eq!(
            state["checkpoint"],
            json!({"index": 2, "label": label, "position": 2.0}),
            "{key}"
        );
    }
    // One wheel step forward from there.
    let mut events = idle;
    events.insert(0, json!({"t": 0.1, "hand": "left", "thumbstick": [1.0, 0.0]}));
    events.insert(1, json!({"t": 0.35, "hand": "left", "thumbstick": [0.0, 0.0]}));
    let state = run_replay(dir.path(), events, &["--checkpoint", "2"]);
    let position = state["checkpoint"]["position"].as_f64().unwrap() as f32;
    let want = 2.0 + netwalk::scene::systems::SCRUB_SPEED * 0.25;
    assert!((position - want).abs() < 0.05, "{position} vs {want}");
    // A checkpoint the model does not have: one line naming it, no state.
    let state = dir.path().join("none.json");
    let script = dir.path().join("script.json");
    let o = netwalk(&[
        "replay",
        "--script",
        script.to_str().unwrap(),
        "--state-out",
        state.to_str().unwrap(),
        "--checkpoint",
        "nope",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("nope"), "{err}");
    assert!(!state.exists());
}

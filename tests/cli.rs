//! The command line end to end on the bundled demo: info, activations, neuron, eval, train.

mod common;

use std::path::Path;

use common::{netwalk_ok as ok, netwalk_run as netwalk};

use netwalk::nn::{self, Model, Weights, weights::SafetensorsFile};

fn demo() -> (Model, Weights) {
    let model = Model::load(&nn::demo::demo_dir().unwrap()).unwrap();
    let weights = Weights::load(&model).unwrap();
    (model, weights)
}

#[test]
fn info_lists_layers_and_totals() {
    let out = ok(&["info"]);
    let (model, _) = demo();
    for l in &model.layers {
        let line = out
            .lines()
            .find(|line| line.starts_with(&format!("{} ", l.name)))
            .unwrap();
        assert!(
            line.contains(l.op.name()) && line.contains(&l.shape.to_string()),
            "{line}"
        );
    }
    // conv1 8*1*9+8, conv2 16*8*9+16, fc1 784*64+64, fc2 64*10+10
    let params = 80 + 1168 + 50240 + 650;
    assert!(
        out.contains(&format!("total: 11 layers, {params} parameters, 22100 activations")),
        "{out}"
    );
    assert!(out.contains("checkpoints ("), "the demo ships a timeline: {out}");
}

#[test]
fn activations_file_matches_forward_pass_for_sample_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("acts.safetensors");
    ok(&["activations", "--sample", "3", "--out", out.to_str().unwrap()]);
    let (model, weights) = demo();
    let samples = nn::Samples::load(&model, model.samples.as_ref().unwrap()).unwrap();
    let acts = nn::forward(&model, &weights, samples.image(3)).unwrap();
    let file = SafetensorsFile::open(&out).unwrap();
    let st = file.tensors().unwrap();
    assert_eq!(st.len(), model.layers.len());
    for (i, l) in model.layers.iter().enumerate() {
        let v = st.tensor(&l.name).unwrap();
        assert_eq!(v.dtype(), safetensors::Dtype::F32);
        assert_eq!(v.shape(), l.shape.dims().as_slice());
        assert_eq!(
            nn::weights::view_to_f32(&v).unwrap(),
            acts.layers[i],
            "layer {}",
            l.name
        );
    }
    // The same digit as a PNG gives the same activations.
    let png_path = dir.path().join("three.png");
    let f = std::fs::File::create(&png_path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), 28, 28);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let pixels: Vec<u8> = samples.image(3).iter().map(|v| (v * 255.0).round() as u8).collect();
    enc.write_header().unwrap().write_image_data(&pixels).unwrap();
    let out2 = dir.path().join("acts2.safetensors");
    ok(&[
        "activations",
        "--input",
        png_path.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&out).unwrap().len(), std::fs::read(&out2).unwrap().len());
    let f2 = SafetensorsFile::open(&out2).unwrap();
    let sm = nn::weights::view_to_f32(&f2.tensors().unwrap().tensor("softmax").unwrap()).unwrap();
    assert_eq!(sm, acts.layers[model.layers.len() - 1]);
    // Predicted class of sample 3 is its label.
    let best = sm.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    assert_eq!(best as u32, samples.labels[3]);
}

#[test]
fn neuron_command_explains_a_conv_neuron() {
    let out = ok(&[
        "neuron", "--sample", "0", "--layer", "conv2", "--index", "2,7,7", "--top", "0",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // An interior conv2 neuron reads 8 channels x 3x3 of pool1.
    assert_eq!(v["input_count"], 72);
    let inputs = v["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 72);
    assert!(inputs.iter().all(|i| i["layer"] == "pool1"));
    let sum: f64 = inputs.iter().map(|i| i["contribution"].as_f64().unwrap()).sum();
    let pre = v["pre_activation"].as_f64().unwrap();
    assert!(
        (sum + v["bias"].as_f64().unwrap() - pre).abs() < 1e-4,
        "{sum} + bias != {pre}"
    );
    let bad = netwalk(&["neuron", "--sample", "0", "--layer", "conv2", "--index", "99,0,0"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("conv2"));
}

#[test]
fn demo_reaches_97_percent_and_checkpoints_form_a_timeline() {
    let out = ok(&["eval"]);
    let (acc, rest) = out
        .trim()
        .strip_prefix("accuracy ")
        .and_then(|s| s.split_once(' '))
        .unwrap_or_else(|| panic!("unexpected: {out}"));
    let acc: f64 = acc.parse().unwrap();
    assert!(acc >= 0.97, "held-out accuracy {acc} below 0.97");
    assert!(rest.ends_with("/1000)"), "{out}");
    let (model, _) = demo();
    assert!(model.checkpoints.len() >= 6);
    assert_eq!(model.checkpoints[0].label, "init");
    let init = ok(&["eval", "--checkpoint", "0"]);
    let init_acc: f64 = init.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(init_acc < 0.3, "untrained weights should be near chance: {init}");
    let by_label = ok(&["eval", "--checkpoint", "epoch 1"]);
    assert!(by_label.starts_with("accuracy "));
    let missing = netwalk(&["eval", "--checkpoint", "epoch 99"]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("epoch 99") && err.contains("model.json"),
        "{err}"
    );
}

/// Train on a small slice twice with one seed: byte-identical results; another seed differs;
/// the timeline's held-out accuracy rises from init.
#[test]
fn train_is_deterministic_and_learns() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = demo();
    let full = nn::Samples::load(&model, &nn::demo::demo_train_data().unwrap()).unwrap();
    let n = 2048;
    let images: Vec<u8> = full.images[..n * 784]
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    let labels: Vec<u8> = full.labels[..n].iter().map(|&l| l as u8).collect();
    let data = dir.path().join("small.safetensors");
    safetensors::serialize_to_file(
        [
            (
                "images",
                safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![n, 1, 28, 28], &images).unwrap(),
            ),
            (
                "labels",
                safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![n], &labels).unwrap(),
            ),
        ],
        None,
        &data,
    )
    .unwrap();
    let run = |seed: &str, out: &Path| {
        ok(&[
            "train",
            "--epochs",
            "1",
            "--seed",
            seed,
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let log = run("5", &a);
    assert!(log.contains("epoch 1/1  loss"), "progress per epoch: {log}");
    run("5", &b);
    run("6", &c);
    let wa = std::fs::read(a.join("weights.safetensors")).unwrap();
    assert_eq!(
        wa,
        std::fs::read(b.join("weights.safetensors")).unwrap(),
        "same seed, same weights"
    );
    assert_ne!(
        wa,
        std::fs::read(c.join("weights.safetensors")).unwrap(),
        "another seed, other weights"
    );
    // The written folder is a complete model with the early, dense timeline.
    let trained = Model::load(&a).unwrap();
    let labels: Vec<&str> = trained.checkpoints.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["init", "epoch 1/8", "epoch 1/4", "epoch 1/2", "epoch 1"]);
    let acc = |i: usize| -> f64 {
        let f = SafetensorsFile::open(&trained.checkpoints[i].weights).unwrap();
        f.metadata().unwrap()["heldout_accuracy"].parse().unwrap()
    };
    assert!(
        acc(4) > 0.6 && acc(0) < 0.3,
        "accuracy init {} -> epoch 1 {}",
        acc(0),
        acc(4)
    );
    let out = ok(&["eval", a.to_str().unwrap()]);
    assert!(out.starts_with("accuracy "));
}

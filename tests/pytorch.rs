//! tools/netwalk_torch.py against netwalk: models exported from PyTorch run layer for layer as
//! PyTorch runs them, the training callback's checkpoints join a watched timeline with what it
//! recorded, and what the format cannot express is refused naming the module.
//!
//! The PyTorch side is tools/test_netwalk_torch.py, run by the Python in `NETWALK_TORCH_PYTHON`
//! (scripts/test.sh sets it up: Debian's python3-torch and safetensors from PyPI), else
//! `python3`. Without torch and safetensors these tests print a skip note, except under CI,
//! where they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::in_ci;
use netwalk::nn::live::{self, LiveEvent, WATCH_INTERVAL};
use netwalk::nn::weights::{SafetensorsFile, view_to_f32};
use netwalk::nn::{self, Model};

/// Generous: for things that must happen eventually (Python imports torch in seconds), never a
/// timing claim.
const PATIENCE: Duration = Duration::from_secs(120);

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

/// The Python with torch and safetensors, or `None` after a skip note (outside CI).
fn torch_python() -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var_os("NETWALK_TORCH_PYTHON").unwrap_or_else(|| "python3".into()));
    let probe = Command::new(&python)
        .args(["-c", "import torch, safetensors.torch; print(torch.__version__)"])
        .output();
    let why = match probe {
        Ok(o) if o.status.success() => return Some(python),
        Ok(o) => String::from_utf8_lossy(&o.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_owned(),
        Err(e) => e.to_string(),
    };
    assert!(
        !in_ci(),
        "CI needs torch and safetensors for {} (scripts/test.sh installs them): {why}",
        python.display()
    );
    eprintln!(
        "SKIPPED (PyTorch test): {} cannot import torch and safetensors ({why}); set NETWALK_TORCH_PYTHON, see docs/pytorch.md",
        python.display()
    );
    None
}

fn check(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn script(python: &Path, args: &[&Path]) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(tools().join("test_netwalk_torch.py")).args(args);
    cmd
}

fn tensor(file: &SafetensorsFile, name: &str) -> (Vec<usize>, Vec<f32>) {
    let st = file.tensors().expect("safetensors");
    let view = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("no tensor `{name}` in {}", file.path.display()));
    (view.shape().to_vec(), view_to_f32(&view).expect("f32 values"))
}

/// The largest difference relative to the largest reference value.
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max) / scale
}

/// Exports the named cases of tools/test_netwalk_torch.py's `layers`, runs each through
/// `netwalk activations` and compares every layer with PyTorch's value; returns the ops seen.
fn compare_cases(python: &Path, dir: &Path, cases: &[&str]) -> std::collections::BTreeSet<&'static str> {
    let mut args = vec![Path::new("layers"), dir];
    args.extend(cases.iter().map(Path::new));
    check(
        "tools/test_netwalk_torch.py layers",
        script(python, &args).output().expect("python"),
    );
    let mut ops = std::collections::BTreeSet::new();
    for &case in cases {
        let case_dir = dir.join(case);
        let model = Model::load(&case_dir).unwrap_or_else(|e| panic!("{case}: netwalk refuses the export: {e}"));
        let out = case_dir.join("acts.safetensors");
        let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
            .args(["activations".as_ref(), case_dir.as_os_str(), "--input".as_ref()])
            .arg(case_dir.join("input.safetensors"))
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run netwalk");
        check("netwalk activations", o);
        let (got, want) = (
            SafetensorsFile::open(&out).expect("activations"),
            SafetensorsFile::open(&case_dir.join("expected.safetensors")).expect("expected"),
        );
        for layer in &model.layers {
            let (shape, g) = tensor(&got, &layer.name);
            let (want_shape, w) = tensor(&want, &layer.name);
            assert_eq!(
                shape, want_shape,
                "{case} layer {}: netwalk's shape vs PyTorch's",
                layer.name
            );
            let err = relative_error(&g, &w);
            assert!(
                err <= 1e-4,
                "{case} layer {} ({}): relative error {err:e}",
                layer.name,
                layer.op.name()
            );
            assert!(
                w.iter().any(|v| *v != 0.0),
                "{case} layer {}: an all-zero reference proves little",
                layer.name
            );
            ops.insert(layer.op.name());
        }
        // The last layer is the model's output, model(x) as PyTorch computes it.
        let last = &model.layers[model.layers.len() - 1];
        let (_, g) = tensor(&got, &last.name);
        let (_, w) = tensor(&want, "__output__");
        assert!(
            relative_error(&g, &w) <= 1e-4,
            "{case}: the last layer `{}` is not model(x)",
            last.name
        );
    }
    ops
}

#[test]
fn exported_models_match_pytorch_layer_for_layer() {
    let Some(python) = torch_python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = compare_cases(
        &python,
        dir.path(),
        &["sequential", "residual", "activations", "pooling"],
    );
    let all = [
        "conv2d",
        "batchnorm2d",
        "relu",
        "sigmoid",
        "tanh",
        "maxpool2d",
        "avgpool2d",
        "global_avgpool2d",
        "flatten",
        "dense",
        "softmax",
        "add",
        "concat",
        "relu6",
        "clip",
        "hardswish",
        "hardsigmoid",
        "silu",
        "gelu",
        "leaky_relu",
        "elu",
        "adaptive_avgpool2d",
    ];
    assert!(all.iter().all(|op| ops.contains(op)), "ops covered: {ops:?}");
    // Both GELU forms were exported and compared.
    let acts = Model::load(&dir.path().join("activations")).expect("activations model");
    let gelus: std::collections::BTreeSet<String> = acts
        .layers
        .iter()
        .filter(|l| l.op.name() == "gelu")
        .map(|l| format!("{:?}", l.op))
        .collect();
    assert_eq!(gelus.len(), 2, "GELU forms: {gelus:?}");
    // The scene draws them: `netwalk snapshot` of the exported model (where there is Vulkan).
    if common::have_vulkan("pytorch snapshot") {
        let png = dir.path().join("activations.png");
        let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
            .args(["snapshot".as_ref(), dir.path().join("activations").as_os_str()])
            .args(["--size", "320x180", "--out"])
            .arg(&png)
            .output()
            .expect("run netwalk");
        check("netwalk snapshot of the activations model", o);
        assert!(png.exists(), "no snapshot written");
    }
}

#[test]
fn checkpoints_from_the_training_callback_join_a_watched_timeline() {
    let Some(python) = torch_python() else { return };
    let root = tempfile::tempdir().expect("tempdir");
    let (model_dir, watch) = (root.path().join("model"), root.path().join("watch"));
    let mut child = script(&python, &[Path::new("train"), &model_dir, &watch])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    // The exporter renames model.json into place last; start watching as soon as it is there,
    // while the callback writes checkpoints (some may already be there: they are taken too).
    let start = Instant::now();
    while !model_dir.join("model.json").exists() {
        if child.try_wait().expect("wait").is_some() {
            check(
                "tools/test_netwalk_torch.py train",
                child.wait_with_output().expect("output"),
            );
            panic!("the script ended without exporting the model");
        }
        assert!(start.elapsed() < PATIENCE, "no model.json after {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let model = Model::load(&model_dir).expect("the exported model loads");
    let feed = live::watch(&model, &watch, WATCH_INTERVAL).expect("watch");
    check(
        "tools/test_netwalk_torch.py train",
        child.wait_with_output().expect("python"),
    );

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("manifest.json")).expect("manifest"))
            .expect("json");
    let written = manifest["checkpoints"].as_array().expect("checkpoints");
    assert!(written.len() >= 3, "the callback wrote {} checkpoints", written.len());
    let mut taken = Vec::new();
    for w in written {
        let c = match feed.wait(PATIENCE) {
            Some(LiveEvent::Checkpoint(c)) => c,
            other => panic!("expected the checkpoint {w}, got {other:?}"),
        };
        assert_eq!(
            c.weights.source,
            watch.join(w["file"].as_str().expect("file")),
            "taken in the order written"
        );
        assert_eq!(c.info.label, w["label"].as_str().expect("label"));
        assert_eq!(c.info.step, w["step"].as_u64(), "{}", c.info.label);
        let close = |a: Option<f32>, b: &serde_json::Value| match (a, b.as_f64()) {
            (Some(a), Some(b)) => (f64::from(a) - b).abs() <= 1e-5 * b.abs().max(1.0),
            (None, None) => true,
            _ => false,
        };
        assert!(
            close(c.info.train_loss, &w["train_loss"]),
            "{}: loss {:?} vs {}",
            c.info.label,
            c.info.train_loss,
            w["train_loss"]
        );
        assert!(
            close(c.info.heldout_accuracy, &w["heldout_accuracy"]),
            "{}: accuracy {:?} vs {}",
            c.info.label,
            c.info.heldout_accuracy,
            w["heldout_accuracy"]
        );
        // steps_per_epoch = 6
        let epoch = c.info.epoch.expect("epoch");
        assert!(
            (epoch - c.info.step.expect("step") as f32 / 6.0).abs() < 1e-3,
            "{}: epoch {epoch}",
            c.info.label
        );
        taken.push(c);
    }
    // Training moved the weights; a loss was recorded after the first step.
    assert!(taken[1..].iter().all(|c| c.info.train_loss.is_some_and(|l| l > 0.0)));
    let input = nn::load_input(&model, &model_dir.join("final.safetensors")).expect("input");
    let outputs: Vec<Vec<f32>> = taken
        .iter()
        .map(|c| {
            nn::forward(&model, &c.weights, &input)
                .expect("forward")
                .layers
                .pop()
                .expect("layers")
        })
        .collect();
    assert_ne!(
        outputs[0],
        outputs[outputs.len() - 1],
        "the checkpoints hold the weights as they changed"
    );
    // The last checkpoint is the trained model: netwalk computes what PyTorch did with it.
    let (_, want) = tensor(
        &SafetensorsFile::open(&model_dir.join("final.safetensors")).expect("final"),
        "output",
    );
    let err = relative_error(&outputs[outputs.len() - 1], &want);
    assert!(
        err <= 1e-4,
        "the last checkpoint's output differs from PyTorch's by {err:e}"
    );

    // The half-written file is never read, not even reported...
    let tmp = watch.join(manifest["tmp"].as_str().expect("tmp name"));
    assert!(tmp.exists() && !tmp.to_string_lossy().ends_with(".safetensors"));
    assert!(feed.wait(WATCH_INTERVAL * 4).is_none(), "the watch reads nothing more");
    // ...while the watch goes on: renamed into place as it is (truncated), it is skipped, named.
    let renamed = tmp.with_extension("");
    std::fs::rename(&tmp, &renamed).expect("rename");
    match feed.wait(PATIENCE) {
        Some(LiveEvent::Skipped { file, error }) => {
            assert_eq!(file, renamed);
            assert!(
                error.contains(&*renamed.file_name().unwrap().to_string_lossy()),
                "{error}"
            );
        }
        other => panic!("expected the truncated file to be skipped, got {other:?}"),
    }

    // The exported held-out samples work with `netwalk eval`.
    let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .arg("eval")
        .arg(&model_dir)
        .output()
        .expect("netwalk");
    let out = check("netwalk eval", o);
    assert!(out.contains("/6)"), "6 samples exported: {out}");
}

#[test]
fn unsupported_modules_are_refused_naming_the_module() {
    let Some(python) = torch_python() else { return };
    let out = check(
        "tools/test_netwalk_torch.py unsupported",
        script(&python, &[Path::new("unsupported")]).output().expect("python"),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 5, "{out}");
    for line in lines {
        let (module, error) = line.split_once('\t').expect("module\\terror");
        assert!(
            error.contains(&format!("`{module}`")),
            "the error names the module `{module}`: {error}"
        );
        assert!(error.contains("not supported"), "{error}");
    }

    // The command line: exit code 1, one line naming the module and the reason, nothing written.
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("out");
    let o = Command::new(&python)
        .arg(tools().join("netwalk_torch.py"))
        .arg("export")
        .arg(format!("{}:bad_model", tools().join("test_netwalk_torch.py").display()))
        .args(["--shape", "3,8,8", "--out"])
        .arg(&out_dir)
        .output()
        .expect("python");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: module `1.1` (MaxPool2d): dilation=2 is not supported"
    );
    assert!(!out_dir.join("model.json").exists());
}

/// Issue 14's patterns (tools/test_netwalk_torch.py's PatternsCNN): an input transform folded into
/// the normalization, PReLU, a squeeze-and-excitation gate, chunk and channel shuffle, a channel
/// slice, sub/div of tensors and by parameters, a ConvNeXt block (channels-last LayerNorm, Linear as
/// a 1x1 conv, layer scale) and a functional LayerNorm2d, layer for layer as PyTorch computes them.
#[test]
fn cnn_patterns_match_pytorch_layer_for_layer() {
    let Some(python) = torch_python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = compare_cases(&python, dir.path(), &["patterns"]);
    let want = [
        "prelu",
        "mul",
        "sub",
        "div",
        "add",
        "slice",
        "concat",
        "channel_shuffle",
        "layernorm",
        "conv2d",
        "gelu",
    ];
    assert!(want.iter().all(|op| ops.contains(op)), "ops covered: {ops:?}");
}

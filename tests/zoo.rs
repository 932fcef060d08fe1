//! torchvision's 18 reference classification models, randomly initialized, through both of
//! netwalk's routes in, compared layer by layer (issue 14, "open any CNN"):
//!
//! - `<model>::exporter`: tools/netwalk_torch.py's folder, `netwalk activations` on it, every layer
//!   against PyTorch's value (float64) within 1e-4 relative, the last layer against model(x);
//! - `<model>::onnx`: `netwalk import model.onnx --out DIR`, `netwalk activations DIR`, every layer
//!   that DIR/onnx-tensors.json maps to an ONNX tensor against onnxruntime's value of it within
//!   1e-4 relative, the last layer against the ONNX output.
//!
//! tools/onnx_zoo.py makes both routes' files in one Python run per model (the two tests of a
//! model share it; its folder goes when both are done), at 64x64 (Inception v3: 80x80, it needs
//! at least 75; the ONNX route of AlexNet and VGG: 224x224, see [`Sizes`]); `full_size::<model>::*` (ignored: `cargo test --test zoo -- --ignored full_size`)
//! run 224x224 (Inception v3: 299x299). The Python is `NETWALK_TORCH_PYTHON` (scripts/test.sh's
//! venv: Debian's torch and torchvision, safetensors, onnx and onnxruntime from PyPI), else
//! `python3`; without torch and torchvision these tests print a skip note (without onnx and
//! onnxruntime the ONNX route's), except under CI, where they fail. `NETWALK_ZOO_OPSET=17` exports
//! the ONNX files at opset 17 (LayerNormalization, HardSwish) instead of 13.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

use common::in_ci;
use netwalk::nn::Model;
use netwalk::nn::weights::{SafetensorsFile, view_to_f32};

/// The largest difference a layer may have, relative to its largest reference value.
const TOLERANCE: f32 = 1e-4;

fn python() -> PathBuf {
    PathBuf::from(std::env::var_os("NETWALK_TORCH_PYTHON").unwrap_or_else(|| "python3".into()))
}

/// Whether the Python imports `modules` (one probe per list and process); `None` says why not.
fn probe(modules: &'static str) -> Result<(), String> {
    static PROBES: OnceLock<Mutex<HashMap<&'static str, Result<(), String>>>> = OnceLock::new();
    let mut probes = PROBES.get_or_init(Default::default).lock().unwrap();
    probes
        .entry(modules)
        .or_insert_with(|| {
            match Command::new(python())
                .args(["-c", &format!("import {modules}")])
                .output()
            {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
                    .to_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
        .clone()
}

/// torch and torchvision are there, or (outside CI) a skip note.
fn have_torch(test: &str) -> bool {
    let Err(why) = probe("torch, torchvision, safetensors.torch") else {
        return true;
    };
    assert!(
        !in_ci(),
        "CI needs torch, torchvision and safetensors for {} (scripts/test.sh installs them): {why}",
        python().display()
    );
    eprintln!(
        "SKIPPED ({test}): {} cannot import torch, torchvision and safetensors ({why}); set NETWALK_TORCH_PYTHON, see docs/pytorch.md",
        python().display()
    );
    false
}

fn have_onnxruntime() -> Result<(), String> {
    probe("onnx, onnxruntime")
}

fn onnx_route_can_run() -> bool {
    have_onnxruntime().is_ok()
}

/// The ONNX route can run: torch's side has onnx and onnxruntime (CI must).
fn onnx_route_ready(test: &str) -> bool {
    if let Err(why) = have_onnxruntime() {
        assert!(
            !in_ci(),
            "CI needs onnx and onnxruntime for {} (scripts/test.sh installs them): {why}",
            python().display()
        );
        eprintln!(
            "SKIPPED ({test}): {} cannot import onnx and onnxruntime ({why})",
            python().display()
        );
        return false;
    }
    true
}

/// The folder of this run's generated files: under the temp dir, named by the process, so that
/// leftovers of runs that ended early can be told apart (and are removed here).
fn cache_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tmp = std::env::temp_dir();
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("netwalk-zoo-")
                    && pid.parse::<u32>().is_ok()
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let root = tmp.join(format!("netwalk-zoo-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("zoo cache folder");
        root
    })
}

/// What the two routes of a model run at: the exporter's input size and the ONNX route's (the
/// same but for AlexNet and VGG, whose adaptive pooling torch.onnx exports only when the map
/// divides into its 6x6 or 7x7 output: 224x224).
#[derive(Clone, Copy)]
struct Sizes {
    exporter: usize,
    onnx: usize,
}

impl Sizes {
    /// How many of the two tests use the files made at `size` (the ONNX route's only where it
    /// can run: else it skips before it asks for them).
    fn users(self, size: usize) -> usize {
        usize::from(self.exporter == size) + usize::from(self.onnx == size && onnx_route_can_run())
    }
}

/// One model's generated files at one size, shared by the tests that use them.
struct Slot {
    made: OnceLock<Result<PathBuf, String>>,
    done: Mutex<usize>,
    users: usize,
}

/// Every model's files, by (model, input size).
type Slots = Mutex<HashMap<(String, usize), Arc<Slot>>>;

/// A test's hold on a model's files: the folder is removed when both of the model's tests let go.
struct Generated {
    slot: Arc<Slot>,
}

impl Generated {
    fn get(model: &str, sizes: Sizes, size: usize) -> Generated {
        static SLOTS: OnceLock<Slots> = OnceLock::new();
        let slot = SLOTS
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .entry((model.to_owned(), size))
            .or_insert_with(|| {
                Arc::new(Slot {
                    made: OnceLock::new(),
                    done: Mutex::new(0),
                    users: sizes.users(size),
                })
            })
            .clone();
        slot.made.get_or_init(|| generate(model, sizes, size));
        Generated { slot }
    }

    fn dir(&self) -> &Path {
        match self.slot.made.get().expect("generated") {
            Ok(dir) => dir,
            Err(e) => panic!("{e}"),
        }
    }
}

impl Drop for Generated {
    fn drop(&mut self) {
        let mut done = self.slot.done.lock().unwrap();
        *done += 1;
        if *done == self.slot.users
            && let Some(Ok(dir)) = self.slot.made.get()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// tools/onnx_zoo.py for one model at one size: the exporter's folder where the exporter route
/// runs at that size, the ONNX side where the ONNX route does (and can run at all).
fn generate(model: &str, sizes: Sizes, size: usize) -> Result<PathBuf, String> {
    let dir = cache_root().join(format!("{model}-{size}"));
    let mut cmd = Command::new(python());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/onnx_zoo.py"))
        .arg(model)
        .args(["--size", &size.to_string(), "--out"])
        .arg(&dir);
    if sizes.onnx != size || !onnx_route_can_run() {
        cmd.arg("--no-onnx");
    }
    if sizes.exporter != size {
        cmd.arg("--no-torch");
    }
    if let Some(opset) = std::env::var_os("NETWALK_ZOO_OPSET") {
        cmd.arg("--opset").arg(opset);
    }
    let o = cmd
        .output()
        .map_err(|e| format!("{model}: cannot run {}: {e}", python().display()))?;
    if !o.status.success() {
        return Err(format!(
            "{model}: tools/onnx_zoo.py failed ({}):\n{}",
            o.status,
            tail(&o.stderr)
        ));
    }
    Ok(dir)
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn netwalk(what: &str, args: &[&std::ffi::OsStr]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args(args)
        .output()
        .expect("run netwalk");
    assert!(
        o.status.success(),
        "{what}: netwalk {} failed ({}):\n{}{}",
        args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        tail(&o.stderr)
    );
    o
}

/// `netwalk activations FOLDER --input INPUT --out OUT`.
fn activations(what: &str, folder: &Path, input: &Path, out: &Path) -> SafetensorsFile {
    netwalk(
        what,
        &[
            "activations".as_ref(),
            folder.as_os_str(),
            "--input".as_ref(),
            input.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    SafetensorsFile::open(out).expect("activations")
}

fn tensor(file: &SafetensorsFile, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
    let st = file.tensors().expect("safetensors");
    let view = st.tensor(name).ok()?;
    Some((view.shape().to_vec(), view_to_f32(&view).expect("f32 values")))
}

/// The largest difference relative to the largest reference value.
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max) / scale
}

/// Layer-by-layer differences above the tolerance, as one message per layer.
#[derive(Default)]
struct Report {
    bad: Vec<String>,
    compared: usize,
    /// The largest relative error and where.
    worst: (f32, String),
}

impl Report {
    fn check(&mut self, what: String, got: &[f32], want: &[f32]) {
        self.compared += 1;
        if got.len() != want.len() {
            self.bad.push(format!(
                "{what}: {} values, the reference has {}",
                got.len(),
                want.len()
            ));
            return;
        }
        let err = relative_error(got, want);
        if err > self.worst.0 {
            self.worst = (err, what.clone());
        }
        if err.is_nan() || err > TOLERANCE {
            self.bad.push(format!("{what}: relative error {err:e}"));
        }
    }

    fn assert_ok(&self, model: &str, route: &str) {
        eprintln!(
            "zoo {model} ({route}): {} layers compared, largest relative error {:e} ({})",
            self.compared, self.worst.0, self.worst.1
        );
        assert!(
            self.bad.is_empty(),
            "{model} ({route}): {} of {} compared layers differ:\n{}",
            self.bad.len(),
            self.compared,
            self.bad.join("\n")
        );
    }
}

/// The exporter's folder against PyTorch.
fn exporter_route(model: &str, sizes: Sizes) {
    let test = format!("zoo {model} exporter route");
    if !have_torch(&test) {
        return;
    }
    let generated = Generated::get(model, sizes, sizes.exporter);
    let dir = generated.dir();
    let folder = dir.join("torch");
    let net = Model::load(&folder).unwrap_or_else(|e| panic!("{model}: netwalk refuses the export: {e}"));
    let acts = activations(
        model,
        &folder,
        &dir.join("input.safetensors"),
        &dir.join("torch-acts.safetensors"),
    );
    let expected = SafetensorsFile::open(&folder.join("expected.safetensors")).expect("expected");
    let mut report = Report::default();
    for layer in &net.layers {
        let (shape, got) = tensor(&acts, &layer.name).expect("netwalk wrote every layer");
        let Some((want_shape, want)) = tensor(&expected, &layer.name) else {
            report.bad.push(format!("layer {}: no PyTorch value", layer.name));
            continue;
        };
        if shape != want_shape {
            report.bad.push(format!(
                "layer {} ({}): shape {shape:?}, PyTorch's {want_shape:?}",
                layer.name,
                layer.op.name()
            ));
            continue;
        }
        report.check(format!("layer {} ({})", layer.name, layer.op.name()), &got, &want);
    }
    let last = &net.layers[net.layers.len() - 1];
    let (_, got) = tensor(&acts, &last.name).expect("last layer");
    let (_, want) = tensor(&expected, "__output__").expect("model(x)");
    assert!(want.iter().any(|v| *v != 0.0), "{model}: model(x) is all zeros");
    report.check(format!("the last layer `{}` against model(x)", last.name), &got, &want);
    report.assert_ok(model, "exporter");
}

/// `netwalk import model.onnx` against onnxruntime.
fn onnx_route(model: &str, sizes: Sizes) {
    let test = format!("zoo {model} ONNX route");
    if !have_torch(&test) || !onnx_route_ready(&test) {
        return;
    }
    let generated = Generated::get(model, sizes, sizes.onnx);
    let dir = generated.dir();
    let folder = dir.join("imported");
    netwalk(
        model,
        &[
            "import".as_ref(),
            dir.join("model.onnx").as_os_str(),
            "--out".as_ref(),
            folder.as_os_str(),
        ],
    );
    let net = Model::load(&folder).unwrap_or_else(|e| panic!("{model}: netwalk cannot load its import: {e}"));
    let map: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(folder.join("onnx-tensors.json")).expect("onnx-tensors.json"))
            .expect("onnx-tensors.json: {layer: ONNX tensor}");
    assert!(!map.is_empty(), "{model}: onnx-tensors.json maps no layer");
    let acts = activations(
        model,
        &folder,
        &dir.join("input.safetensors"),
        &dir.join("onnx-acts.safetensors"),
    );
    let ort = SafetensorsFile::open(&dir.join("ort.safetensors")).expect("ort.safetensors");
    let mut report = Report::default();
    for (layer, onnx_name) in &map {
        let Some((_, got)) = tensor(&acts, layer) else {
            report
                .bad
                .push(format!("onnx-tensors.json names `{layer}`, which is no layer"));
            continue;
        };
        let Some((_, want)) = tensor(&ort, onnx_name) else {
            report
                .bad
                .push(format!("layer {layer}: ONNX tensor `{onnx_name}` has no float value"));
            continue;
        };
        report.check(format!("layer {layer} (ONNX `{onnx_name}`)"), &got, &want);
    }
    let last = &net.layers[net.layers.len() - 1];
    let (_, got) = tensor(&acts, &last.name).expect("last layer");
    let (_, want) = tensor(&ort, "output").expect("the ONNX output");
    report.check(
        format!("the last layer `{}` against the ONNX output", last.name),
        &got,
        &want,
    );
    report.assert_ok(model, "ONNX");
}

/// Each model's two routes at the CI sizes (exporter, ONNX), and (ignored) at full size.
macro_rules! zoo {
    ($($model:ident: $exporter:literal, $onnx:literal, $full:literal;)*) => {
        $(
            mod $model {
                use super::Sizes;
                const SIZES: Sizes = Sizes { exporter: $exporter, onnx: $onnx };
                #[test]
                fn exporter() {
                    super::exporter_route(stringify!($model), SIZES);
                }
                #[test]
                fn onnx() {
                    super::onnx_route(stringify!($model), SIZES);
                }
            }
        )*
        mod full_size {
            $(
                mod $model {
                    use super::super::Sizes;
                    const SIZES: Sizes = Sizes { exporter: $full, onnx: $full };
                    #[test]
                    #[ignore = "full size: minutes on 2 cores"]
                    fn exporter() {
                        super::super::exporter_route(stringify!($model), SIZES);
                    }
                    #[test]
                    #[ignore = "full size: minutes on 2 cores"]
                    fn onnx() {
                        super::super::onnx_route(stringify!($model), SIZES);
                    }
                }
            )*
        }
    };
}

zoo! {
    alexnet: 64, 224, 224;
    vgg11_bn: 64, 224, 224;
    vgg16: 64, 224, 224;
    resnet18: 64, 64, 224;
    resnet50: 64, 64, 224;
    resnext50_32x4d: 64, 64, 224;
    wide_resnet50_2: 64, 64, 224;
    squeezenet1_1: 64, 64, 224;
    googlenet: 64, 64, 224;
    densenet121: 64, 64, 224;
    inception_v3: 80, 80, 299;
    mobilenet_v2: 64, 64, 224;
    mobilenet_v3_small: 64, 64, 224;
    shufflenet_v2_x0_5: 64, 64, 224;
    mnasnet0_5: 64, 64, 224;
    efficientnet_b0: 64, 64, 224;
    regnet_y_400mf: 64, 64, 224;
    convnext_tiny: 64, 64, 224;
}

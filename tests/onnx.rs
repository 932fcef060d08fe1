//! The ONNX reader (issue 14): small ONNX models made by PyTorch's exporter and by hand
//! (tools/make_onnx_fixtures.py), opened directly and through `netwalk import`, every layer that
//! corresponds to an ONNX tensor compared with onnxruntime's value of that tensor; the import flags;
//! checkpoint-timeline folders; broken files refused with one-line errors.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli_fails;
use netwalk::nn::Model;
use netwalk::nn::weights::SafetensorsFile;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn netwalk(args: &[&OsStr], cache: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args(args)
        .env("NETWALK_CACHE", cache)
        .env("NO_COLOR", "1")
        .output()
        .expect("run netwalk")
}

#[track_caller]
fn ok(args: &[&OsStr], cache: &Path) -> String {
    let o = netwalk(args, cache);
    assert!(
        o.status.success(),
        "netwalk {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tensor(file: &SafetensorsFile, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
    let st = file.tensors().expect("safetensors");
    let t = st.tensor(name).ok()?;
    let v = netwalk::nn::weights::view_to_f32(&t).expect("f32");
    Some((t.shape().to_vec(), v))
}

fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max) / scale
}

/// Import `case`, run every layer on its input and compare each layer that has an ONNX tensor with
/// onnxruntime's; returns the model and how many layers were compared.
fn matches_onnxruntime(case: &str, min_compared: usize) -> Model {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(case);
    let src = fixtures().join(format!("{case}.onnx"));
    ok(
        &[
            OsStr::new("import"),
            src.as_os_str(),
            OsStr::new("--out"),
            dir.as_os_str(),
        ],
        tmp.path(),
    );
    let model = Model::load(&dir).unwrap_or_else(|e| panic!("{case}: {e}"));
    let acts = tmp.path().join("acts.safetensors");
    let input = fixtures().join(format!("{case}.input.safetensors"));
    ok(
        &[
            OsStr::new("activations"),
            dir.as_os_str(),
            OsStr::new("--input"),
            input.as_os_str(),
            OsStr::new("--out"),
            acts.as_os_str(),
        ],
        tmp.path(),
    );
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("onnx-tensors.json")).expect("onnx-tensors.json"))
            .expect("json");
    let got = SafetensorsFile::open(&acts).expect("activations");
    let want = SafetensorsFile::open(&fixtures().join(format!("{case}.ort.safetensors"))).expect("reference");
    let mut compared = 0;
    for layer in &model.layers {
        let Some(onnx_name) = map.get(&layer.name).and_then(|v| v.as_str()) else {
            continue;
        };
        let Some((wshape, w)) = tensor(&want, onnx_name) else {
            continue;
        };
        let (gshape, g) = tensor(&got, &layer.name).expect("every layer is in the activations");
        assert_eq!(wshape[0], 1, "{case}/{}: batch", layer.name);
        assert_eq!(
            gshape[..],
            wshape[1..],
            "{case}/{}: netwalk's shape vs onnxruntime's",
            layer.name
        );
        let err = relative_error(&g, &w);
        assert!(
            err <= 1e-4,
            "{case}/{} ({}): relative error {err:e} against `{onnx_name}`",
            layer.name,
            layer.op.name()
        );
        compared += 1;
    }
    let last = &model.layers.last().expect("layers").name;
    assert!(
        map.contains_key(last),
        "{case}: the output layer `{last}` has its ONNX tensor"
    );
    assert!(compared >= min_compared, "{case}: only {compared} layers compared");
    model
}

fn ops(model: &Model) -> Vec<&'static str> {
    model.layers.iter().map(|l| l.op.name()).collect()
}

#[test]
fn a_small_resnet_matches_onnxruntime_with_readable_names() {
    let m = matches_onnxruntime("tiny_resnet", 12);
    let names: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
    for want in ["conv1", "pool", "conv2", "conv3", "avg", "fc"] {
        assert!(names.contains(&want), "layer `{want}` in {names:?}");
    }
    let o = ops(&m);
    assert!(
        o.contains(&"maxpool2d") && o.contains(&"avgpool2d") && o.contains(&"softmax"),
        "{o:?}"
    );
}

#[test]
fn a_tensorflow_style_graph_with_external_data_matches_onnxruntime() {
    // NHWC input, SAME_UPPER padding, a Reshape to [1, -1], Gemm with B untransposed, MatMul + Add.
    let m = matches_onnxruntime("nhwc_gemm", 4);
    // SAME_UPPER pads 0 above and 1 below here: a pad layer before the conv.
    assert_eq!(ops(&m), ["pad", "conv2d", "relu", "flatten", "dense", "tanh", "dense"]);
    assert_eq!(
        m.layers[1].name, "conv.conv2d",
        "tf2onnx-style paths become module paths"
    );
    assert!(
        m.layers[6]
            .params
            .iter()
            .any(|p| p.role == netwalk::nn::model::ParamRole::Bias),
        "MatMul + Add is one dense layer with a bias"
    );
}

#[test]
fn mobile_blocks_match_onnxruntime() {
    // Depthwise conv, SE gate (mul by [C,1,1]), SiLU and Hardswish recognised, ReLU6, PReLU, GELU.
    let m = matches_onnxruntime("mobile", 10);
    let o = ops(&m);
    for want in [
        "hardswish",
        "silu",
        "mul",
        "relu6",
        "prelu",
        "elu",
        "gelu",
        "concat",
        "global_avgpool2d",
    ] {
        assert!(o.contains(&want), "`{want}` in {o:?}");
    }
}

#[test]
fn channel_shuffle_and_chunks_match_onnxruntime() {
    let m = matches_onnxruntime("shuffle", 5);
    let o = ops(&m);
    assert!(o.contains(&"channel_shuffle") && o.contains(&"slice"), "{o:?}");
}

#[test]
fn a_convnext_block_matches_onnxruntime() {
    // The channels-last stretch (permute, LayerNorm, Linear, GELU, Linear, permute) as layernorm
    // and 1x1 convs; layer scale as a mul by a constant.
    let m = matches_onnxruntime("next", 4);
    let o = ops(&m);
    for want in ["layernorm", "conv2d", "gelu", "mul", "add"] {
        assert!(o.contains(&want), "`{want}` in {o:?}");
    }
}

#[test]
fn an_encoder_decoder_matches_onnxruntime() {
    let m = matches_onnxruntime("seg", 5);
    let o = ops(&m);
    for want in ["pad", "conv_transpose2d", "upsample", "concat"] {
        assert!(o.contains(&want), "`{want}` in {o:?}");
    }
}

#[test]
fn an_onnx_file_opens_directly_like_its_import() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = fixtures().join("tiny_resnet.onnx");
    let input = fixtures().join("tiny_resnet.input.safetensors");
    let direct = tmp.path().join("direct.safetensors");
    let args = |model: &Path, out: &Path| {
        vec![
            OsStr::new("activations").to_owned(),
            model.as_os_str().to_owned(),
            OsStr::new("--input").to_owned(),
            input.as_os_str().to_owned(),
            OsStr::new("--out").to_owned(),
            out.as_os_str().to_owned(),
        ]
    };
    let a = args(&src, &direct);
    ok(&a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>(), tmp.path());
    let info = ok(&[OsStr::new("info"), src.as_os_str()], tmp.path());
    assert!(info.contains("conv1") && info.contains("softmax"), "{info}");
    let dir = tmp.path().join("imported");
    ok(
        &[
            OsStr::new("import"),
            src.as_os_str(),
            OsStr::new("--out"),
            dir.as_os_str(),
        ],
        tmp.path(),
    );
    let via = tmp.path().join("via.safetensors");
    let b = args(&dir, &via);
    ok(&b.iter().map(|s| s.as_os_str()).collect::<Vec<_>>(), tmp.path());
    assert_eq!(
        std::fs::read(&direct).unwrap(),
        std::fs::read(&via).unwrap(),
        "same values either way"
    );
    // The cache holds the translation: a second open reads it (and still works).
    let cached: Vec<_> = std::fs::read_dir(tmp.path().join("onnx"))
        .expect("cache folder")
        .collect();
    assert_eq!(cached.len(), 1, "one cached translation");
    ok(&[OsStr::new("info"), src.as_os_str()], tmp.path());
}

#[test]
fn dynamic_dimensions_come_from_input_shape() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = fixtures().join("dynamic.onnx");
    cli_fails(
        &[OsStr::new("info"), src.as_os_str()],
        &["dynamic.onnx", "--input-shape C,H,W", "[3, ?, ?]"],
    );
    let info = ok(
        &[
            OsStr::new("info"),
            src.as_os_str(),
            OsStr::new("--input-shape"),
            OsStr::new("3,20,24"),
        ],
        tmp.path(),
    );
    assert!(info.contains("[3, 20, 24]"), "{info}");
    assert!(
        info.contains("[8, 20, 24]"),
        "the first conv's output follows the given size: {info}"
    );
    cli_fails(
        &[
            OsStr::new("info"),
            src.as_os_str(),
            OsStr::new("--input-shape"),
            OsStr::new("4,20,20"),
        ],
        &["--input-shape", "does not fit"],
    );
}

#[test]
fn import_flags_take_effect() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = fixtures().join("tiny_resnet.onnx");
    let classes = tmp.path().join("classes.txt");
    std::fs::write(&classes, "cat\ndog\nfox\nowl\nbee\n").unwrap();
    let images = tmp.path().join("images");
    for (class, value) in [("bee", 40u8), ("cat", 200u8)] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        let f = std::fs::File::create(images.join(class).join("a.png")).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), 20, 15);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()
            .unwrap()
            .write_image_data(&vec![value; 20 * 15 * 3])
            .unwrap();
    }
    let dir = tmp.path().join("m");
    ok(
        &[
            OsStr::new("import"),
            src.as_os_str(),
            OsStr::new("--out"),
            dir.as_os_str(),
            OsStr::new("--classes"),
            classes.as_os_str(),
            OsStr::new("--mean"),
            OsStr::new("0.5,0.25,0.125"),
            OsStr::new("--std"),
            OsStr::new("0.5"),
            OsStr::new("--inputs"),
            images.as_os_str(),
        ],
        tmp.path(),
    );
    let m = Model::load(&dir).expect("imported model");
    assert_eq!(
        m.classes.as_deref(),
        Some(&["cat", "dog", "fox", "owl", "bee"].map(String::from)[..])
    );
    assert_eq!(m.input.mean, [0.5, 0.25, 0.125]);
    assert_eq!(m.input.std, [0.5, 0.5, 0.5]);
    let s = netwalk::nn::Samples::load(&m, m.samples.as_ref().expect("samples")).expect("samples load");
    assert_eq!(s.count, 2);
    // Subfolders matched to the class names (bee = 4, cat = 0); a uniform image stays uniform.
    assert_eq!(s.labels, [4, 0]);
    assert!((s.image(0)[0] - 40.0 / 255.0).abs() < 1e-6 && (s.image(1)[0] - 200.0 / 255.0).abs() < 1e-6);
    let eval = ok(&[OsStr::new("eval"), dir.as_os_str()], tmp.path());
    assert!(eval.contains("2"), "{eval}");
    cli_fails(
        &[
            OsStr::new("import"),
            src.as_os_str(),
            OsStr::new("--out"),
            tmp.path().join("x").as_os_str(),
            OsStr::new("--mean"),
            OsStr::new("1,2"),
        ],
        &["--mean", "2 values", "3 input channels"],
    );
}

#[test]
fn a_folder_of_onnx_files_is_a_checkpoint_timeline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = fixtures().join("timeline");
    let info = ok(&[OsStr::new("info"), src.as_os_str()], tmp.path());
    assert!(info.contains("checkpoints (2): epoch0, epoch1"), "{info}");
    let input = fixtures().join("tiny_resnet.input.safetensors");
    let mut outs = Vec::new();
    for ckpt in ["epoch0", "epoch1"] {
        let out = tmp.path().join(format!("{ckpt}.safetensors"));
        ok(
            &[
                OsStr::new("activations"),
                src.as_os_str(),
                OsStr::new("--input"),
                input.as_os_str(),
                OsStr::new("--checkpoint"),
                OsStr::new(ckpt),
                OsStr::new("--out"),
                out.as_os_str(),
            ],
            tmp.path(),
        );
        outs.push(std::fs::read(out).unwrap());
    }
    assert_ne!(outs[0], outs[1], "the two checkpoints' weights differ");
}

#[test]
fn broken_onnx_files_are_refused_in_one_line() {
    let bad = fixtures().join("bad");
    let cases: &[(&str, &[&str])] = &[
        ("truncated.onnx", &["truncated.onnx", "not an ONNX model"]),
        ("text.onnx", &["text.onnx", "not an ONNX model"]),
        (
            "missing_initializer.onnx",
            &[
                "missing_initializer.onnx",
                "neither a graph input, an initializer nor an earlier node",
            ],
        ),
        ("cycle.onnx", &["cycle.onnx", "earlier node's output"]),
        (
            "unsupported_op.onnx",
            &[
                "unsupported_op.onnx",
                "Softplus, opset 13",
                "op `Softplus` is not supported",
                "netwalk has relu",
            ],
        ),
        ("absurd_dims.onnx", &["absurd_dims.onnx", "absurd dimensions"]),
        ("old_opset.onnx", &["old_opset.onnx", "opset 6 is not supported"]),
        (
            "missing_external_data.onnx",
            &["missing_external_data.onnx", "external data", "cannot read"],
        ),
    ];
    for (file, needles) in cases {
        let path = bad.join(file);
        cli_fails(&[OsStr::new("info"), path.as_os_str()], needles);
        let out = std::env::temp_dir().join(format!("netwalk-bad-import-{}-{file}", std::process::id()));
        cli_fails(
            &[
                OsStr::new("import"),
                path.as_os_str(),
                OsStr::new("--out"),
                out.as_os_str(),
            ],
            needles,
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// `bench forward X.onnx`: netwalk times its translation, onnxruntime the very file given (not a
/// re-export of the translation), once for the last output and once with every float tensor an
/// output. Needs onnxruntime: the venv of scripts/test.sh (NETWALK_TORCH_PYTHON) is put first on
/// PATH, as a user's activated venv would be; CI must have it.
#[test]
fn bench_forward_compares_with_onnxruntime_on_the_file_itself() {
    let Some(venv_bin) = std::env::var_os("NETWALK_TORCH_PYTHON")
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(Path::to_path_buf))
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI sets NETWALK_TORCH_PYTHON (scripts/test.sh)"
        );
        eprintln!("SKIPPED: NETWALK_TORCH_PYTHON is not set, no onnxruntime to compare with");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = fixtures().join("tiny_resnet.onnx");
    let path = format!("{}:{}", venv_bin.display(), std::env::var("PATH").unwrap_or_default());
    let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args([OsStr::new("bench"), OsStr::new("forward"), src.as_os_str()])
        .args(["--iters", "3"])
        .env("NETWALK_CACHE", tmp.path())
        .env("PATH", path)
        .output()
        .expect("run netwalk");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("netwalk forward tiny_resnet: median "), "{out}");
    let ort: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("onnxruntime median_ms="))
        .collect();
    assert_eq!(ort.len(), 2, "{out}");
    assert!(ort.iter().all(|l| l.contains("source=onnx")), "{out}");
    assert!(
        ort[0].contains("outputs=last") && ort[0].contains("outputs_n=1"),
        "{out}"
    );
    // Every layer: the file has more than a dozen float tensors between input and output.
    let n: usize = ort[1]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("outputs_n="))
        .and_then(|v| v.parse().ok())
        .expect("outputs_n");
    assert!(ort[1].contains("outputs=all") && n > 10, "{out}");
    assert!(out.contains("ratio netwalk / onnxruntime (every layer): "), "{out}");
}

//! ONNX files as untrusted input: deterministic mutations of tests/fixtures/onnx/ through
//! `netwalk::nn::fuzz::fuzz_onnx` (the `load_onnx` fuzz target's code), none of which may panic;
//! every refusal is one line naming the file (checked inside `fuzz_onnx`). Besides byte-level
//! mutations (bit flips, truncation, splices), a third of them decode the protobuf, change one
//! thing a real broken exporter could (an attribute, a dimension, a node's input, its op type, the
//! node order) and encode it again, so that the translation itself, not only the decoder, is hit.

use std::path::Path;
use std::time::Instant;

use candle_onnx::onnx::{ModelProto, attribute_proto::AttributeType};
use netwalk::nn::fuzz::{OnnxStage, fuzz_onnx};
use prost::Message;

use super::fuzz::Rng;

const INTERESTING: &[i64] = &[
    0,
    1,
    2,
    3,
    7,
    -1,
    -2,
    65535,
    1 << 20,
    1 << 31,
    1 << 40,
    i64::MAX,
    i64::MIN,
];
const OPS: &[&str] = &[
    "Conv",
    "Relu",
    "Add",
    "Mul",
    "Reshape",
    "Transpose",
    "Gather",
    "Concat",
    "Slice",
    "Split",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Gemm",
    "MatMul",
    "Flatten",
    "Softmax",
    "Resize",
    "Pad",
    "ReduceMean",
    "Sigmoid",
    "LayerNormalization",
    "ConvTranspose",
    "Squeeze",
    "Unsqueeze",
    "Erf",
    "Pow",
    "Sqrt",
    "Shape",
    "Constant",
    "Loop",
    "",
];

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    ["tiny_resnet", "mobile", "shuffle", "next", "seg"]
        .iter()
        .map(|s| {
            (
                s.to_string(),
                std::fs::read(dir.join(format!("{s}.onnx"))).expect("fixture"),
            )
        })
        .collect()
}

/// Change one thing in a decoded model.
fn mutate_model(rng: &mut Rng, m: &mut ModelProto) {
    let Some(g) = m.graph.as_mut() else { return };
    let nodes = g.node.len();
    match rng.below(7) {
        0 if nodes > 0 => {
            let n = &mut g.node[rng.below(nodes)];
            if n.attribute.is_empty() {
                return;
            }
            let k = rng.below(n.attribute.len());
            let a = &mut n.attribute[k];
            let v = INTERESTING[rng.below(INTERESTING.len())];
            match rng.below(3) {
                0 => {
                    a.i = v;
                    a.r#type = AttributeType::Int as i32;
                }
                1 if !a.ints.is_empty() => {
                    let j = rng.below(a.ints.len());
                    a.ints[j] = v;
                }
                _ => a.f = v as f32,
            }
        }
        1 if !g.initializer.is_empty() => {
            let k = rng.below(g.initializer.len());
            let t = &mut g.initializer[k];
            if t.dims.is_empty() || rng.below(4) == 0 {
                t.dims.push(INTERESTING[rng.below(INTERESTING.len())]);
            } else {
                let j = rng.below(t.dims.len());
                t.dims[j] = INTERESTING[rng.below(INTERESTING.len())];
            }
        }
        2 if nodes > 0 => {
            g.node.remove(rng.below(nodes));
        }
        3 if nodes > 1 => {
            let (i, k) = (rng.below(nodes), rng.below(nodes));
            g.node.swap(i, k);
        }
        4 if nodes > 1 => {
            // Rewire an input to another node's output (possibly a later one: a cycle).
            let from = rng.below(nodes);
            let Some(out) = g.node[from].output.first().cloned() else {
                return;
            };
            let n = &mut g.node[rng.below(nodes)];
            if !n.input.is_empty() {
                let j = rng.below(n.input.len());
                n.input[j] = out;
            }
        }
        5 if nodes > 0 => {
            let k = rng.below(nodes);
            g.node[k].op_type = OPS[rng.below(OPS.len())].to_owned();
        }
        _ => {
            if let Some(d) = g.input.first_mut().and_then(|i| i.r#type.as_mut()) {
                // Drop the input's type: the reader must say so, not guess.
                if rng.below(2) == 0 {
                    d.value = None;
                }
            }
            if let Some(o) = m.opset_import.first_mut() {
                o.version = INTERESTING[rng.below(INTERESTING.len())];
            }
        }
    }
}

fn mutate(rng: &mut Rng, input: &[u8], others: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = input.to_vec();
    if b.is_empty() {
        return b;
    }
    match rng.below(6) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(rng.below(b.len())),
        2 => {
            let other = &others[rng.below(others.len())].1;
            let (from, len) = (rng.below(other.len()), 1 + rng.below(64));
            let chunk = &other[from..(from + len).min(other.len())];
            let at = rng.below(b.len());
            let end = (at + rng.below(2 * chunk.len())).min(b.len());
            b.splice(at..end, chunk.iter().copied());
        }
        _ => match ModelProto::decode(input) {
            Ok(mut m) => {
                mutate_model(rng, &mut m);
                b = m.encode_to_vec();
            }
            Err(_) => {
                let i = rng.below(b.len());
                b[i] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.below(5)];
            }
        },
    }
    b
}

#[test]
fn mutated_onnx_files_never_panic() {
    let seeds = seeds();
    for (name, s) in &seeds {
        assert_eq!(
            fuzz_onnx(s),
            OnnxStage::Forward,
            "seed {name} should translate, load and run"
        );
    }
    let mut rng = Rng(0x6f6e_6e78_0000_0014);
    let mut stages = std::collections::BTreeMap::new();
    let t = Instant::now();
    let n: usize = std::env::var("NETWALK_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    for i in 0..n {
        let (_, seed) = &seeds[rng.below(seeds.len())];
        let mut input = mutate(&mut rng, seed, &seeds);
        if rng.below(3) == 0 {
            input = mutate(&mut rng, &input, &seeds);
        }
        let stage = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fuzz_onnx(&input))) {
            Ok(s) => s,
            Err(_) => {
                let p = std::env::temp_dir().join(format!("netwalk-fuzz_onnx-crash-{i}.onnx"));
                std::fs::write(&p, &input).unwrap();
                panic!("fuzz_onnx panicked on mutation {i}; input saved to {}", p.display());
            }
        };
        *stages.entry(stage).or_insert(0usize) += 1;
    }
    println!("{n} ONNX mutations in {:?}: {stages:?}", t.elapsed());
    for stage in [OnnxStage::Refused, OnnxStage::Forward] {
        assert!(
            stages.get(&stage).copied().unwrap_or(0) >= n / 50,
            "too few inputs reach {stage:?}: {stages:?}"
        );
    }
}

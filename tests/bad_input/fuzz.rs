//! The stable stand-in for `cargo fuzz`: thousands of deterministic mutations of the reference
//! fixtures through `netwalk::nn::fuzz::fuzz_load`, none of which may panic.

use super::fixtures::*;
use std::time::Instant;

/// SplitMix64: a tiny deterministic generator, so a failure reproduces exactly.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values worth trying where a number stands: edges of every limit in the loaders.
const INTERESTING: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "-1",
    "0.5",
    "1e308",
    "null",
    "\"x\"",
    "[]",
    "[0, 0]",
    "[1, 2]",
    "[1048576, 1]",
    "65535",
    "1048576",
    "1048577",
    "268435456",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999",
    "[3, 1, 1]",
    "[100000, 100000, 100000]",
];

/// Replace one run of ASCII digits (a shape, an offset, a kernel size...) in `text` by an
/// interesting value.
fn mutate_number(rng: &mut Rng, bytes: &mut Vec<u8>, range: std::ops::Range<usize>) {
    let digits: Vec<usize> = (range.clone())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == range.start || !bytes[i - 1].is_ascii_digit()))
        .collect();
    if digits.is_empty() {
        return;
    }
    let start = digits[rng.below(digits.len())];
    let mut end = start;
    while end < range.end && bytes[end].is_ascii_digit() {
        end += 1;
    }
    let value = INTERESTING[rng.below(INTERESTING.len())];
    bytes.splice(start..end, value.bytes());
}

/// One mutation of a fuzz input (see `netwalk::nn::fuzz::split`), chosen by `rng`.
fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut b = input.to_vec();
    if b.is_empty() {
        return b; // truncated to nothing: nothing left to mutate
    }
    let (json_len, _) = netwalk::nn::fuzz::split(input);
    let json_len = json_len.len();
    match rng.below(8) {
        // Flip a few bits anywhere.
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        // Truncate.
        1 => b.truncate(rng.below(b.len())),
        // Splice in a chunk of another input.
        2 => {
            let other = &others[rng.below(others.len())];
            let (from, len) = (rng.below(other.len()), 1 + rng.below(64));
            let chunk = &other[from..(from + len).min(other.len())];
            let at = rng.below(b.len());
            let end = (at + rng.below(2 * chunk.len())).min(b.len());
            b.splice(at..end, chunk.iter().copied());
        }
        // Overwrite a byte with a structural character.
        3 => {
            let i = rng.below(b.len());
            const BYTES: &[u8] = b"{}[]\",:0-.9\0\xff";
            b[i] = BYTES[rng.below(BYTES.len())];
        }
        // Change a number in model.json (the length prefix follows the new JSON length).
        4 => {
            let (json, st) = netwalk::nn::fuzz::split(input);
            let mut j = json.to_vec();
            let n = j.len();
            mutate_number(rng, &mut j, 0..n);
            b = netwalk::nn::fuzz::join(&j, st);
        }
        // Change a number in the safetensors header (offsets, shapes).
        5 => {
            let start = 2 + json_len + 8;
            let hlen = b
                .get(2 + json_len..start)
                .map(|h| u64::from_le_bytes(h.try_into().unwrap()) as usize)
                .unwrap_or(0);
            if start + hlen <= b.len() {
                let before = b.len();
                mutate_number(rng, &mut b, start..start + hlen);
                // Keep the header length right half of the time, so the offsets get checked.
                if rng.below(2) == 0 {
                    let new_len = (hlen + b.len() - before) as u64;
                    b[2 + json_len..start].copy_from_slice(&new_len.to_le_bytes());
                }
            }
        }
        // Delete or duplicate a JSON line (drops or repeats a layer).
        6 => {
            let (json, st) = netwalk::nn::fuzz::split(input);
            let text = String::from_utf8_lossy(json);
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                return b;
            }
            let i = rng.below(lines.len());
            if rng.below(2) == 0 {
                lines.remove(i);
            } else {
                lines.insert(i, lines[i]);
            }
            b = netwalk::nn::fuzz::join(lines.join("\n").as_bytes(), st);
        }
        // Shuffle the order of two layer lines (inputs may now come later, or form cycles).
        _ => {
            let (json, st) = netwalk::nn::fuzz::split(input);
            let text = String::from_utf8_lossy(json);
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                return b;
            }
            let (i, k) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(i, k);
            b = netwalk::nn::fuzz::join(lines.join("\n").as_bytes(), st);
        }
    }
    b
}

fn fuzz_seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.json").exists())
        .collect();
    dirs.sort();
    let mut seeds: Vec<Vec<u8>> = dirs
        .iter()
        .map(|d| {
            let json = std::fs::read(d.join("model.json")).unwrap();
            let st = std::fs::read(d.join("weights.safetensors")).unwrap();
            netwalk::nn::fuzz::join(&json, &st)
        })
        .collect();
    seeds.push(netwalk::nn::fuzz::join(
        GOOD_MODEL.as_bytes(),
        &st_bytes(&good_tensors()),
    ));
    // The CNN through every op real CNNs add (broadcasting, shuffles, norms, upsampling, ...).
    let json = include_str!("../fixtures/ops_model.json");
    let model = Model::parse(json, Path::new("<cnn ops>/model.json")).unwrap();
    let weights = nn::synthetic::random_weights(&model, 5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    nn::weights::save_weights(&model, &weights.layers, Default::default(), &path).unwrap();
    seeds.push(netwalk::nn::fuzz::join(json.as_bytes(), &std::fs::read(&path).unwrap()));
    seeds
}

/// Run `f` on `input`; on a panic, save the input for `cargo fuzz run ... <file>` and fail.
fn no_panic<R>(what: &str, i: usize, input: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(input))) {
        Ok(r) => r,
        Err(_) => {
            let p = std::env::temp_dir().join(format!("netwalk-{what}-crash-{i}.bin"));
            std::fs::write(&p, input).unwrap();
            panic!("{what} panicked on mutation {i}; input saved to {}", p.display());
        }
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    use netwalk::nn::fuzz::{Stage, fuzz_load, fuzz_safetensors, split};
    let seeds = fuzz_seeds();
    for (k, s) in seeds.iter().enumerate() {
        assert_eq!(fuzz_load(s), Stage::Forward, "seed {k} should load and run");
    }
    let mut rng = Rng(0x006e_6574_7761_6c6b);
    let mut stages = std::collections::BTreeMap::new();
    let mut tensors = 0;
    let t = Instant::now();
    // NETWALK_MUTATIONS=1000000 for a longer local run.
    let n: usize = std::env::var("NETWALK_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    for i in 0..n {
        let seed = &seeds[rng.below(seeds.len())];
        let mut input = mutate(&mut rng, seed, &seeds);
        // Stack a second mutation a third of the time.
        if rng.below(3) == 0 {
            input = mutate(&mut rng, &input, &seeds);
        }
        let stage = no_panic("fuzz_load", i, &input, fuzz_load);
        *stages.entry(stage).or_insert(0usize) += 1;
        tensors += no_panic("fuzz_safetensors", i, split(&input).1, fuzz_safetensors);
    }
    println!(
        "{n} mutations in {:?}: {stages:?}, {tensors} tensors converted",
        t.elapsed()
    );
    // The mutations must exercise every stage, or this test checks less than it claims.
    for stage in [Stage::Model, Stage::Weights, Stage::Forward] {
        assert!(
            stages.get(&stage).copied().unwrap_or(0) >= n / 50,
            "too few inputs reach {stage:?}: {stages:?}"
        );
    }
}

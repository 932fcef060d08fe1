//! Embeds the bundled demo (model, weights, checkpoints, samples, training digits) into the binary,
//! so `netwalk` works from any directory.

use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_none_or(|x| x != "tmp") {
            out.push(p);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let demo = root.join("assets/models/mnist-cnn");
    let train = root.join("assets/mnist/train.safetensors");
    println!("cargo:rerun-if-changed={}", demo.display());
    println!("cargo:rerun-if-changed={}", demo.join("epochs").display());
    println!("cargo:rerun-if-changed={}", train.display());
    let mut files = Vec::new();
    walk(&demo, &mut files);
    files.sort();
    let mut src =
        String::from("/// (path relative to the demo folder, bytes)\npub static DEMO_FILES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f.strip_prefix(&demo).unwrap().to_string_lossy().replace('\\', "/");
        src += &format!("    ({rel:?}, include_bytes!({:?})),\n", f.display().to_string());
    }
    src += "];\n";
    src += &format!(
        "pub static DEMO_TRAIN: &[u8] = include_bytes!({:?});\n",
        train.display().to_string()
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("demo_files.rs");
    std::fs::write(out, src).unwrap();
}

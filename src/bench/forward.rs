//! `netwalk bench forward`: forward-pass time, against onnxruntime's.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{bench_model, percentile};
use crate::nn;

/// `netwalk bench forward`: the forward pass's time (and onnxruntime's, when installed).
pub fn bench_forward(
    model: Option<PathBuf>,
    synthetic: Option<String>,
    iters: usize,
    no_ort: bool,
    per_layer: bool,
) -> Result<()> {
    let iters = iters.max(1);
    // An .onnx MODEL: onnxruntime runs that very file (not netwalk's translation of it).
    let onnx_file = model.as_ref().filter(|p| p.is_file() && nn::onnx::is_onnx(p)).cloned();
    let (model, weights, name, raw) = bench_model(model, synthetic.as_deref())?;
    let warmup = (iters / 10).clamp(1, 20);
    // Weights are prepared once, as the app does for each checkpoint; the loop times the forward.
    let engine = nn::Engine::new(&model, &weights)?;
    for _ in 0..warmup {
        engine.run(&raw);
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = std::time::Instant::now();
        std::hint::black_box(engine.run(&raw));
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = percentile(&times, 0.5);
    let threads = rayon::current_num_threads();
    println!(
        "netwalk forward {name}: median {median:.3} ms  p99 {:.3} ms  ({iters} iters, {} params, {} activations, {threads} CPU threads)",
        percentile(&times, 0.99),
        model.param_count(),
        model.activation_count()
    );
    if per_layer {
        let mut t = Vec::new();
        for _ in 0..iters {
            engine.run_timed(&raw, Some(&mut t));
        }
        let mut rows: Vec<(usize, f64)> = t.iter().map(|s| s / iters as f64 * 1e3).enumerate().collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("per layer (mean ms, slowest first):");
        for (i, ms) in rows {
            let l = &model.layers[i];
            println!(
                "  {:<28} {:<17} {:<18} {ms:.4}",
                l.name,
                l.op.name(),
                l.shape.to_string()
            );
        }
    }
    if no_ort {
        return Ok(());
    }
    let dir = tempfile_dir()?;
    let json = match (&synthetic, &onnx_file) {
        (Some(name), _) => nn::synthetic::write(name, &model, &weights, &dir)?,
        (None, Some(file)) => file.clone(),
        (None, None) => model.path.clone(),
    };
    let Some(script) = ort_script() else {
        println!("onnxruntime comparison skipped: tools/ort_bench.py not found (run from the checkout)");
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    };
    // ORT computing only the final output (fused, its best case) and every layer (what netwalk does).
    for all in [false, true] {
        let mut cmd = std::process::Command::new("python3");
        // The same number of threads as netwalk's own pool, for a like-for-like comparison.
        cmd.arg(&script).arg(&json).args(["--iters", &iters.to_string()]);
        cmd.args(["--threads", &threads.to_string()]);
        if onnx_file.is_some() {
            let dims: Vec<String> = model.input.shape.dims().iter().map(|d| d.to_string()).collect();
            cmd.args(["--input-shape", &dims.join(",")]);
        }
        if all {
            cmd.arg("--all-layers");
        }
        match cmd.output() {
            Ok(o) if o.status.success() => {
                let line = String::from_utf8_lossy(&o.stdout);
                let ort = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("median_ms="))
                    .and_then(|v| v.parse::<f64>().ok());
                println!("{}", line.trim());
                if let Some(ort) = ort {
                    let what = if all { "every layer" } else { "last layer" };
                    println!("ratio netwalk / onnxruntime ({what}): {:.2}x", median / ort);
                }
            }
            Ok(o) => {
                println!(
                    "onnxruntime comparison skipped: {}",
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or("ort_bench.py failed")
                );
                break;
            }
            Err(e) => {
                println!("onnxruntime comparison skipped: python3 not runnable ({e})");
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// tools/ort_bench.py: beside the current directory, else in the source checkout.
fn ort_script() -> Option<PathBuf> {
    [
        PathBuf::from("tools/ort_bench.py"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/ort_bench.py"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("netwalk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).with_context(|| format!("{}: cannot create", d.display()))?;
    Ok(d)
}

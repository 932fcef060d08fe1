//! `netwalk replay`: the scene driven by an input script (no GPU, no window), its final state as
//! JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{AppInput, build_app};
use crate::input::Script;
use crate::scene;

/// Plays `script` at `fps` on `model` (starting from `input`'s file or sample, and `checkpoint`'s weights when
/// given) and writes the final state to `state_out`.
pub fn replay(
    model: Option<PathBuf>,
    script: &Path,
    state_out: &Path,
    input: &AppInput,
    fps: f32,
    checkpoint: Option<&str>,
) -> Result<()> {
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        bail!("--fps must be a number in (0, 1000], got {fps}");
    }
    // The script first: a bad one fails before any work, and no state file is written.
    let script = Script::load(script)?;
    let mut app = build_app(model, input, checkpoint)?;
    app.play(&script, fps)?;
    let net = scene::Network {
        model: &app.model,
        weights: &app.weights,
        acts: &app.acts,
    };
    let state = scene::replay::state_json(&app.scene, &net);
    let tmp = state_out.with_extension("json.partial");
    std::fs::write(&tmp, serde_json::to_string_pretty(&state)? + "\n")
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, state_out).with_context(|| format!("{}: cannot write", state_out.display()))?;
    println!(
        "wrote the state after {:.2} s of script to {}",
        script.duration(),
        state_out.display()
    );
    Ok(())
}

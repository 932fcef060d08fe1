//! Headless replay's final state as JSON (`netwalk replay`; the app plays the script,
//! `crate::app::App::play`). The state's format is fixed (other tools read it):
//!
//! ```text
//! { "layers": [ {"name", "op", "center": [x,y,z], "bounds_min", "bounds_max", "folded", "layout", "hovered"}, ... ],
//!   "selection": {"layer", "index", "activation", "pre_activation", "bias",
//!                 "inputs": [{"layer", "index", "weight", "activation"}, ...], "input_count"} | null,
//!   "grabbed": "<block name>" | null, "checkpoint": {"index", "label", "position"} | null,
//!   "prediction": {"index", "class": "<name>" | null, "score"} | null }
//! ```
//!
//! `layers` has one entry per displayed block, in order: `name` is the block's name
//! (`conv1+relu1`), `op` its first layer's op (`input` for the input); positions are stage space
//! (meters, +Y up); `center` is the center of the block's current box, `bounds_*` that box's
//! axis-aligned bounds; `folded` is the block's fold state (animations are run to their end
//! before the state is taken); `hovered`: a hand points at it at the end. `selection` is the
//! inspect panel (see `scene::inspect`: `layer` is the head layer, `inputs` its top 10 inputs with
//! `index` in their own layer's shape). `grabbed` names a block a hand holds at the end (right hand
//! first). `prediction` is the last layer's largest output, with its class name (the model's, or
//! `--classes`) when there is one.

use serde_json::{Value, json};

use super::layout::LayoutKind;
use super::network::Network;
use super::world::{Block, Fold, Layout, Scene};
use crate::input::Hand;
use crate::nn::Source;

/// Longest the replay keeps running after the script's end for fold animations to finish.
pub const SETTLE_SECONDS: f32 = 1.0;

fn vec3(v: glam::Vec3) -> Value {
    json!([v.x, v.y, v.z])
}

/// The scene's state in the replay format (see the module documentation).
pub fn state_json(scene: &Scene, net: &Network) -> Value {
    let model = net.model;
    let layers: Vec<Value> = scene
        .blocks
        .iter()
        .enumerate()
        .map(|(k, &e)| {
            let block = scene.world.get::<&Block>(e).expect("block entity");
            let op = match block.spec.source {
                Source::Input => "input",
                Source::Layer(_) => block
                    .spec
                    .layers
                    .first()
                    .map_or("input", |&i| model.layers[i].op.name()),
            };
            let (lo, hi) = scene.bounds(k).unwrap_or_default();
            let layout = match scene.world.get::<&Layout>(e).map(|l| l.0).unwrap_or_default() {
                LayoutKind::Grid => "grid",
                LayoutKind::Linear => "linear",
            };
            json!({
                "name": block.spec.name,
                "op": op,
                "center": vec3((lo + hi) / 2.0),
                "bounds_min": vec3(lo),
                "bounds_max": vec3(hi),
                "folded": scene.world.get::<&Fold>(e).map(|f| f.folded).unwrap_or(false),
                "layout": layout,
                "hovered": scene.hands.iter().any(|h| h.hover.as_ref().is_some_and(|h| h.entity == e)),
            })
        })
        .collect();
    let selection = scene.panel().map(|p| {
        let inputs: Vec<Value> = p
            .inputs
            .iter()
            .map(|i| json!({"layer": i.layer, "index": i.index, "weight": i.weight, "activation": i.activation}))
            .collect();
        json!({
            "layer": p.layer,
            "index": p.neuron.index,
            "activation": p.activation,
            "pre_activation": p.pre_activation,
            "bias": p.bias,
            "inputs": inputs,
            "input_count": p.input_count,
        })
    });
    let grabbed = [Hand::Right, Hand::Left].into_iter().find_map(|h| {
        let (e, _) = scene.grabbed(h)?;
        Some(scene.world.get::<&Block>(e).ok()?.spec.name.clone())
    });
    let checkpoint = scene
        .checkpoint
        .as_ref()
        .map(|c| json!({"index": c.index, "label": c.label, "position": c.position}));
    let prediction = net.acts.layers.last().and_then(|out| {
        let (index, score) = out
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        let class = model.classes.as_ref().and_then(|c| c.get(index));
        Some(json!({"index": index, "class": class, "score": score}))
    });
    json!({"layers": layers, "selection": selection, "grabbed": grabbed, "checkpoint": checkpoint,
        "prediction": prediction})
}

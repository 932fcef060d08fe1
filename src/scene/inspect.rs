//! The inspect panel: one neuron explained from the model's neuron query, and where its inputs
//! and receptive field are shown.
//!
//! A block can show several layers (`conv1+relu1`). Its neuron is explained by the block's first
//! ("head") layer: `layer`, `pre_activation`, `bias` and `inputs` are `nn::query::neuron` on the
//! head (for `conv1+relu1`: the conv's sum, bias and weighted inputs), while `activation` is the
//! value the block shows (after the relu). For a block of one layer both are the same layer.
//! Input pixels have no layer: `layer` is the input's name and there are no inputs.

use std::collections::BTreeSet;

use glam::Mat4;

use super::layout::{BlockSpec, cell_quad, cube_quad};
use super::network::{Network, NeuronRef};
use crate::nn::query::{self, Region};
use crate::nn::{Model, NnError, Op, Shape, Source};

/// How many inputs the panel keeps (largest |weight × activation| first).
pub const PANEL_INPUTS: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct PanelInput {
    /// Name of the model layer (or the input) the value comes from, as `netwalk neuron` names it.
    pub layer: String,
    pub source: Source,
    /// Index in that layer's shape.
    pub index: Vec<usize>,
    pub weight: Option<f32>,
    pub activation: f32,
    /// weight × activation.
    pub contribution: Option<f32>,
    /// Where this input is displayed (the block and its index there), for tracing.
    pub shown: Option<NeuronRef>,
}

/// A conv neuron's kernel as a small image: `channels` maps of `h × w` weights, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub values: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub neuron: NeuronRef,
    /// The head layer's name (see the module documentation), or the input's name.
    pub layer: String,
    /// The head layer's index in the model; `None` for the input.
    pub layer_index: Option<usize>,
    pub activation: f32,
    pub pre_activation: Option<f32>,
    pub bias: Option<f32>,
    /// The top [`PANEL_INPUTS`] inputs.
    pub inputs: Vec<PanelInput>,
    /// How many inputs the neuron has in all.
    pub input_count: usize,
    pub kernel: Option<Kernel>,
    /// The receptive field in each earlier block that has one (block order, nearest last).
    pub receptive_field: Vec<(usize, Region)>,
}

/// Where the values of `source` at `index` are displayed: the block showing the source (or a layer
/// absorbed into it: same index), seen through `flatten` layers (the index is mapped back to the
/// flattened map's shape).
pub fn shown_at(model: &Model, blocks: &[BlockSpec], source: Source, index: &[usize]) -> Option<NeuronRef> {
    let found = blocks
        .iter()
        .position(|b| b.source == source || matches!(source, Source::Layer(i) if b.layers.contains(&i)));
    if let Some(block) = found {
        return Some(NeuronRef {
            block,
            index: index.to_vec(),
        });
    }
    let Source::Layer(i) = source else { return None };
    let layer = &model.layers[i];
    if !matches!(layer.op, Op::Flatten) {
        return None;
    }
    let from = layer.inputs[0];
    let off = layer.shape.offset(index)?;
    shown_at(model, blocks, from, &model.source_shape(from).index_of(off))
}

/// Explains neuron `n` of the blocks `blocks` (see the module documentation).
pub fn explain(net: &Network, blocks: &[BlockSpec], n: &NeuronRef) -> Result<Panel, NnError> {
    let model = net.model;
    let spec = blocks
        .get(n.block)
        .ok_or_else(|| NnError::Usage(format!("no block {}", n.block)))?;
    let off = spec.shape.offset(&n.index).ok_or_else(|| {
        NnError::Usage(format!(
            "neuron {:?} is outside block `{}` {}",
            n.index, spec.name, spec.shape
        ))
    })?;
    let activation = net.acts.source(spec.source)[off];
    let Some(&head) = spec.layers.first() else {
        return Ok(Panel {
            neuron: n.clone(),
            layer: model.input.name.clone(),
            layer_index: None,
            activation,
            pre_activation: None,
            bias: None,
            inputs: Vec::new(),
            input_count: 0,
            kernel: None,
            receptive_field: Vec::new(),
        });
    };
    let info = query::neuron(model, net.weights, net.acts, head, &n.index)?;
    let inputs = info
        .inputs
        .iter()
        .take(PANEL_INPUTS)
        .map(|i| PanelInput {
            layer: model.source_name(i.source).to_owned(),
            source: i.source,
            index: i.index.clone(),
            weight: i.weight,
            activation: i.activation,
            contribution: i.contribution,
            shown: shown_at(model, blocks, i.source, &i.index),
        })
        .collect();
    let regions = query::receptive_field(model, head, &n.index)?;
    let receptive_field = blocks[..n.block]
        .iter()
        .enumerate()
        .filter_map(|(b, spec)| {
            let slot = match spec.source {
                Source::Input => 0,
                Source::Layer(i) => i + 1,
            };
            regions[slot].clone().map(|r| (b, r))
        })
        .collect();
    Ok(Panel {
        neuron: n.clone(),
        layer: model.layers[head].name.clone(),
        layer_index: Some(head),
        activation,
        pre_activation: info.pre_activation,
        bias: info.bias,
        input_count: info.inputs.len(),
        inputs,
        kernel: kernel(net, head, &n.index)?,
        receptive_field,
    })
}

/// The conv kernel that made output channel `index[0]` of layer `li` (of a transposed conv: the
/// taps each input channel of its group spreads into that channel, as stored).
fn kernel(net: &Network, li: usize, index: &[usize]) -> Result<Option<Kernel>, NnError> {
    let layer = &net.model.layers[li];
    let (kh, kw, groups) = match layer.op {
        Op::Conv2d {
            kernel: (kh, kw),
            groups,
            ..
        }
        | Op::ConvTranspose2d {
            kernel: (kh, kw),
            groups,
            ..
        } => (kh, kw, groups),
        _ => return Ok(None),
    };
    let Some(w) = &net.weights.layers[li].weight else {
        return Ok(None);
    };
    let values = w
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| NnError::layer(&net.model.path, &layer.name, e.to_string()))?;
    let cin_g = net.model.source_shape(layer.inputs[0]).channels() / groups;
    let per = kh * kw;
    let picked: Option<Vec<f32>> = if let Op::ConvTranspose2d { .. } = layer.op {
        // Weight [in, out / groups, kh, kw]: one kh x kw slice per input channel of the group.
        let cout_g = layer.shape.channels() / groups;
        let (g, ol) = (index[0] / cout_g, index[0] % cout_g);
        (g * cin_g..(g + 1) * cin_g)
            .map(|ic| values.get((ic * cout_g + ol) * per..(ic * cout_g + ol + 1) * per))
            .collect::<Option<Vec<&[f32]>>>()
            .map(|s| s.concat())
    } else {
        let start = index[0] * cin_g * per;
        values.get(start..start + cin_g * per).map(<[f32]>::to_vec)
    };
    Ok(picked.map(|values| Kernel {
        channels: cin_g,
        h: kh,
        w: kw,
        values,
    }))
}

/// Quads (block space, see [`cell_quad`]) covering `region` of a block's geometry: one per
/// channel tile holding the row/column box, or one per cube.
pub fn region_quads(local: &super::layout::LayerPlacement, region: &Region) -> Vec<Mat4> {
    match region {
        Region::Map { channels, y, x } => {
            // A picture input has one tile for all its channels.
            let tiles: BTreeSet<usize> = channels
                .iter()
                .map(|&c| if local.tiles.len() == 1 { 0 } else { c })
                .collect();
            tiles
                .into_iter()
                .filter_map(|c| local.tiles.get(c))
                .map(|t| cell_quad(t, *y, *x))
                .collect()
        }
        Region::Flat(ids) => local
            .neurons
            .iter()
            .filter(|n| ids.contains(&n.index))
            .map(cube_quad)
            .collect(),
    }
}

/// Quads marking one neuron of a block's geometry (block space).
pub fn neuron_quads(local: &super::layout::LayerPlacement, index: &[usize]) -> Vec<Mat4> {
    match (local.shape, index) {
        (Shape::Chw(..), &[c, y, x]) => {
            let t = if local.tiles.len() == 1 {
                local.tiles.first()
            } else {
                local.tiles.get(c)
            };
            t.map(|t| vec![cell_quad(t, (y, y), (x, x))]).unwrap_or_default()
        }
        (Shape::Flat(_), &[i]) => local.neurons.get(i).map(|n| vec![cube_quad(n)]).unwrap_or_default(),
        _ => Vec::new(),
    }
}

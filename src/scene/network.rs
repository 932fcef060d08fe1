//! The network as the scene sees it: what the systems read about it ([`Network`]) and how a shown
//! neuron is named ([`NeuronRef`]). Shared by the world, the systems and the inspect panel.

use crate::nn::{Activations, Model, Weights};

/// What the systems read about the network: its structure, weights and current activations.
#[derive(Clone, Copy)]
pub struct Network<'a> {
    pub model: &'a Model,
    pub weights: &'a Weights,
    pub acts: &'a Activations,
}

/// A neuron as shown: which block, and its index in the block's shape (`[c, y, x]` or `[i]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NeuronRef {
    pub block: usize,
    pub index: Vec<usize>,
}

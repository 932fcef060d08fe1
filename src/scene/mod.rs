//! The scene: where each part of the network stands in the room. No GPU here.

pub mod layout;

pub use layout::{LayerPlacement, LayoutKind, NeuronCube, TileRect, layout};

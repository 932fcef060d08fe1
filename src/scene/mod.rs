//! The scene: where each part of the network stands in the room, and what the user does with it.
//! No GPU here.

pub mod layout;
pub mod picking;
pub mod room;
pub mod transform;

pub use layout::{LayerPlacement, LayoutKind, NeuronCube, TileRect, layout};
pub use transform::Transform;

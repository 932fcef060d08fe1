//! The scene: where each part of the network stands in the room, and what the user does with it
//! (point, select, grab, fold, switch layout, inspect, trace). No GPU, no XR here.
//!
//! - [`layout`](mod@layout): the model grouped into displayed blocks and each block's own arrangement.
//! - [`room`]: where the blocks stand in the play area (walk-in path or tabletop).
//! - [`world`]: the hecs world ([`Scene`]): block entities, network root, inspect panel.
//! - [`network`]: what the scene reads about the network ([`Network`]) and a shown neuron ([`NeuronRef`]).
//! - [`picking`]: rapier colliders for ray-picking. [`systems`]: the per-frame interaction.
//! - [`inspect`]: the inspect panel's data. [`draw`]: what the renderer reads ([`SceneDraw`]).
//! - [`replay`]: scripted headless runs and their state JSON (`netwalk replay`).

pub mod draw;
pub mod edges;
pub mod inspect;
pub mod layout;
pub mod network;
pub mod picking;
pub mod replay;
pub mod room;
pub mod systems;
pub mod transform;
pub mod world;

pub use draw::{BlockDraw, Highlight, PanelDraw, RayDraw, SceneDraw, TrayDraw, scene_draw};
pub use layout::{LayerPlacement, LayoutKind, NeuronCube, TileRect, layout};
pub use network::{Network, NeuronRef};
pub use room::{Scale, Stage};
pub use transform::Transform;
pub use world::Scene;

//! The model pipeline: format, weights, forward pass, neuron queries, training. No GPU here.

pub mod activation;
pub mod binary;
pub mod data;
pub mod demo;
pub mod describe;
pub mod edges;
pub mod engine;
pub mod error;
pub mod forward;
pub mod fuzz;
mod grouped;
pub mod image;
mod kernels;
mod kernels_extra;
pub mod live;
pub mod model;
pub mod onnx;
mod ops;
mod parse;
pub mod pool;
pub mod query;
mod query_extra;
mod query_types;
pub mod recompute;
pub mod resample;
pub mod synthetic;
pub mod timeline;
pub mod train;
pub mod weights;
mod winograd;

pub use data::{Samples, load_input, load_input_noted};
pub use engine::{Activations, Engine};
pub use error::{NnError, Result};
pub use forward::forward;
pub use model::{Layer, Model, Op, Shape, Source};
pub use weights::Weights;

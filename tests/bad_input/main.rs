//! Bad input, one test per case: every mistake in a model folder (model.json, weights, input images,
//! sample sets) must come back as an `Err` whose message is ONE line naming the file and the
//! layer/tensor involved -- never a panic, never a huge allocation. [`cli`] runs the `netwalk`
//! binary on some of the same cases (exit code 1, one `error: ` line on stderr, no half-written
//! output file), and [`fuzz`] is the stable stand-in for `cargo fuzz`: thousands of deterministic
//! mutations of the reference fixtures through `netwalk::nn::fuzz::fuzz_load`; [`onnx`] does the same
//! for ONNX files through `fuzz_onnx`.
//!
//! One test binary (each would link the whole crate), a module per input it feeds.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod fixtures;
mod fuzz;
mod inputs;
mod model_json;
mod onnx;
mod shapes;
mod weights;

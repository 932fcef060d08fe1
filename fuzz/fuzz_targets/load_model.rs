//! model.json + weights: the input is a 2-byte little-endian JSON length, the JSON, then the
//! safetensors bytes (`netwalk::nn::fuzz::split`). Parses the model, loads the weights and, for
//! small models, runs the forward pass on a zero input. Nothing may panic, and every error must be
//! one line naming its file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netwalk::nn::fuzz::fuzz_load(data);
});

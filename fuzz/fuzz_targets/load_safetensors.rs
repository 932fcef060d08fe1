//! Raw bytes as a safetensors file: header validation, then every tensor converted to f32.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netwalk::nn::fuzz::fuzz_safetensors(data);
});

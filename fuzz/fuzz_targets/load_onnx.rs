//! An ONNX file's bytes through the ONNX reader (`netwalk::nn::fuzz::fuzz_onnx`): decode, fold,
//! translate, load the netwalk model it makes and, for small models, run it on a zero input.
//! Nothing may panic, and every error must be one line naming its file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netwalk::nn::fuzz::fuzz_onnx(data);
});

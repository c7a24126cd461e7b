//! Fuzz target: see `lookalike::fuzzing::onnx`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lookalike::fuzzing::onnx(data));

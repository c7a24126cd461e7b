//! Fuzz target: see `lookalike::fuzzing::safetensors`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lookalike::fuzzing::safetensors(data));

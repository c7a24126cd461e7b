//! Fuzz target: see `lookalike::fuzzing::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lookalike::fuzzing::decode(data));

//! Fuzz target: see `lookalike::fuzzing::tar`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lookalike::fuzzing::tar(data);
});

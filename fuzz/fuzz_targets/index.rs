//! Fuzz target: one file of a real index replaced by the input, then the
//! index opened, validated and searched (`lookalike::fuzzing::IndexTemplate`).
//! The template index is made by scripts/fuzz.sh (LOOKALIKE_FUZZ_TEMPLATE
//! names it); each fuzzing process works in its own scratch folder.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use lookalike::fuzzing::IndexTemplate;

static TEMPLATE: OnceLock<IndexTemplate> = OnceLock::new();

libfuzzer_sys::fuzz_target!(
    init: {
        let dir = std::env::var_os("LOOKALIKE_FUZZ_TEMPLATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("fuzz/work/template"));
        let scratch = std::env::temp_dir().join(format!("lookalike-fuzz-{}", std::process::id()));
        let t = IndexTemplate::new(&dir, &scratch)
            .unwrap_or_else(|e| panic!("index template {}: {e} (run scripts/fuzz.sh)", dir.display()));
        let _ = TEMPLATE.set(t);
    },
    |data: &[u8]| {
        TEMPLATE.get().expect("initialised").run(data).expect("scratch folder writable");
    }
);

//! Regenerates the README's sample table and JSON example from a real run
//! of the bundled sample (the blocks between `<!-- BEGIN name -->` and
//! `<!-- END name -->`); `tests/readme_drift.rs` fails when they differ.
//! Run through `scripts/readme_examples.sh`, or:
//! `cargo run --release --example readme_examples -- target/release/lookalike [--check]`

#[path = "common/readme.rs"]
mod readme;

use std::path::Path;

fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .expect("usage: readme_examples PATH/TO/lookalike [--check]");
    let check = args.next().as_deref() == Some("--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("README.md");
    let run = || -> Result<bool, String> {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let blocks = readme::render(Path::new(&bin), root)?;
        let new = readme::splice(&text, &blocks)?;
        if new == text {
            return Ok(false);
        }
        if !check {
            std::fs::write(&path, new).map_err(|e| e.to_string())?;
        }
        Ok(true)
    };
    match run() {
        Ok(false) => eprintln!("README.md: examples up to date"),
        Ok(true) if check => {
            eprintln!("README drift: run scripts/readme_examples.sh");
            std::process::exit(1);
        }
        Ok(true) => eprintln!("README.md: examples rewritten from a fresh run"),
        Err(e) => {
            eprintln!("readme_examples: {e}");
            std::process::exit(2);
        }
    }
}

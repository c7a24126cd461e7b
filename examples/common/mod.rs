//! Helpers shared by the measurement examples (`#[path]`-included; Cargo
//! does not build a folder without `main.rs` as an example of its own).
#![allow(dead_code)] // each example uses what it needs

use std::path::PathBuf;
use std::time::Instant;

/// Best of 5 runs, in seconds (the dev machine is shared; the minimum is the
/// stable figure).
pub fn best(mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// The files directly in `dir`, sorted by name (runs compare in one order).
pub fn files_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

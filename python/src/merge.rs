//! `lookalike.merge`: combine indexes built in parts into one, as
//! `lookalike merge OUT INDEX...` does (same checks, same messages).

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::{index_error, to_json};

/// Merges the indexes in folders `parts`, in that order, into the index in
/// folder `out` (created if missing); returns what `merge --json` prints,
/// as JSON text. Runs without the GIL.
#[pyfunction]
pub fn merge(py: Python<'_>, out: PathBuf, parts: Vec<PathBuf>) -> PyResult<String> {
    if parts.is_empty() {
        return Err(PyValueError::new_err("parts: no index given"));
    }
    let stats = py
        .detach(|| lookalike::pipeline::merge_indexes(&out, &parts, None))
        .map_err(index_error)?;
    to_json(&stats)
}

//! `lookalike._lookalike`, the native half of the `lookalike` Python
//! package: open an index, check images against it, hash images, build an
//! index — by calling the library the CLI calls, so both read and write the
//! same index and give the same answers. The pure-Python half
//! (`lookalike/__init__.py`) turns paths, bytes, PIL images and numpy
//! arrays into the tagged tuples [`inputs`] reads, and the JSON these
//! functions return into Python objects.
//!
//! Results cross as JSON text written by `lookalike::report::json` — the
//! writer behind `check --json` — so a Python result has exactly the CLI's
//! fields and values (floats rounded to 6 decimals, non-UTF-8 file names as
//! lone surrogates), not a second serialisation that could drift.
//!
//! Every call releases the GIL while it reads, decodes, describes or
//! searches; it takes the GIL back only to call a progress callback.
//!
//! [`parts`] runs a check fanned out over index parts, its messages as bytes.

mod build;
mod inputs;
mod merge;
mod parts;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lookalike::engine::{Engine, GpuOptions};
use lookalike::error::IndexError;
use lookalike::gpu::DeviceChoice;
use lookalike::ingest::{DecodeMode, Limits, BATCH};
use lookalike::pipeline::check::{self, CheckOptions};
use lookalike::report::hashes::HashRow;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rayon::prelude::*;

pyo3::create_exception!(
    lookalike,
    LookalikeError,
    PyException,
    "An error of the lookalike library (a missing or corrupt index, an \
     unreadable image, a failed engine), with the message the CLI prints."
);

/// `e` as a `LookalikeError` in the words the CLI prints after "error: ".
pub(crate) fn lib_error(e: impl Into<anyhow::Error>) -> PyErr {
    LookalikeError::new_err(lookalike::error::chain_text(&e.into()))
}

/// An error opening or writing an index, in the CLI's words (an index
/// path with nothing there as `check -i PATH` words it).
pub(crate) fn index_error(e: IndexError) -> PyErr {
    match e {
        IndexError::Missing(path) => LookalikeError::new_err(format!(
            "no index at {} (`lookalike index TRAINING_DIR --index {}` builds one there)",
            path.display(),
            path.display()
        )),
        e => lib_error(e),
    }
}

/// `value` as the CLI's JSON writer prints it (one line).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    let mut out = Vec::with_capacity(4096);
    lookalike::report::json::write_compact(&mut out, value).map_err(lib_error)?;
    String::from_utf8(out).map_err(lib_error)
}

/// The `device=` argument, as `--device` reads it.
pub(crate) fn device_choice(device: &str) -> PyResult<DeviceChoice> {
    device
        .parse()
        .map_err(|e: String| PyValueError::new_err(format!("device={device:?}: {e}")))
}

/// The engine in `slot`, made on first use (a GPU engine compiles its
/// pipelines then) and kept for the object's later calls.
pub(crate) fn cached_engine(
    py: Python<'_>,
    slot: &Mutex<Option<Arc<dyn Engine>>>,
    device: DeviceChoice,
) -> PyResult<Arc<dyn Engine>> {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = slot.as_ref() {
        return Ok(e.clone());
    }
    let e = choose_engine(py, device)?;
    *slot = Some(e.clone());
    Ok(e)
}

/// The engine for `device`, chosen without the GIL (probing adapters takes
/// a while).
pub(crate) fn choose_engine(py: Python<'_>, device: DeviceChoice) -> PyResult<Arc<dyn Engine>> {
    py.detach(|| lookalike::engine::choose(device, GpuOptions::default()))
        .map_err(lib_error)
}

/// Calls `progress(done, total)` with the GIL and lets a pending signal
/// (Ctrl-C) stop the work: `Err` holds the exception to raise.
pub(crate) fn report_progress(
    progress: Option<&Py<PyAny>>,
    done: usize,
    total: usize,
) -> PyResult<()> {
    Python::attach(|py| {
        py.check_signals()?;
        if let Some(cb) = progress {
            cb.call1(py, (done, total))?;
        }
        Ok(())
    })
}

/// An open index (`lookalike.Index` wraps it). Reads the index as it was
/// when opened; open it again to see what a later `index` run added.
#[pyclass(frozen, module = "lookalike._lookalike")]
struct NativeIndex {
    index: lookalike::index::Index,
    device: DeviceChoice,
    /// Made on the first check (a GPU engine compiles its pipelines then).
    engine: Mutex<Option<Arc<dyn Engine>>>,
}

#[pymethods]
impl NativeIndex {
    /// Opens the index in folder `path`; `device` as `--device` (auto, cpu, gpu).
    #[new]
    #[pyo3(signature = (path, device = "auto"))]
    fn new(py: Python<'_>, path: PathBuf, device: &str) -> PyResult<Self> {
        let device = device_choice(device)?;
        let index = py
            .detach(|| lookalike::index::Index::open(&path))
            .map_err(index_error)?;
        Ok(NativeIndex {
            index,
            device,
            engine: Mutex::new(None),
        })
    }

    /// The index folder, as given.
    #[getter]
    fn path(&self) -> PathBuf {
        self.index.dir().to_path_buf()
    }

    /// Searchable images.
    #[getter]
    fn images(&self) -> usize {
        self.index.live_count()
    }

    /// The decode setting queries follow (`fast:512`, `exact`, ...).
    #[getter]
    fn decode(&self) -> Option<String> {
        self.index.manifest().decode.clone()
    }

    /// The embedding model of the index, `None` for a hash-only index.
    #[getter]
    fn embedding_model(&self) -> Option<String> {
        self.index.embedding_model().map(str::to_string)
    }

    /// Whether the index holds keypoints (verification possible).
    #[getter]
    fn keypoints(&self) -> bool {
        self.index.has_keypoints()
    }

    /// What each image keeps: "full" or "compact" (`index --profile`).
    #[getter]
    fn profile(&self) -> &'static str {
        self.index.profile().name()
    }

    /// The index's content digest as 64 hex digits, as `info` prints it
    /// (see `Index::content_digest`).
    fn content_digest(&self, py: Python<'_>) -> String {
        py.detach(|| self.index.content_digest_hex())
    }

    /// Checks the tagged inputs; returns the `check --json` report as JSON
    /// text. Inputs the caller named that cannot be read raise
    /// `LookalikeError` unless `skip_bad` (then they are listed under
    /// `skipped`, as files found in a folder always are).
    #[pyo3(signature = (items, k = 10, hash_only = false, verify = true, min_score = None, skip_bad = false, progress = None, regions = true))]
    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        py: Python<'_>,
        items: Vec<Bound<'_, PyTuple>>,
        k: usize,
        hash_only: bool,
        verify: bool,
        min_score: Option<f64>,
        skip_bad: bool,
        progress: Option<Py<PyAny>>,
        regions: bool,
    ) -> PyResult<String> {
        if k == 0 {
            return Err(PyValueError::new_err("k must be at least 1"));
        }
        let items = inputs::extract(&items)?;
        inputs::validate(&items)?;
        let mut opts = CheckOptions::for_index(&self.index);
        opts.top_k = k;
        opts.verify = verify;
        opts.regions = regions;
        opts.embed = self.use_embeddings(hash_only)?;
        opts.engine = self.engine(py)?;
        let index = &self.index;
        let progress = progress.as_ref();
        py.detach(|| {
            let (units, bad) = inputs::expand(items);
            let mut skips = inputs::Skips::new(skip_bad);
            for b in bad {
                skips.keep(b)?;
            }
            let total = units.len();
            let mut units = units.into_iter();
            let mut results = Vec::with_capacity(total);
            let mut done = 0;
            loop {
                // One batch at a time: memory stays flat, as in `check DIR`.
                let chunk: Vec<inputs::Unit> = units.by_ref().take(BATCH).collect();
                if chunk.is_empty() {
                    break;
                }
                done += chunk.len();
                let mut good = Vec::with_capacity(chunk.len());
                for r in inputs::read(chunk, opts.mode, &opts.limits) {
                    match r {
                        Ok(g) => good.push(g),
                        Err(b) => skips.keep(b)?,
                    }
                }
                if !good.is_empty() {
                    let r = check::check_decoded(index, &good, &opts).map_err(lib_error)?;
                    results.extend(r.results);
                }
                report_progress(progress, done, total)?;
            }
            // The report's frame (thresholds, index, counts) for all batches.
            let mut report = check::check_decoded(index, &[], &opts).map_err(lib_error)?;
            report.results = results;
            report.skipped = skips.list;
            check::count_verdicts(&mut report);
            if let Some(s) = min_score {
                check::require_score(&mut report, s);
            }
            to_json(&report)
        })
    }
}

impl NativeIndex {
    fn engine(&self, py: Python<'_>) -> PyResult<Arc<dyn Engine>> {
        cached_engine(py, &self.engine, self.device)
    }

    /// Whether queries get embedded, as `check` decides: the index has the
    /// built-in model's embeddings and `hash_only` is off; another model's
    /// embeddings are an error, in the CLI's words.
    fn use_embeddings(&self, hash_only: bool) -> PyResult<bool> {
        let ours = lookalike::descriptors::embedding::model_label();
        match self.index.manifest().embedding.as_deref() {
            None => Ok(false),
            Some(_) if hash_only => Ok(false),
            Some(m) if m == ours => Ok(true),
            Some(m) => Err(LookalikeError::new_err(format!(
                "index {} holds embeddings of {m}, this run embeds with {ours}: queries would \
                 not be comparable (use hash_only=True, or rebuild the index)",
                self.index.dir().display()
            ))),
        }
    }
}

/// Hashes the tagged inputs as `hash --json` does (exact decode unless
/// `fast` or `thumb_side`); returns `{"results": [...], "skipped": [...]}`
/// as JSON text. Named inputs that cannot be read raise, as in `check`.
#[pyfunction]
#[pyo3(signature = (items, fast = false, thumb_side = None, skip_bad = false))]
fn hash(
    py: Python<'_>,
    items: Vec<Bound<'_, PyTuple>>,
    fast: bool,
    thumb_side: Option<u32>,
    skip_bad: bool,
) -> PyResult<String> {
    let items = inputs::extract(&items)?;
    inputs::validate(&items)?;
    let limits = Limits {
        fast_min_side: thumb_side.unwrap_or(lookalike::ingest::decode::FAST_MIN_SIDE),
        ..Limits::default()
    };
    let mode = if fast || thumb_side.is_some() {
        DecodeMode::Fast
    } else {
        DecodeMode::Exact
    };
    py.detach(|| {
        let (units, bad) = inputs::expand(items);
        let mut rows = vec![];
        let mut skips = inputs::Skips::new(skip_bad);
        for b in bad {
            skips.keep(b)?;
        }
        let mut units = units.into_iter();
        loop {
            let chunk: Vec<inputs::Unit> = units.by_ref().take(BATCH).collect();
            if chunk.is_empty() {
                break;
            }
            let read = inputs::read(chunk, mode, &limits);
            let described: Vec<Result<HashRow, inputs::Bad>> = read
                .into_par_iter()
                .map(|r| r.map(|(path, _, rgb)| HashRow::of(&rgb).named(path)))
                .collect();
            for r in described {
                match r {
                    Ok(row) => rows.push(row),
                    Err(b) => skips.keep(b)?,
                }
            }
        }
        to_json(&serde_json::json!({ "results": rows, "skipped": skips.list }))
    })
}

/// The module: `NativeIndex`, `hash`, `build`, `merge`, `LookalikeError`,
/// and the fan-out check's `NativePart`, `describe`, `combine1`, `combine2`,
/// `report`.
#[pymodule]
fn _lookalike(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeIndex>()?;
    m.add_class::<parts::NativePart>()?;
    m.add_function(wrap_pyfunction!(parts::describe, m)?)?;
    m.add_function(wrap_pyfunction!(parts::combine1, m)?)?;
    m.add_function(wrap_pyfunction!(parts::combine2, m)?)?;
    m.add_function(wrap_pyfunction!(parts::report, m)?)?;
    m.add_function(wrap_pyfunction!(hash, m)?)?;
    m.add_function(wrap_pyfunction!(build::build, m)?)?;
    m.add_function(wrap_pyfunction!(merge::merge, m)?)?;
    m.add("LookalikeError", m.py().get_type::<LookalikeError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "EMBEDDING_MODEL",
        lookalike::descriptors::embedding::model_label(),
    )?;
    Ok(())
}

//! `lookalike.build`: build or update an index as `lookalike index` does,
//! with the same defaults, checks and messages, and progress reported to a
//! Python callback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::ProgressBar;
use lookalike::descriptors::Extras;
use lookalike::ingest::source::Inputs;
use lookalike::ingest::{DecodeMode, Limits, BATCH};
use lookalike::pipeline::{update_from, BuildOptions, BuildStats};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::{choose_engine, device_choice, lib_error, to_json, LookalikeError};

/// How often the progress callback is offered the count.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Builds or updates the index in folder `index` from `sources` (folders
/// of images); returns what `index --json` prints, as JSON text. Options
/// are `index`'s flags; `progress(done, total)` is called from this thread
/// with the GIL while the build runs on another without it.
#[pyfunction]
#[pyo3(signature = (index, sources, hash_only = false, keypoints = true, keep_missing = false, exact = false, thumb_side = None, max_pixels = 128_000_000, max_mib = 256, allow_empty = false, device = "auto", progress = None, profile = None))]
#[allow(clippy::too_many_arguments)]
pub fn build(
    py: Python<'_>,
    index: PathBuf,
    sources: Vec<PathBuf>,
    hash_only: bool,
    keypoints: bool,
    keep_missing: bool,
    exact: bool,
    thumb_side: Option<u32>,
    max_pixels: u64,
    max_mib: u64,
    allow_empty: bool,
    device: &str,
    progress: Option<Py<PyAny>>,
    profile: Option<&str>,
) -> PyResult<String> {
    let device = device_choice(device)?;
    let profile = match profile {
        None => None,
        Some("full") => Some(lookalike::index::Profile::Full),
        Some("compact") => Some(lookalike::index::Profile::Compact),
        Some(p) => {
            return Err(PyValueError::new_err(format!(
                "profile: expected 'full' or 'compact', not {p:?}"
            )))
        }
    };
    if sources.is_empty() {
        return Err(PyValueError::new_err("sources: no folder given"));
    }
    if thumb_side == Some(0) {
        return Err(PyValueError::new_err("thumb_side must be at least 1"));
    }
    check_sources(&sources, allow_empty)?;
    // Without exact/thumb_side, the decode setting the index records.
    let recorded = lookalike::index::Manifest::load(&index)
        .ok()
        .and_then(|m| m.decode)
        .and_then(|l| DecodeMode::parse_label(&l));
    let (mode, side) = if exact {
        (DecodeMode::Exact, lookalike::ingest::decode::FAST_MIN_SIDE)
    } else if let Some(n) = thumb_side {
        (DecodeMode::Fast, n)
    } else {
        recorded.unwrap_or((DecodeMode::Fast, lookalike::ingest::decode::FAST_MIN_SIDE))
    };
    let opts = BuildOptions {
        mode,
        limits: Limits {
            max_bytes: max_mib.saturating_mul(1 << 20),
            max_pixels,
            fast_min_side: side,
        },
        prune: !keep_missing,
        profile,
        engine: choose_engine(py, device)?,
        extras: Extras {
            embedding: !hash_only,
            keypoints,
            regions: false,
        },
        batch_size: BATCH,
        commit_every: None,
    };
    let stats = py.detach(|| match &progress {
        None => run(&index, &sources, &opts, &ProgressBar::hidden()),
        Some(cb) => with_progress(cb, &sources, |pb| run(&index, &sources, &opts, pb)),
    })?;
    to_json(&stats)
}

/// What `lookalike index` refuses before it starts, in its words: a
/// source that does not exist, sources without an image or a shard.
fn check_sources(sources: &[PathBuf], allow_empty: bool) -> PyResult<()> {
    if let Some(s) = sources.iter().find(|s| !s.exists()) {
        return Err(LookalikeError::new_err(format!(
            "{}: no such file or folder",
            s.display()
        )));
    }
    let (n, shards) = inputs_of(sources).count();
    if n == 0 && !shards && !allow_empty {
        let shown: Vec<String> = sources.iter().map(|s| s.display().to_string()).collect();
        return Err(LookalikeError::new_err(format!(
            "{}: no image files in it (JPEG, PNG, WebP, GIF, BMP, TIFF, or tar shards of them); \
             pass allow_empty=True to accept an empty folder",
            shown.join(", ")
        )));
    }
    Ok(())
}

/// Updates the index from all sources at once, as `lookalike index A B`
/// does (each prunes only what lies under it).
fn run(
    index: &Path,
    sources: &[PathBuf],
    opts: &BuildOptions,
    pb: &ProgressBar,
) -> PyResult<BuildStats> {
    update_from(index, &inputs_of(sources), opts, pb).map_err(lib_error)
}

/// The sources as the library's inputs: folders, tar shards, image files.
fn inputs_of(sources: &[PathBuf]) -> Inputs {
    sources
        .iter()
        .map(|s| Inputs::path(s))
        .reduce(Inputs::and)
        .expect("at least one source")
}

/// Runs `work` on another thread with a hidden progress bar and offers its
/// position to `cb(done, total)` every [`PROGRESS_EVERY`], once at the
/// start and once at the end. The first exception the callback raises
/// stops the calls and is raised when the build is done (a build is not
/// interrupted half-way; its commits are crash-safe anyway).
fn with_progress(
    cb: &Py<PyAny>,
    sources: &[PathBuf],
    work: impl FnOnce(&ProgressBar) -> PyResult<BuildStats> + Send,
) -> PyResult<BuildStats> {
    // The total, as the CLI's bar gets it: a quick walk, names only; shard
    // members are not counted ahead (that would read every shard): 0.
    let (n, shards) = inputs_of(sources).count();
    let total = if shards { 0 } else { n as usize };
    let pb = ProgressBar::hidden();
    pb.set_length(total as u64);
    let mut failed: Option<PyErr> = None;
    let mut offer = |done: u64| {
        if failed.is_none() {
            let r = Python::attach(|py| cb.call1(py, (done as usize, total)).map(drop));
            failed = r.err();
        }
    };
    offer(0);
    let stats = std::thread::scope(|s| {
        let worker = s.spawn(|| work(&pb));
        let mut last = 0;
        while !worker.is_finished() {
            std::thread::sleep(PROGRESS_EVERY);
            let now = pb.position();
            if now != last {
                last = now;
                offer(now);
            }
        }
        worker.join().unwrap_or_else(|_| {
            Err(LookalikeError::new_err(
                "internal error: the build panicked",
            ))
        })
    })?;
    offer(pb.position());
    match failed {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

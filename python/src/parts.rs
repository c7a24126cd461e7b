//! A check fanned out over index parts (`lookalike::search::fanout`):
//! `NativePart`, an open part answering the stages, and the driver's
//! functions (describe, combine1, combine2, report). Every message crosses
//! as `bytes`, opaque and picklable, so a distributed driver (Ray actors)
//! can move them between processes; the call sequence is in the package's
//! docstring (`lookalike/__init__.py`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lookalike::engine::Engine;
use lookalike::gpu::DeviceChoice;
use lookalike::ingest::BATCH;
use lookalike::pipeline::check::{self, CheckOptions};
use lookalike::pipeline::check_parts;
use lookalike::search::fanout::{
    self, Judged, PartSettings, Plan, Request, Stage1, Stage2, Stage2Plan, Stage3, Stage3Plan,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::{
    cached_engine, choose_engine, device_choice, index_error, inputs, lib_error, to_json,
    LookalikeError,
};

/// One index part, open for the stages of a fan-out check
/// (`lookalike.Part` wraps it).
#[pyclass(frozen, module = "lookalike._lookalike")]
pub struct NativePart {
    index: lookalike::index::Index,
    device: DeviceChoice,
    engine: Mutex<Option<Arc<dyn Engine>>>,
}

fn bytes<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, b)
}

fn all_bytes(list: &[Bound<'_, PyBytes>]) -> Vec<Vec<u8>> {
    list.iter().map(|b| b.as_bytes().to_vec()).collect()
}

#[pymethods]
impl NativePart {
    /// Opens the index part in folder `path`; `device` as `--device`.
    #[new]
    #[pyo3(signature = (path, device = "auto"))]
    fn new(py: Python<'_>, path: PathBuf, device: &str) -> PyResult<Self> {
        let device = device_choice(device)?;
        let index = py
            .detach(|| lookalike::index::Index::open(&path))
            .map_err(index_error)?;
        Ok(NativePart {
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

    /// Segments (0: an empty part, compatible with any settings).
    #[getter]
    fn segments(&self) -> usize {
        self.index.segments().len()
    }

    /// (decode label, embedding model, keeps keypoints): what the parts of
    /// one check must share.
    #[getter]
    fn settings(&self) -> (Option<String>, Option<String>, bool) {
        let s = PartSettings::of(&self.index);
        (s.decode, s.embedding, s.keypoints)
    }

    /// Stage 1: this part's first-stage evidence for the request.
    fn stage1<'py>(&self, py: Python<'py>, request: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let engine = self.engine(py)?;
        let out = py.detach(|| -> Result<Vec<u8>, fanout::FanoutError> {
            let req = Request::from_bytes(request)?;
            Ok(fanout::stage1(&self.index, &req, engine.as_ref())?.to_bytes())
        });
        Ok(bytes(py, &out.map_err(lib_error)?))
    }

    /// Stage 2: verifies and scores this part's share (`plan`: this part's
    /// entry of `combine1`'s list).
    fn stage2<'py>(
        &self,
        py: Python<'py>,
        request: &[u8],
        plan: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = py.detach(|| -> Result<Vec<u8>, fanout::FanoutError> {
            let req = Request::from_bytes(request)?;
            let plan = Stage2Plan::from_bytes(plan)?;
            Ok(fanout::stage2(&self.index, &req, &plan)?.to_bytes())
        });
        Ok(bytes(py, &out.map_err(lib_error)?))
    }

    /// Stage 3: this part's near copies of the matched candidates (`plan`:
    /// this part's entry of `combine2`'s list).
    fn stage3<'py>(
        &self,
        py: Python<'py>,
        request: &[u8],
        plan: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = py.detach(|| -> Result<Vec<u8>, fanout::FanoutError> {
            let req = Request::from_bytes(request)?;
            let plan = Stage3Plan::from_bytes(plan)?;
            Ok(fanout::stage3(&self.index, &req, &plan)?.to_bytes())
        });
        Ok(bytes(py, &out.map_err(lib_error)?))
    }
}

impl NativePart {
    fn engine(&self, py: Python<'_>) -> PyResult<Arc<dyn Engine>> {
        cached_engine(py, &self.engine, self.device)
    }
}

/// Describes the tagged inputs once for parts with `settings` (decode,
/// embedding model, keypoints): the request every stage takes. Named
/// inputs that cannot be read raise unless `skip_bad`, as in `check`.
#[pyfunction]
#[pyo3(signature = (items, settings, k = 10, hash_only = false, verify = true, skip_bad = false, total_images = None, device = "auto", regions = true))]
#[allow(clippy::too_many_arguments)]
pub fn describe<'py>(
    py: Python<'py>,
    items: Vec<Bound<'py, PyTuple>>,
    settings: (Option<String>, Option<String>, bool),
    k: usize,
    hash_only: bool,
    verify: bool,
    skip_bad: bool,
    total_images: Option<u64>,
    device: &str,
    regions: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    if k == 0 {
        return Err(PyValueError::new_err("k must be at least 1"));
    }
    let settings = PartSettings {
        decode: settings.0,
        embedding: settings.1,
        keypoints: settings.2,
    };
    let items = inputs::extract(&items)?;
    inputs::validate(&items)?;
    let mut opts =
        CheckOptions::for_settings(settings.decode.as_deref(), settings.embedding.as_deref());
    opts.top_k = k;
    opts.verify = verify;
    opts.regions = regions;
    opts.embed = use_embeddings(&settings, hash_only)?;
    opts.engine = choose_engine(py, device_choice(device)?)?;
    let out = py.detach(|| -> PyResult<Vec<u8>> {
        let (units, bad) = inputs::expand(items);
        let mut skips = inputs::Skips::new(skip_bad);
        for b in bad {
            skips.keep(b)?;
        }
        let mut queries = Vec::with_capacity(units.len());
        let mut units = units.into_iter();
        let mut last = None;
        loop {
            let chunk: Vec<inputs::Unit> = units.by_ref().take(BATCH).collect();
            if chunk.is_empty() {
                break;
            }
            let mut good = Vec::with_capacity(chunk.len());
            for r in inputs::read(chunk, opts.mode, &opts.limits) {
                match r {
                    Ok(g) => good.push(g),
                    Err(b) => skips.keep(b)?,
                }
            }
            let r = check_parts::describe(&good, &settings, &opts, vec![], total_images)
                .map_err(lib_error)?;
            queries.extend(r.queries.iter().cloned());
            last = Some(r);
        }
        let mut req = match last {
            Some(r) => r,
            None => check_parts::describe(&[], &settings, &opts, vec![], total_images)
                .map_err(lib_error)?,
        };
        req.queries = queries;
        req.skipped = skips.list;
        Ok(req.to_bytes())
    })?;
    Ok(bytes(py, &out))
}

/// Whether queries get embedded, as `Index.check` decides.
fn use_embeddings(s: &PartSettings, hash_only: bool) -> PyResult<bool> {
    let ours = lookalike::descriptors::embedding::model_label();
    match s.embedding.as_deref() {
        None => Ok(false),
        Some(_) if hash_only => Ok(false),
        Some(m) if m == ours => Ok(true),
        Some(m) => Err(LookalikeError::new_err(format!(
            "the parts hold embeddings of {m}, this run embeds with {ours}: queries would \
             not be comparable (use hash_only=True, or rebuild the parts)"
        ))),
    }
}

/// Combines the parts' stage-1 answers (in part order): the driver's state
/// and each part's stage-2 plan.
#[pyfunction]
pub fn combine1<'py>(
    py: Python<'py>,
    request: &[u8],
    stage1: Vec<Bound<'py, PyBytes>>,
) -> PyResult<(Bound<'py, PyBytes>, Vec<Bound<'py, PyBytes>>)> {
    let s1 = all_bytes(&stage1);
    let (state, plans) = py
        .detach(|| -> Result<_, fanout::FanoutError> {
            let req = Request::from_bytes(request)?;
            let s1 = s1
                .iter()
                .map(|b| Stage1::from_bytes(b))
                .collect::<Result<Vec<_>, _>>()?;
            let (plan, plans) = fanout::combine1(&req, &s1)?;
            Ok((
                plan.to_bytes(),
                plans.iter().map(Stage2Plan::to_bytes).collect::<Vec<_>>(),
            ))
        })
        .map_err(lib_error)?;
    Ok((
        bytes(py, &state),
        plans.iter().map(|p| bytes(py, p)).collect(),
    ))
}

/// Combines the parts' stage-2 answers (in part order): the driver's state
/// and each part's stage-3 plan.
#[pyfunction]
pub fn combine2<'py>(
    py: Python<'py>,
    request: &[u8],
    state: &[u8],
    stage2: Vec<Bound<'py, PyBytes>>,
) -> PyResult<(Bound<'py, PyBytes>, Vec<Bound<'py, PyBytes>>)> {
    let s2 = all_bytes(&stage2);
    let (state, plans) = py
        .detach(|| -> Result<_, fanout::FanoutError> {
            let req = Request::from_bytes(request)?;
            let plan = Plan::from_bytes(state)?;
            let s2 = s2
                .iter()
                .map(|b| Stage2::from_bytes(b))
                .collect::<Result<Vec<_>, _>>()?;
            let (judged, plans) = fanout::combine2(&req, &plan, &s2)?;
            Ok((
                judged.to_bytes(),
                plans.iter().map(Stage3Plan::to_bytes).collect::<Vec<_>>(),
            ))
        })
        .map_err(lib_error)?;
    Ok((
        bytes(py, &state),
        plans.iter().map(|p| bytes(py, p)).collect(),
    ))
}

/// The report of the check from the parts' stage-3 answers (in part
/// order), as `check --json` JSON text; `index` names the parts.
#[pyfunction]
#[pyo3(signature = (request, state, stage3, index, min_score = None))]
pub fn report(
    py: Python<'_>,
    request: &[u8],
    state: &[u8],
    stage3: Vec<Bound<'_, PyBytes>>,
    index: &str,
    min_score: Option<f64>,
) -> PyResult<String> {
    let s3 = all_bytes(&stage3);
    py.detach(|| {
        let r = || -> Result<_, fanout::FanoutError> {
            let req = Request::from_bytes(request)?;
            let judged = Judged::from_bytes(state)?;
            let s3 = s3
                .iter()
                .map(|b| Stage3::from_bytes(b))
                .collect::<Result<Vec<_>, _>>()?;
            fanout::report(&req, &judged, &s3, index)
        };
        let mut report = r().map_err(lib_error)?;
        if let Some(s) = min_score {
            check::require_score(&mut report, s);
        }
        to_json(&report)
    })
}

//! Checking generated images against an index: read and decode them in
//! batches, describe them (all orientations) on the engine, search, fuse
//! the evidence and judge. Used by `query` (one image), `check` (a folder)
//! and `eval`.

use std::sync::Arc;

use image::RgbImage;
use indicatif::ProgressBar;
use rayon::prelude::*;

use super::deferred::resolve;
use crate::descriptors::{Extras, QueryDescriptors};
use crate::engine::{Engine, EngineError};
use crate::index::Index;
use crate::ingest::names::path_text;
use crate::ingest::source::{visit, Inputs, Visit};
use crate::ingest::walk::{is_shard_name, WalkItem};
use crate::ingest::{
    process_batch, DecodeMode, FileEntry, Limits, Outcome, Skipped, Walker, BATCH,
};
use crate::search::calibrate::Calibration;
use crate::search::fusion::{self, FuseParams};
use crate::search::hamming::Kernel;
use crate::search::judge::{fill_corpus_copies, judge};
use crate::search::result::{CheckReport, QueryResult, Thresholds, SCHEMA};
use crate::search::{batch::batch_search, search, verdict, Match, SearchParams, Verdict};

/// How `check` runs.
#[derive(Clone)]
pub struct CheckOptions {
    /// How query files are decoded (as the index was, for comparable hashes).
    pub mode: DecodeMode,
    /// Size limits for query files.
    pub limits: Limits,
    /// Candidates reported per query.
    pub top_k: usize,
    /// Run the verification stage (`fusion`); off: PDQ evidence only.
    pub verify: bool,
    /// Embed queries and search the index's embeddings (the index has them).
    pub embed: bool,
    /// Describes queries (and, where it accepts, scans hashes in batches).
    pub engine: Arc<dyn Engine>,
    /// Segments with at least this many records search embeddings through
    /// their HNSW graph ([`fusion::ANN_MIN_ROWS`] by default).
    pub ann_min_rows: usize,
    /// Which copy of the CPU Hamming scan loop runs (`SearchParams::kernel`).
    pub kernel: Kernel,
}

impl CheckOptions {
    /// The defaults of `lookalike check` on `index`: queries decoded as the
    /// index records, embeddings used when the index has those of the
    /// model this process embeds with, verification on, top 10, CPU engine.
    pub fn for_index(index: &Index) -> CheckOptions {
        let (mode, side) = index
            .manifest()
            .decode
            .as_deref()
            .and_then(DecodeMode::parse_label)
            .unwrap_or((DecodeMode::Fast, crate::ingest::decode::FAST_MIN_SIDE));
        let limits = Limits {
            fast_min_side: side,
            ..Limits::default()
        };
        CheckOptions {
            embed: index.embedding_model()
                == Some(crate::descriptors::embedding::model_label().as_str()),
            ..CheckOptions::new(mode, limits)
        }
    }

    /// The defaults of `lookalike check` for an index decoded with `mode`:
    /// top 10, verification on, no embeddings, CPU engine.
    pub fn new(mode: DecodeMode, limits: Limits) -> CheckOptions {
        CheckOptions {
            mode,
            limits,
            top_k: 10,
            verify: true,
            embed: false,
            engine: Arc::new(crate::engine::CpuEngine),
            ann_min_rows: fusion::ANN_MIN_ROWS,
            kernel: Kernel::default(),
        }
    }
}

/// Lists the image files under `root` (a folder or one file) in name order.
pub fn collect_queries(root: &std::path::Path) -> (Vec<FileEntry>, Vec<Skipped>) {
    let mut files = vec![];
    let mut skipped = vec![];
    if root.is_file() {
        // A single file is checked whatever its extension.
        match std::fs::metadata(root) {
            Ok(md) => files.push(FileEntry::on_disk(
                root.to_path_buf(),
                md.len(),
                crate::ingest::walk::mtime_ns(&md),
            )),
            Err(e) => skipped.push(Skipped {
                path: path_text(root),
                reason: format!("cannot stat: {e}"),
            }),
        }
        return (files, skipped);
    }
    if !root.exists() {
        skipped.push(Skipped {
            path: path_text(root),
            reason: "no such file or folder".into(),
        });
    }
    for item in Walker::new(root) {
        match item {
            WalkItem::File(f) => files.push(f),
            WalkItem::Skipped(s) => skipped.push(s),
            WalkItem::Shard(_) => {} // not yielded without `with_shards`
        }
    }
    (files, skipped)
}

/// Checks `files` against `index`; `skipped` (files the caller could not
/// list) is carried into the report. `Err` only when the engine fails.
pub fn check(
    index: &Index,
    files: Vec<FileEntry>,
    skipped: Vec<Skipped>,
    opts: &CheckOptions,
    progress: &ProgressBar,
) -> Result<CheckReport, EngineError> {
    let mut c = Checker::new(Run::new(index, opts, files.len() == 1), skipped, progress);
    for f in files {
        c.file(f)?;
    }
    c.report()
}

/// Checks every image of `inputs` against `index`: folders, image files
/// and tar shards, whose members are streamed in batches and reported as
/// `SHARD.tar/MEMBER`. What cannot be read is listed in the report's
/// `skipped`. `Err` only when the engine fails.
///
/// ```no_run
/// use lookalike::ingest::Inputs;
/// use lookalike::pipeline::check::{check_inputs, CheckOptions};
/// let index = lookalike::index::Index::open("indexes/mymodel".as_ref())?;
/// let inputs = Inputs::pattern("out/{00000..00009}.tar".as_ref())?;
/// let opts = CheckOptions::for_index(&index);
/// let report = check_inputs(&index, &inputs, &opts, &indicatif::ProgressBar::hidden())?;
/// println!("{} of {} matched", report.matched, report.images_checked);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_inputs(
    index: &Index,
    inputs: &Inputs,
    opts: &CheckOptions,
    progress: &ProgressBar,
) -> Result<CheckReport, EngineError> {
    let single = match inputs.paths.as_slice() {
        [p] => p.is_file() && !is_shard_name(p),
        _ => false,
    };
    let mut c = Checker::new(Run::new(index, opts, single), vec![], progress);
    visit(inputs, &opts.limits, &mut c)?;
    c.report()
}

/// Query files gathered into batches, checked a batch at a time.
struct Checker<'a> {
    run: Run<'a>,
    batch: Vec<FileEntry>,
    results: Vec<QueryResult>,
    skipped: Vec<Skipped>,
    progress: &'a ProgressBar,
}

impl<'a> Checker<'a> {
    fn new(run: Run<'a>, skipped: Vec<Skipped>, progress: &'a ProgressBar) -> Checker<'a> {
        Checker {
            run,
            batch: Vec::with_capacity(BATCH),
            results: Vec::new(),
            skipped,
            progress,
        }
    }

    fn flush(&mut self) -> Result<(), EngineError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.batch);
        let n = chunk.len() as u64;
        let (opts, extras) = (self.run.opts, self.run.extras);
        let engine = opts.engine.as_ref();
        let processed = process_batch(
            chunk,
            opts.mode,
            &opts.limits,
            |_| None,
            |d| engine.prepare_query(&d.rgb, extras),
        );
        let processed = resolve(processed, |imgs| engine.describe_queries(imgs, extras))?;
        let mut described: Vec<(String, u128, QueryDescriptors)> = Vec::new();
        for p in processed {
            match p.outcome {
                Outcome::Done(q) | Outcome::Duplicate(q) => {
                    described.push((path_text(&p.entry.path), p.content_hash, q))
                }
                Outcome::Skipped(failure) => self.skipped.push(Skipped {
                    path: path_text(&p.entry.path),
                    reason: failure.reason,
                }),
            }
        }
        self.results.extend(self.run.search(&described));
        self.progress.inc(n);
        Ok(())
    }

    fn report(mut self) -> Result<CheckReport, EngineError> {
        self.flush()?;
        Ok(self.run.report(self.results, self.skipped))
    }
}

impl Visit for Checker<'_> {
    type Error = EngineError;

    fn file(&mut self, e: FileEntry) -> Result<(), EngineError> {
        self.batch.push(e);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn skipped(&mut self, s: Skipped) {
        self.skipped.push(s);
    }
}

/// Checks images already decoded (a name for the report, and the upright
/// RGB pixels), as `check` does files: for callers that hold pixels (the
/// Python package, a service). No file bytes, so `same_bytes` is false.
///
/// ```no_run
/// use lookalike::pipeline::check::{check_images, CheckOptions};
/// let index = lookalike::index::Index::open("indexes/mymodel".as_ref())?;
/// let img = image::open("out/0001.png")?.into_rgb8();
/// let opts = CheckOptions::for_index(&index);
/// let report = check_images(&index, &[("0001.png".into(), img)], &opts)?;
/// println!("{}", serde_json::to_string_pretty(&report)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_images(
    index: &Index,
    images: &[(String, RgbImage)],
    opts: &CheckOptions,
) -> Result<CheckReport, EngineError> {
    let run = Run::new(index, opts, images.len() == 1);
    let engine = opts.engine.as_ref();
    let mut results = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH) {
        let pixels: Vec<RgbImage> = chunk.iter().map(|(_, i)| i.clone()).collect();
        let described = engine.describe_queries(&pixels, run.extras)?;
        let described: Vec<(String, u128, QueryDescriptors)> = chunk
            .iter()
            .zip(described)
            .map(|((name, _), q)| (name.clone(), 0, q))
            .collect();
        results.extend(run.search(&described));
    }
    Ok(run.report(results, vec![]))
}

/// One check's settings, resolved against its index.
struct Run<'a> {
    index: &'a Index,
    opts: &'a CheckOptions,
    extras: Extras,
    search: SearchParams,
    fuse: FuseParams,
}

impl<'a> Run<'a> {
    fn new(index: &'a Index, opts: &'a CheckOptions, single: bool) -> Run<'a> {
        // An index without keypoints (`index --no-keypoints`) has nothing to
        // verify against: the query's keypoints would be extracted for nothing.
        let verify = opts.verify && index.has_keypoints();
        Run {
            index,
            opts,
            extras: Extras {
                embedding: opts.embed,
                keypoints: verify,
            },
            search: SearchParams {
                top_k: opts.top_k.max(fusion::VERIFY_PDQ),
                max_distance: 256,
                parallel: single,
                kernel: opts.kernel,
            },
            fuse: FuseParams {
                top_k: opts.top_k,
                parallel: single,
                verify,
                ann_min_rows: opts.ann_min_rows,
                calibration: Calibration::for_index(index),
            },
        }
    }

    /// Searches and judges a batch of described queries (path, content
    /// hash, descriptors): on the engine's batch kernel where it accepts,
    /// else by the CPU scan, one query per core.
    fn search(&self, described: &[(String, u128, QueryDescriptors)]) -> Vec<QueryResult> {
        let index = self.index;
        let judge = |path: &str, ch: u128, q: &QueryDescriptors, found: &[Match]| {
            let cands = fusion::fuse(index, q, found, &self.fuse);
            judge(index, path, ch, q, &cands, &self.fuse.calibration)
        };
        let qs: Vec<&QueryDescriptors> = described.iter().map(|d| &d.2).collect();
        let engine = self.opts.engine.as_ref();
        match batch_search(index, engine, &qs, self.search.top_k) {
            Some(hits) => described
                .par_iter()
                .zip(hits)
                .map(|((path, ch, q), m)| judge(path, *ch, q, &m))
                .collect(),
            None => described
                .par_iter()
                .map(|(path, ch, q)| judge(path, *ch, q, &search(index, q, &self.search)))
                .collect(),
        }
    }

    /// The report of all results: counts, rate, thresholds.
    fn report(&self, mut results: Vec<QueryResult>, skipped: Vec<Skipped>) -> CheckReport {
        let index = self.index;
        fill_corpus_copies(index, &mut results);
        let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
        let (exact, near) = (count(Verdict::Exact), count(Verdict::NearDuplicate));
        CheckReport {
            schema: SCHEMA,
            index: path_text(index.dir()),
            index_records: index.live_count(),
            images_checked: results.len(),
            matched: exact + near,
            exact,
            near_duplicate: near,
            replication_rate: if results.is_empty() {
                0.0
            } else {
                (exact + near) as f64 / results.len() as f64
            },
            thresholds: Thresholds {
                match_pdq_distance: verdict::MATCH_PDQ,
                exact_pdq_distance: verdict::EXACT_PDQ,
                exact_phash_distance: verdict::EXACT_PHASH,
                min_quality: verdict::MIN_QUALITY,
                match_inliers: verdict::match_inliers(),
                match_score: verdict::match_score(),
                match_similarity: verdict::match_similarity(&self.fuse.calibration),
                embedding_model: self
                    .opts
                    .embed
                    .then(crate::descriptors::embedding::model_label),
                keypoint_scan: self.fuse.verify && fusion::keypoint_scan(index),
            },
            skipped,
            results,
        }
    }
}

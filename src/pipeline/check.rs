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
use crate::search::regions;
use crate::search::result::{CheckReport, QueryResult, Thresholds};
use crate::search::{batch::batch_search, search, Match, SearchParams, Verdict};

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
    /// Also search the regions where a copy may sit inside each query
    /// (`descriptors::regions`; off: `--no-regions`).
    pub regions: bool,
    /// Describes queries (and, where it accepts, scans hashes in batches).
    pub engine: Arc<dyn Engine>,
    /// Segments with at least this many records search embeddings through
    /// their HNSW graph ([`fusion::ANN_MIN_ROWS`] by default).
    pub ann_min_rows: usize,
    /// Which copy of the CPU Hamming scan loop runs (`SearchParams::kernel`).
    pub kernel: Kernel,
    /// Segments with at least this many records try their PDQ table
    /// before the scan (`SearchParams::pdq_table_min_rows`).
    pub pdq_table_min_rows: usize,
    /// Compare query keypoints with every record instead of asking the
    /// keypoint tables (`FuseParams::keypoint_scan`).
    pub keypoint_scan: bool,
}

impl CheckOptions {
    /// The defaults of `lookalike check` on `index`: queries decoded as the
    /// index records, embeddings used when the index has those of the
    /// model this process embeds with, verification on, top 10, CPU engine.
    pub fn for_index(index: &Index) -> CheckOptions {
        CheckOptions::for_settings(index.manifest().decode.as_deref(), index.embedding_model())
    }

    /// The defaults of `lookalike check` on an index with decode label
    /// `decode` and embeddings of `embedding` (as its manifest records them).
    pub fn for_settings(decode: Option<&str>, embedding: Option<&str>) -> CheckOptions {
        let (mode, side) = decode
            .and_then(DecodeMode::parse_label)
            .unwrap_or((DecodeMode::Fast, crate::ingest::decode::FAST_MIN_SIDE));
        let limits = Limits {
            fast_min_side: side,
            ..Limits::default()
        };
        CheckOptions {
            embed: embedding == Some(crate::descriptors::embedding::model_label().as_str()),
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
            regions: true,
            engine: Arc::new(crate::engine::CpuEngine),
            ann_min_rows: fusion::ANN_MIN_ROWS,
            kernel: Kernel::default(),
            pdq_table_min_rows: crate::search::hamming::PDQ_TABLE_MIN_ROWS,
            keypoint_scan: false,
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
        // Listed once: the walk below would report the same path again.
        skipped.push(Skipped {
            path: path_text(root),
            reason: "no such file or folder".into(),
        });
        return (files, skipped);
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
    check_streaming(index, files, skipped, opts, progress, &mut |_| {})
}

/// [`check`], handing each image's result to `each` as soon as its batch is
/// searched (complete: corpus copies filled in), in file order. The
/// progress bar moves per image as it is decoded and described.
pub fn check_streaming(
    index: &Index,
    files: Vec<FileEntry>,
    skipped: Vec<Skipped>,
    opts: &CheckOptions,
    progress: &ProgressBar,
    each: &mut dyn FnMut(&QueryResult),
) -> Result<CheckReport, EngineError> {
    let run = Run::new(index, opts, files.len() == 1);
    let mut c = Checker::new(index, run, skipped, progress, each);
    for f in files {
        c.file(f)?;
    }
    c.report()
}

/// Checks every image of `inputs` against `index`: folders, image files
/// and tar shards, whose members are streamed in batches and reported as
/// `SHARD.tar/MEMBER`. What cannot be read is listed in the report's
/// `skipped`; `each` gets every image's result as in [`check_streaming`].
/// `Err` only when the engine fails.
///
/// ```no_run
/// use lookalike::ingest::Inputs;
/// use lookalike::pipeline::check::{check_inputs, CheckOptions};
/// let index = lookalike::index::Index::open("indexes/mymodel".as_ref())?;
/// let inputs = Inputs::pattern("out/{00000..00009}.tar".as_ref())?;
/// let opts = CheckOptions::for_index(&index);
/// let bar = indicatif::ProgressBar::hidden();
/// let report = check_inputs(&index, &inputs, &opts, &bar, &mut |_| {})?;
/// println!("{} of {} matched", report.matched, report.images_checked);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_inputs(
    index: &Index,
    inputs: &Inputs,
    opts: &CheckOptions,
    progress: &ProgressBar,
    each: &mut dyn FnMut(&QueryResult),
) -> Result<CheckReport, EngineError> {
    let single = match inputs.paths.as_slice() {
        [p] => p.is_file() && !is_shard_name(p),
        _ => false,
    };
    let run = Run::new(index, opts, single);
    let mut c = Checker::new(index, run, vec![], progress, each);
    visit(inputs, &opts.limits, &mut c)?;
    c.report()
}

/// Query files gathered into batches, checked a batch at a time.
struct Checker<'a, 'e> {
    index: &'a Index,
    run: Run<'a>,
    batch: Vec<FileEntry>,
    results: Vec<QueryResult>,
    skipped: Vec<Skipped>,
    progress: &'a ProgressBar,
    /// Images done before this batch (the bar moves per image within it).
    done: u64,
    each: &'e mut dyn FnMut(&QueryResult),
}

impl<'a, 'e> Checker<'a, 'e> {
    fn new(
        index: &'a Index,
        run: Run<'a>,
        skipped: Vec<Skipped>,
        progress: &'a ProgressBar,
        each: &'e mut dyn FnMut(&QueryResult),
    ) -> Checker<'a, 'e> {
        Checker {
            index,
            run,
            batch: Vec::with_capacity(BATCH),
            results: Vec::new(),
            skipped,
            progress,
            done: progress.position(),
            each,
        }
    }

    fn flush(&mut self) -> Result<(), EngineError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.batch);
        let n = chunk.len() as u64;
        let (opts, extras, progress) = (self.run.opts, self.run.extras, self.progress);
        let engine = opts.engine.as_ref();
        let processed = process_batch(
            chunk,
            opts.mode,
            &opts.limits,
            |_| None,
            |d| {
                let q = engine.prepare_query(&d.rgb, extras);
                progress.inc(1);
                q
            },
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
        let mut found = self.run.search(&described);
        fill_corpus_copies(self.index, &mut found);
        for r in &found {
            (self.each)(r);
        }
        self.results.extend(found);
        // Files that failed to decode were never counted above.
        self.done += n;
        self.progress.set_position(self.done);
        Ok(())
    }

    fn report(mut self) -> Result<CheckReport, EngineError> {
        self.flush()?;
        Ok(self.run.report(self.results, self.skipped, true))
    }
}

impl Visit for Checker<'_, '_> {
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

/// Raises the score a match needs to `min_score` (`check --min-score`): a
/// candidate scoring less is no match, and the image verdicts, counts and
/// rate follow; `thresholds.match_score` records the bar. A value at or
/// under the default bar changes nothing (the other thresholds stay).
pub fn require_score(report: &mut CheckReport, min_score: f64) {
    if min_score <= report.thresholds.match_score {
        return;
    }
    report.thresholds.match_score = min_score;
    for q in &mut report.results {
        demote_below(q, min_score);
    }
    count_verdicts(report);
}

/// One image's part of [`require_score`]: its candidates scoring under
/// `min_score` are no match, and its verdict is the best that remains.
pub fn demote_below(q: &mut QueryResult, min_score: f64) {
    // Scores as printed (JSON rounds to 6 decimals): a bar copied from a
    // report keeps the match it was copied from.
    let bar = min_score - 0.5e-6;
    for m in q.matches.iter_mut().filter(|m| m.score < bar) {
        m.verdict = Verdict::None;
        m.corpus_copies = None;
    }
    q.settle();
}

/// Sets the counts and the replication rate from the results' verdicts
/// (for callers that assemble a report from several checks).
pub fn count_verdicts(r: &mut CheckReport) {
    r.count_verdicts();
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
    check_pixels(
        index,
        images.len(),
        |i| (&images[i].0, 0, &images[i].1),
        opts,
    )
}

/// As [`check_images`], with each image's content hash (xxh3-128 of the
/// bytes it was decoded from, as [`crate::ingest::process_batch`] computes
/// it), so `same_bytes` is reported as `check` reports it for files: for
/// callers that decode bytes they hold in memory (`lookalike serve`).
pub fn check_decoded(
    index: &Index,
    images: &[(String, u128, RgbImage)],
    opts: &CheckOptions,
) -> Result<CheckReport, EngineError> {
    check_pixels(
        index,
        images.len(),
        |i| (&images[i].0, images[i].1, &images[i].2),
        opts,
    )
}

/// The `n` images `get(i)` names (name, content hash, pixels), checked in
/// engine batches.
fn check_pixels<'a>(
    index: &Index,
    n: usize,
    get: impl Fn(usize) -> (&'a String, u128, &'a RgbImage),
    opts: &CheckOptions,
) -> Result<CheckReport, EngineError> {
    let run = Run::new(index, opts, n == 1);
    let engine = opts.engine.as_ref();
    let mut results = Vec::with_capacity(n);
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(BATCH) {
        let pixels: Vec<RgbImage> = chunk.iter().map(|&i| get(i).2.clone()).collect();
        let described = engine.describe_queries(&pixels, run.extras)?;
        let described: Vec<(String, u128, QueryDescriptors)> = chunk
            .iter()
            .zip(described)
            .map(|(&i, q)| {
                let (name, hash, _) = get(i);
                (name.clone(), hash, q)
            })
            .collect();
        results.extend(run.search(&described));
    }
    Ok(run.report(results, vec![], false))
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
                regions: opts.regions,
            },
            search: SearchParams {
                top_k: opts.top_k.max(fusion::VERIFY_PDQ),
                max_distance: 256,
                parallel: single,
                kernel: opts.kernel,
                pdq_index: true,
                pdq_table_min_rows: opts.pdq_table_min_rows,
            },
            fuse: FuseParams {
                top_k: opts.top_k,
                parallel: single,
                verify,
                ann_min_rows: opts.ann_min_rows,
                keypoint_scan: opts.keypoint_scan,
                calibration: Calibration::for_index(index),
            },
        }
    }

    /// Searches and judges a batch of described queries (path, content
    /// hash, descriptors): on the engine's batch kernel where it accepts,
    /// else by the CPU scan, one query per core.
    /// Each query's whole image and its regions are searched alike
    /// ([`crate::search::regions`]) and folded into one result per query.
    fn search(&self, described: &[(String, u128, QueryDescriptors)]) -> Vec<QueryResult> {
        let index = self.index;
        let probes = regions::probes(described.iter().map(|d| &d.2));
        let judge = |p: &regions::Probe, found: &[Match]| {
            let (path, ch, _) = &described[p.owner];
            let ch = if p.region.is_some() { 0 } else { *ch };
            let cands = fusion::fuse(index, p.q, found, &self.fuse);
            judge(index, path, ch, p.q, &cands, &self.fuse.calibration)
        };
        let qs: Vec<&QueryDescriptors> = probes.iter().map(|p| p.q).collect();
        let engine = self.opts.engine.as_ref();
        let results: Vec<QueryResult> = match batch_search(index, engine, &qs, self.search.top_k) {
            Some(hits) => probes
                .par_iter()
                .zip(hits)
                .map(|(p, m)| judge(p, &m))
                .collect(),
            None => probes
                .par_iter()
                .map(|p| judge(p, &search(index, p.q, &self.search)))
                .collect(),
        };
        let tagged = probes.iter().map(|p| p.region).zip(results).collect();
        regions::fold(tagged, self.fuse.top_k)
    }

    /// The report of all results: counts, rate, thresholds. `copies_filled`:
    /// the results' corpus copies are set already.
    fn report(
        &self,
        mut results: Vec<QueryResult>,
        skipped: Vec<Skipped>,
        copies_filled: bool,
    ) -> CheckReport {
        let index = self.index;
        if !copies_filled {
            fill_corpus_copies(index, &mut results);
        }
        let thresholds = Thresholds::of_check(
            self.fuse.verify,
            self.opts.embed,
            Some(crate::descriptors::embedding::model_label()),
            &self.fuse.calibration,
            fusion::keypoint_routes(
                index,
                fusion::keypoint_search(index, self.fuse.keypoint_scan),
            ),
        );
        CheckReport::new(
            path_text(index.dir()),
            index.live_count(),
            self.opts.engine.label(),
            thresholds,
            skipped,
            results,
        )
    }
}

//! `lookalike index`: walk a folder, describe new or changed images on an
//! engine, append them to the index in crash-safe commits.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use std::sync::Arc;

use indicatif::ProgressBar;

use super::deferred::{apply, gather, Slots};
use crate::descriptors::{self, Descriptors};
use crate::engine::{Deferred, Engine, InFlight};
use crate::error::IndexError;
use crate::index::reader::path_to_bytes;
use crate::index::{flags, IndexSettings, IndexWriter};
use crate::ingest::walk::WalkItem;
use crate::ingest::{
    process_batch, DecodeMode, FailureKind, Limits, Outcome, Processed, Skipped, Walker, BATCH,
};

/// How `index` runs.
#[derive(Clone)]
pub struct BuildOptions {
    /// How images are decoded (recorded in the index; queries follow it).
    pub mode: DecodeMode,
    /// Size limits; files over them are skipped (and retried next run).
    pub limits: Limits,
    /// Record files that disappeared from the folder as removed.
    pub prune: bool,
    /// Describes the images. Same descriptors on every engine.
    pub engine: Arc<dyn Engine>,
    /// Optional descriptors: the learned embedding (off: `--hash-only`) and
    /// keypoints (off: `--no-keypoints`).
    pub extras: descriptors::Extras,
    /// Files read, decoded and described per batch ([`BATCH`] by default;
    /// tests use small batches to exercise the pipeline).
    pub batch_size: usize,
    /// Commit a segment every this many records (None: the writer's
    /// default, 50 000; it also commits every 30 s).
    pub commit_every: Option<usize>,
}

impl BuildOptions {
    /// The defaults of `lookalike index`: fast decode at 512 px, default
    /// limits, pruning, CPU engine, hashes and keypoints (no embedding).
    pub fn new() -> BuildOptions {
        BuildOptions {
            mode: DecodeMode::Fast,
            limits: Limits::default(),
            prune: true,
            engine: Arc::new(crate::engine::CpuEngine),
            extras: descriptors::Extras::HASHES_AND_KEYPOINTS,
            batch_size: BATCH,
            commit_every: None,
        }
    }

    /// What this run would record in the index (see [`IndexSettings`]).
    pub fn settings(&self) -> IndexSettings {
        IndexSettings {
            decode: self.mode.label(&self.limits),
            embedding: self
                .extras
                .embedding
                .then(crate::descriptors::embedding::model_label),
            keypoints: self.extras.keypoints,
        }
    }
}

/// Builds or updates the index in `dir` (created if missing) from the images
/// under `root`: the library's whole `lookalike index`. The index's
/// compatibility policy decides first (a run with another decode setting or
/// embedding model is refused; an existing index keeps its keypoint
/// setting); then new and changed files are described and committed, and
/// `skipped.tsv` lists the files that failed; segments are merged by the
/// default policy (`index::merge`). The summary counts what was
/// done, with `live_records` after the run.
///
/// ```no_run
/// use lookalike::pipeline::{update, BuildOptions};
/// let opts = BuildOptions::new();
/// let progress = indicatif::ProgressBar::hidden();
/// let stats = update("indexes/mymodel".as_ref(), "data/train".as_ref(), &opts, &progress)?;
/// println!("{} described, {} skipped", stats.described, stats.skipped.len());
/// # Ok::<(), lookalike::error::IndexError>(())
/// ```
pub fn update(
    dir: &Path,
    root: &Path,
    opts: &BuildOptions,
    progress: &ProgressBar,
) -> Result<BuildStats, IndexError> {
    let mut writer = IndexWriter::open(dir)?;
    if let Some(n) = opts.commit_every {
        writer.flush_records = n;
    }
    let keypoints = writer.apply_settings(&opts.settings())?;
    let opts = BuildOptions {
        extras: descriptors::Extras {
            keypoints,
            ..opts.extras
        },
        ..opts.clone()
    };
    let mut stats = build(&mut writer, root, &opts, progress)?;
    // Keeps the segment count logarithmic in the index size (see index::merge).
    writer.merge(&crate::index::merge::MergePolicy::default())?;
    drop(writer);
    stats.live_records = crate::index::Index::open(dir)?.live_count() as u64;
    crate::index::skipped::write(dir, &stats.skipped)?;
    Ok(stats)
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions::new()
    }
}

/// What a `build` did: counts, failures and speed (`index --json` prints it).
#[derive(Debug, Default, serde::Serialize)]
pub struct BuildStats {
    /// The folder indexed (canonical path).
    pub root: String,
    /// Image files found.
    pub seen: u64,
    /// Files unchanged since the last run (not read).
    pub unchanged: u64,
    /// Files decoded and described.
    pub described: u64,
    /// Files with the same bytes as an indexed file (descriptors copied).
    pub duplicates: u64,
    /// Files that disappeared, recorded as removed.
    pub removed: u64,
    /// Files that are not images by their extension.
    pub not_images: u64,
    /// Files that could not be indexed, and why.
    pub skipped: Vec<Skipped>,
    /// Unchanged files whose own bytes failed before and were not retried.
    pub previously_failed: u64,
    /// Wall time.
    pub seconds: f64,
    /// (described + duplicates) / seconds.
    pub images_per_second: f64,
    /// Searchable images in the index after the run.
    pub live_records: u64,
}

/// Indexes the images under `root` into `writer`: new and changed files are
/// described, unchanged ones skipped, vanished ones marked removed (with
/// `prune`); committed as it goes and at the end.
pub fn build(
    writer: &mut IndexWriter,
    root: &Path,
    opts: &BuildOptions,
    progress: &ProgressBar,
) -> Result<BuildStats, IndexError> {
    let start = Instant::now();
    let root: PathBuf = std::fs::canonicalize(root).map_err(|e| IndexError::io(root, e))?;
    let mut stats = BuildStats {
        root: crate::ingest::names::path_text(&root),
        ..Default::default()
    };
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut walker = Walker::new(&root);
    let batch_size = opts.batch_size.max(1);
    let mut batch = Vec::with_capacity(batch_size);
    let mut in_flight: Option<Pending> = None;
    loop {
        let item = walker.next();
        let end = item.is_none();
        match item {
            Some(WalkItem::Skipped(s)) => stats.skipped.push(s),
            Some(WalkItem::File(e)) => {
                stats.seen += 1;
                let key = path_to_bytes(&e.path);
                // A failure is retried unless it lay in the file's own bytes
                // (a limit, an I/O error or an older build's failure may pass now).
                let unchanged = writer.existing(&key).is_some_and(|r| {
                    r.flags & flags::TOMBSTONE == 0
                        && (r.flags & flags::FAILED == 0 || r.flags & flags::CORRUPT != 0)
                        && r.size == e.size
                        && r.mtime_ns == e.mtime_ns
                });
                if unchanged {
                    stats.unchanged += 1;
                    if writer
                        .existing(&key)
                        .is_some_and(|r| r.flags & flags::FAILED != 0)
                    {
                        stats.previously_failed += 1;
                    }
                    progress.inc(1);
                } else {
                    batch.push(e);
                }
                seen.insert(key);
            }
            None => {}
        }
        if batch.len() >= batch_size || (end && !batch.is_empty()) {
            // With a GPU, batch N runs there while batch N+1 is read and
            // decoded here (double buffering); records stay in walk order.
            let next = run_batch(writer, std::mem::take(&mut batch), opts, progress);
            if let Some(prev) = in_flight.take() {
                finish_pending(writer, prev, opts.engine.as_ref(), &mut stats, progress)?;
            }
            if next.in_flight.is_some() {
                in_flight = Some(next);
            } else {
                finish_pending(writer, next, opts.engine.as_ref(), &mut stats, progress)?;
            }
            writer.maybe_commit()?;
        }
        if end {
            if let Some(prev) = in_flight.take() {
                finish_pending(writer, prev, opts.engine.as_ref(), &mut stats, progress)?;
            }
            break;
        }
    }
    stats.not_images = walker.not_images;
    if opts.prune {
        let root_bytes = path_to_bytes(&root);
        let gone: Vec<Vec<u8>> = writer
            .known_paths()
            .filter(|p| p.starts_with(&root_bytes) && !seen.contains(*p))
            .map(|p| p.to_vec())
            .collect();
        for p in gone {
            writer.add(&p, 0, 0, 0, flags::TOMBSTONE, &Descriptors::default());
            stats.removed += 1;
        }
    }
    writer.commit()?;
    stats.seconds = start.elapsed().as_secs_f64();
    stats.images_per_second = (stats.described + stats.duplicates) as f64 / stats.seconds.max(1e-9);
    Ok(stats)
}

/// A batch whose kept pixels are being described by the engine.
struct Pending {
    results: Vec<Processed<Deferred<Descriptors>>>,
    slots: Slots,
    in_flight: Option<InFlight>,
    /// Files of the batch the progress bar has not counted yet.
    n: u64,
}

/// Reads and decodes a batch on the CPU workers. The CPU engine describes
/// each image there; pixels the engine kept (the GPU) are submitted as one
/// batch, and the call returns at once (`finish_pending` collects them).
fn run_batch(
    writer: &IndexWriter,
    entries: Vec<crate::ingest::FileEntry>,
    opts: &BuildOptions,
    progress: &ProgressBar,
) -> Pending {
    let n = entries.len() as u64;
    let engine = opts.engine.as_ref();
    // The bar moves per image as it is decoded and described, not only
    // when a batch is recorded; the rest is counted then.
    let counted = std::sync::atomic::AtomicU64::new(0);
    let results = process_batch(
        entries,
        opts.mode,
        &opts.limits,
        |h| writer.by_content(h).map(Deferred::Ready),
        |d| {
            let r = engine.prepare_index(&d.rgb, opts.extras);
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            progress.inc(1);
            r
        },
    );
    let n = n - counted.into_inner().min(n);
    let (imgs, slots) = gather(&results);
    let in_flight = (!imgs.is_empty()).then(|| engine.submit_index(&imgs, opts.extras));
    Pending {
        results,
        slots,
        in_flight,
        n,
    }
}

/// Waits for a batch's GPU work and records it. A file whose bytes equal a
/// file recorded meanwhile (an earlier batch still in flight when this one
/// was read) is recorded as a duplicate, exactly as a sequential run would.
fn finish_pending(
    writer: &mut IndexWriter,
    p: Pending,
    engine: &dyn Engine,
    stats: &mut BuildStats,
    progress: &ProgressBar,
) -> Result<(), IndexError> {
    let described = match p.in_flight {
        Some(f) => engine.finish_index(f).map_err(IndexError::Engine)?,
        None => Vec::new(),
    };
    let results = apply(p.results, &p.slots, &described);
    for p in results {
        let key = path_to_bytes(&p.entry.path);
        let outcome = match p.outcome {
            Outcome::Done(_) if writer.by_content(p.content_hash).is_some() => {
                Outcome::Duplicate(writer.by_content(p.content_hash).unwrap())
            }
            o => o,
        };
        match outcome {
            Outcome::Done(d) => {
                stats.described += 1;
                writer.add(&key, p.entry.size, p.entry.mtime_ns, p.content_hash, 0, &d);
            }
            Outcome::Duplicate(d) => {
                stats.duplicates += 1;
                writer.add(
                    &key,
                    p.entry.size,
                    p.entry.mtime_ns,
                    p.content_hash,
                    flags::DUPLICATE,
                    &d,
                );
            }
            Outcome::Skipped(failure) => {
                let own_fault = failure.kind == FailureKind::Content;
                writer.add(
                    &key,
                    p.entry.size,
                    p.entry.mtime_ns,
                    p.content_hash,
                    flags::FAILED | if own_fault { flags::CORRUPT } else { 0 },
                    &Descriptors::default(),
                );
                stats.skipped.push(Skipped {
                    path: crate::ingest::names::path_text(&p.entry.path),
                    reason: failure.reason,
                });
            }
        }
    }
    progress.inc(p.n);
    Ok(())
}

//! `lookalike index`: walk a folder, describe new or changed images on an
//! engine, append them to the index in crash-safe commits.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use std::sync::Arc;

use indicatif::ProgressBar;

use super::deferred::{apply, gather, Slots};
use crate::descriptors::{self, Descriptors};
use crate::engine::{Deferred, Engine, InFlight};
use crate::error::IndexError;
use crate::index::manifest::Profile;
use crate::index::reader::path_to_bytes;
use crate::index::{flags, IndexSettings, IndexWriter};
use crate::ingest::shard::ShardEnd;
use crate::ingest::source::{self, Inputs, Visit};
use crate::ingest::{
    process_batch, DecodeMode, FailureKind, FileEntry, Limits, Outcome, Processed, Skipped, BATCH,
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
    /// What each image keeps (`--profile`; None: the index's, or full for
    /// a new one).
    pub profile: Option<Profile>,
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
            profile: None,
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
            profile: self.profile,
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
    update_from(dir, &Inputs::path(root), opts, progress)
}

/// [`update`] from several inputs (see [`build_from`]): folders, WebDataset
/// tar shards, image files, as [`Inputs`] lists them (a brace pattern
/// expanded, a `--files-from` list read).
pub fn update_from(
    dir: &Path,
    inputs: &Inputs,
    opts: &BuildOptions,
    progress: &ProgressBar,
) -> Result<BuildStats, IndexError> {
    let mut writer = IndexWriter::open(dir)?;
    if let Some(n) = opts.commit_every {
        writer.flush_records = n;
    }
    let keypoints = writer.apply_settings(&opts.settings())?;
    if opts.extras.embedding {
        writer.note_embedding_precision(&opts.engine.cnn_precision());
    }
    let opts = BuildOptions {
        extras: descriptors::Extras {
            // A compact index extracts keypoints when it verifies, not now.
            keypoints: keypoints && writer.profile() == Profile::Full,
            ..opts.extras
        },
        ..opts.clone()
    };
    let mut stats = build_from(&mut writer, inputs, &opts, progress)?;
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
    /// The folder or shard indexed (canonical path); with several inputs,
    /// what they were named by (a brace pattern, a list).
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
    build_from(writer, &Inputs::path(root), opts, progress)
}

/// [`build`] over several inputs: folders, tar shards (each image member
/// recorded as `SHARD.tar/MEMBER`) and image files. Records are keyed by
/// canonical path. An unchanged shard (same size and mtime as its record)
/// is skipped unread; a changed one is streamed, its unchanged members not
/// decoded again. Pruning covers the folders and shards named (not single
/// files). A lone input that does not exist is an error; among several it
/// is listed as skipped.
pub fn build_from(
    writer: &mut IndexWriter,
    inputs: &Inputs,
    opts: &BuildOptions,
    progress: &ProgressBar,
) -> Result<BuildStats, IndexError> {
    let start = Instant::now();
    let mut paths = Vec::with_capacity(inputs.paths.len());
    for p in &inputs.paths {
        match std::fs::canonicalize(p) {
            Ok(c) => paths.push(c),
            Err(e) if inputs.paths.len() == 1 => return Err(IndexError::io(p, e)),
            Err(_) => paths.push(p.clone()),
        }
    }
    let root = match paths.as_slice() {
        [one] => crate::ingest::names::path_text(one),
        _ => inputs.label.clone(),
    };
    let canonical = Inputs {
        paths,
        label: inputs.label.clone(),
    };
    let mut b = Builder {
        writer,
        opts,
        progress,
        stats: BuildStats {
            root,
            ..Default::default()
        },
        seen: HashSet::new(),
        scopes: HashSet::new(),
        shards: ShardBook::default(),
        batch: Vec::with_capacity(opts.batch_size.max(1)),
        in_flight: None,
        started: 0,
        done: 0,
    };
    source::visit(&canonical, &opts.limits, &mut b)?;
    b.flush()?;
    if let Some(prev) = b.in_flight.take() {
        b.finish(prev)?;
    }
    let Builder {
        writer,
        mut stats,
        seen,
        scopes,
        shards,
        ..
    } = b;
    if opts.prune {
        let gone: Vec<Vec<u8>> = writer
            .known_paths()
            .filter(|p| {
                prefixes_with_self(p).any(|q| scopes.contains(q))
                    && !seen.contains(*p)
                    && !prefixes_with_self(p).any(|q| shards.kept.contains(q))
            })
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

/// Every prefix of `p` that ends before a `/`, and `p` itself: a folder or
/// shard covers itself and what lies under it.
fn prefixes_with_self(p: &[u8]) -> impl Iterator<Item = &[u8]> {
    (1..p.len())
        .filter(|&i| p[i] == b'/')
        .map(|i| &p[..i])
        .chain(std::iter::once(p))
}

/// What an index run knows about shards.
#[derive(Default)]
struct ShardBook {
    /// Unchanged shards skipped unread: their members count as present.
    kept: HashSet<Vec<u8>>,
    /// Per shard record: (members recorded, members whose bytes failed),
    /// worked out on the first unchanged shard.
    members: Option<HashMap<Vec<u8>, (u64, u64)>>,
    /// Shard records waiting for their members' batches: written once
    /// `done` reaches `after`, so a record never precedes its members.
    waiting: Vec<ShardRecord>,
    /// Shards with a member that failed for a reason of this run (a limit,
    /// an I/O error): they get no record, so the next run reads them again.
    retry: HashSet<Vec<u8>>,
}

struct ShardRecord {
    after: u64,
    key: Vec<u8>,
    size: u64,
    mtime_ns: i64,
    flags: u32,
}

/// Counts the member records of every shard that has a shard record.
fn count_members(writer: &IndexWriter) -> HashMap<Vec<u8>, (u64, u64)> {
    let is_shard = |p: &[u8]| {
        writer
            .existing(p)
            .is_some_and(|r| r.flags & flags::SHARD != 0)
    };
    let mut counts: HashMap<Vec<u8>, (u64, u64)> = writer
        .known_paths()
        .filter(|p| is_shard(p))
        .map(|p| (p.to_vec(), (0, 0)))
        .collect();
    for p in writer.known_paths() {
        let Some(shard) = prefixes_with_self(p)
            .filter(|q| q.len() < p.len())
            .find(|q| counts.contains_key(*q))
        else {
            continue;
        };
        let failed = writer
            .existing(p)
            .is_some_and(|r| r.flags & flags::FAILED != 0);
        if let Some(c) = counts.get_mut(shard) {
            c.0 += 1;
            c.1 += failed as u64;
        }
    }
    counts
}

/// One index run as a [`Visit`]or: files and members go into batches,
/// unchanged ones are counted and skipped.
struct Builder<'a> {
    writer: &'a mut IndexWriter,
    opts: &'a BuildOptions,
    progress: &'a ProgressBar,
    stats: BuildStats,
    seen: HashSet<Vec<u8>>,
    /// Canonical folders and shards named as inputs: what pruning covers.
    scopes: HashSet<Vec<u8>>,
    shards: ShardBook,
    batch: Vec<FileEntry>,
    in_flight: Option<Pending>,
    /// Batches submitted and batches recorded so far.
    started: u64,
    done: u64,
}

impl Builder<'_> {
    /// A failure is retried unless it lay in the file's own bytes (a
    /// limit, an I/O error or an older build's failure may pass now).
    fn unchanged(&self, key: &[u8], e: &FileEntry) -> bool {
        self.writer.existing(key).is_some_and(|r| {
            r.flags & flags::TOMBSTONE == 0
                && (r.flags & flags::FAILED == 0 || r.flags & flags::CORRUPT != 0)
                && r.size == e.size
                && r.mtime_ns == e.mtime_ns
        })
    }

    /// Runs the gathered batch. With a GPU, batch N runs there while batch
    /// N+1 is read and decoded here (double buffering); records stay in
    /// input order.
    fn flush(&mut self) -> Result<(), IndexError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let next = run_batch(
            self.writer,
            std::mem::take(&mut self.batch),
            self.opts,
            self.progress,
        );
        self.started += 1;
        if let Some(prev) = self.in_flight.take() {
            self.finish(prev)?;
        }
        if next.in_flight.is_some() {
            self.in_flight = Some(next);
        } else {
            self.finish(next)?;
        }
        self.writer.maybe_commit()?;
        Ok(())
    }

    fn finish(&mut self, p: Pending) -> Result<(), IndexError> {
        let retry = finish_pending(
            self.writer,
            p,
            self.opts.engine.as_ref(),
            &mut self.stats,
            self.progress,
        )?;
        for path in retry {
            self.shards
                .retry
                .extend(prefixes_with_self(&path).map(<[u8]>::to_vec));
        }
        self.done += 1;
        self.record_shards();
        Ok(())
    }

    /// Writes the shard records whose members are all recorded.
    fn record_shards(&mut self) {
        let done = self.done;
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.shards.waiting)
            .into_iter()
            .partition(|r| r.after <= done);
        self.shards.waiting = wait;
        for r in due {
            if !self.shards.retry.contains(&r.key) {
                let d = Descriptors::default();
                self.writer.add(&r.key, r.size, r.mtime_ns, 0, r.flags, &d);
            }
        }
    }
}

impl Visit for Builder<'_> {
    type Error = IndexError;

    fn file(&mut self, e: FileEntry) -> Result<(), IndexError> {
        self.stats.seen += 1;
        let key = path_to_bytes(&e.path);
        if self.unchanged(&key, &e) {
            self.stats.unchanged += 1;
            if self
                .writer
                .existing(&key)
                .is_some_and(|r| r.flags & flags::FAILED != 0)
            {
                self.stats.previously_failed += 1;
            }
            self.progress.inc(1);
        } else {
            self.batch.push(e);
        }
        self.seen.insert(key);
        if self.batch.len() >= self.opts.batch_size.max(1) {
            self.flush()?;
        }
        Ok(())
    }

    fn skipped(&mut self, s: Skipped) {
        self.stats.skipped.push(s);
    }

    fn folder(&mut self, root: &Path) {
        self.scopes.insert(path_to_bytes(root));
    }

    fn not_images(&mut self, n: u64) {
        self.stats.not_images += n;
    }

    fn shard(&mut self, s: &FileEntry) -> bool {
        let key = path_to_bytes(&s.path);
        self.seen.insert(key.clone());
        let known = self.writer.existing(&key).copied();
        let unchanged = known.is_some_and(|r| {
            r.flags & flags::SHARD != 0
                && r.flags & flags::TOMBSTONE == 0
                && r.size == s.size
                && r.mtime_ns == s.mtime_ns
        });
        if !unchanged {
            return true;
        }
        let writer = &*self.writer;
        let counts = self
            .shards
            .members
            .get_or_insert_with(|| count_members(writer));
        let (members, failed) = counts.get(&key).copied().unwrap_or((0, 0));
        let corrupt = known.is_some_and(|r| r.flags & flags::CORRUPT != 0);
        self.stats.seen += members;
        self.stats.unchanged += members;
        self.stats.previously_failed += failed + corrupt as u64;
        self.progress.inc(members);
        self.shards.kept.insert(key);
        false
    }

    fn member(&mut self, e: &FileEntry) -> bool {
        !self.unchanged(&path_to_bytes(&e.path), e)
    }

    fn shard_done(&mut self, s: &FileEntry, end: &ShardEnd) -> Result<(), IndexError> {
        // A shard that could not be read is retried: no record.
        let corrupt = match &end.error {
            None => false,
            Some(f) if f.kind == FailureKind::Content => true,
            Some(_) => return Ok(()),
        };
        self.shards.waiting.push(ShardRecord {
            after: self.started + !self.batch.is_empty() as u64,
            key: path_to_bytes(&s.path),
            size: s.size,
            mtime_ns: s.mtime_ns,
            flags: flags::FAILED | flags::SHARD | if corrupt { flags::CORRUPT } else { 0 },
        });
        self.record_shards();
        Ok(())
    }
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
    entries: Vec<FileEntry>,
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
/// Returns the paths that failed for a reason of this run (retried later).
fn finish_pending(
    writer: &mut IndexWriter,
    p: Pending,
    engine: &dyn Engine,
    stats: &mut BuildStats,
    progress: &ProgressBar,
) -> Result<Vec<Vec<u8>>, IndexError> {
    let mut retry = Vec::new();
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
                if !own_fault {
                    retry.push(key.clone());
                }
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
    Ok(retry)
}

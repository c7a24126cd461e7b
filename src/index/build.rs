//! `lookalike index`: walk a folder, describe new or changed images, append
//! them to the index in crash-safe commits.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;

use super::reader::path_to_bytes;
use super::{flags, IndexWriter};
use crate::descriptors::{self, Descriptors};
use crate::error::IndexError;
use crate::ingest::walk::WalkItem;
use crate::ingest::{pipeline, DecodeMode, FailureKind, Limits, Outcome, Skipped, Walker};

pub struct BuildOptions {
    pub mode: DecodeMode,
    pub limits: Limits,
    /// Record files that disappeared from the folder as removed.
    pub prune: bool,
    /// Describe on this GPU engine (None: CPU engine). Same descriptors either way.
    pub gpu: Option<std::sync::Arc<crate::gpu::GpuEngine>>,
    /// Optional descriptors: the learned embedding (off: `--hash-only`) and
    /// keypoints (off: `--no-keypoints`).
    pub extras: descriptors::Extras,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct BuildStats {
    pub root: String,
    pub seen: u64,
    pub unchanged: u64,
    pub described: u64,
    pub duplicates: u64,
    pub removed: u64,
    pub not_images: u64,
    pub skipped: Vec<Skipped>,
    /// Unchanged files whose own bytes failed before and were not retried.
    pub previously_failed: u64,
    pub seconds: f64,
    pub images_per_second: f64,
    pub live_records: u64,
}

pub fn build(
    writer: &mut IndexWriter,
    root: &Path,
    opts: &BuildOptions,
    progress: &ProgressBar,
) -> Result<BuildStats, IndexError> {
    let start = Instant::now();
    let root: PathBuf = std::fs::canonicalize(root).map_err(|e| IndexError::io(root, e))?;
    let mut stats = BuildStats {
        root: crate::report::path_text(&root),
        ..Default::default()
    };
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut walker = Walker::new(&root);
    // LOOKALIKE_BATCH: files per batch (tests use small batches to exercise the pipeline).
    let batch_size = std::env::var("LOOKALIKE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(pipeline::BATCH);
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
            let next = run_batch(
                writer,
                std::mem::take(&mut batch),
                opts,
                &mut stats,
                progress,
            )?;
            if let Some(prev) = std::mem::replace(&mut in_flight, next) {
                finish_pending(writer, prev, opts, &mut stats, progress)?;
            }
            writer.maybe_commit()?;
        }
        if end {
            if let Some(prev) = in_flight.take() {
                finish_pending(writer, prev, opts, &mut stats, progress)?;
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

/// A batch whose descriptors are being computed on the GPU.
pub struct Pending {
    results: Vec<crate::ingest::Processed<crate::gpu::ingest::Deferred<Descriptors>>>,
    slots: crate::gpu::ingest::Slots,
    in_flight: Option<crate::gpu::InFlight>,
    n: u64,
}

/// Decodes a batch on the CPU and, with a GPU engine, submits its pixels and
/// returns at once (`finish_pending` collects them); without one, describes
/// on the CPU and records it right away.
fn run_batch(
    writer: &mut IndexWriter,
    entries: Vec<crate::ingest::FileEntry>,
    opts: &BuildOptions,
    stats: &mut BuildStats,
    progress: &ProgressBar,
) -> Result<Option<Pending>, IndexError> {
    use crate::gpu::ingest::{gather, Deferred};
    let n = entries.len() as u64;
    let results = pipeline::process_batch(
        entries,
        opts.mode,
        &opts.limits,
        |h| writer.by_content(h).map(Deferred::Ready),
        |d| match &opts.gpu {
            Some(_) => Deferred::Pixels(std::sync::Arc::new(d.rgb.clone())),
            None => Deferred::Ready(descriptors::describe_with(&d.rgb, opts.extras)),
        },
    );
    let (imgs, slots) = gather(&results);
    let in_flight = match (&opts.gpu, imgs.is_empty()) {
        (Some(g), false) => Some(g.submit_index(&imgs, opts.extras)),
        _ => None,
    };
    let pending = Pending {
        results,
        slots,
        in_flight,
        n,
    };
    if opts.gpu.is_some() {
        return Ok(Some(pending));
    }
    finish_pending(writer, pending, opts, stats, progress)?;
    Ok(None)
}

/// Waits for a batch's GPU work and records it. A file whose bytes equal a
/// file recorded meanwhile (an earlier batch still in flight when this one
/// was read) is recorded as a duplicate, exactly as a sequential run would.
pub fn finish_pending(
    writer: &mut IndexWriter,
    p: Pending,
    opts: &BuildOptions,
    stats: &mut BuildStats,
    progress: &ProgressBar,
) -> Result<(), IndexError> {
    let described = match (p.in_flight, &opts.gpu) {
        (Some(f), Some(g)) => g.finish_index_batch(f),
        _ => Vec::new(),
    };
    let results = crate::gpu::ingest::apply(p.results, &p.slots, &described);
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
                    path: crate::report::path_text(&p.entry.path),
                    reason: failure.reason,
                });
            }
        }
    }
    progress.inc(p.n);
    Ok(())
}

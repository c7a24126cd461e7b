//! The open index and its hot reload. `index` commits by renaming a new
//! `MANIFEST.json` over the old one after its segments are written, so a
//! changed manifest file (inode, size or mtime) is the cheap signal; the
//! index is then opened on the blocking pool and swapped in as a whole.
//! Requests hold the snapshot they started with (an `Arc`), so none is
//! dropped or sees half an index.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};

use super::Config;
use crate::index::Index;
use crate::ingest::decode::FAST_MIN_SIDE;
use crate::ingest::{DecodeMode, Limits};
use crate::pipeline::CheckOptions;

/// One generation of the index, with the check options resolved for it.
pub struct Snapshot {
    /// The open index.
    pub index: Index,
    /// Its manifest's generation.
    pub generation: u64,
    /// Check options of a default request (top 10, verified, embeddings
    /// when the index has this process's model's).
    pub opts: CheckOptions,
}

/// Identity of the manifest file as last seen: it changes on every commit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

fn stamp(dir: &Path) -> Option<Stamp> {
    let md = std::fs::metadata(dir.join(crate::index::manifest::FILE)).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&md);
    #[cfg(not(unix))]
    let ino = 0;
    Some(Stamp {
        ino,
        len: md.len(),
        mtime: md.modified().ok(),
    })
}

/// The index being served, replaced when a new generation is committed.
pub struct IndexHandle {
    dir: PathBuf,
    config: Config,
    current: RwLock<Arc<Snapshot>>,
    seen: Mutex<Option<Stamp>>,
}

impl IndexHandle {
    /// Opens the index in `config.index_dir`. `Err`: missing, invalid, or
    /// holding embeddings of another model than this process embeds with.
    pub fn open(config: Config) -> Result<IndexHandle> {
        let dir = config.index_dir.clone();
        let seen = stamp(&dir);
        let snap = load(&dir, &config)?;
        Ok(IndexHandle {
            dir,
            config,
            current: RwLock::new(Arc::new(snap)),
            seen: Mutex::new(seen),
        })
    }

    /// The snapshot new requests use.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reopens the index if its manifest changed since last seen and holds
    /// a new generation. `Ok(Some(generation))` when swapped. Blocking.
    pub fn refresh(&self) -> Result<Option<u64>> {
        let now = stamp(&self.dir);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if now == *seen {
                return Ok(None);
            }
            *seen = now;
        }
        let snap = load(&self.dir, &self.config)?;
        if snap.generation == self.current().generation {
            return Ok(None);
        }
        let generation = snap.generation;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snap);
        Ok(Some(generation))
    }
}

/// Opens the index in `dir` and resolves the default check options for it.
fn load(dir: &Path, config: &Config) -> Result<Snapshot> {
    let index = Index::open(dir)?;
    let model = crate::descriptors::embedding::model_label();
    if let Some(m) = index.embedding_model() {
        if m != model {
            bail!(
                "index {} holds embeddings of {m}, this process embeds with {model}: queries would not \
                 be comparable (pass the index's model with --model PATH, or rebuild the index)",
                dir.display()
            );
        }
    }
    let recorded = index
        .manifest()
        .decode
        .as_deref()
        .and_then(DecodeMode::parse_label);
    let (mode, side) = config
        .decode
        .or(recorded)
        .unwrap_or((DecodeMode::Fast, FAST_MIN_SIDE));
    let limits = Limits {
        max_bytes: config.max_bytes,
        max_pixels: config.max_pixels,
        fast_min_side: side,
    };
    let opts = CheckOptions {
        embed: index.embedding_model().is_some(),
        engine: config.engine.clone(),
        ann_min_rows: config.ann_min_rows,
        kernel: config.kernel,
        regions: config.regions,
        ..CheckOptions::new(mode, limits)
    };
    Ok(Snapshot {
        generation: index.manifest().generation,
        index,
        opts,
    })
}

/// Looks at the manifest every `every` and swaps in new generations until
/// the task is dropped. A failed reload keeps the old index (said on stderr).
pub async fn watch(handle: Arc<IndexHandle>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let h = handle.clone();
        match tokio::task::spawn_blocking(move || h.refresh()).await {
            Ok(Ok(Some(g))) => {
                let snap = handle.current();
                eprintln!(
                    "lookalike serve: index reloaded: generation {g}, {} images",
                    snap.index.live_count()
                );
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => eprintln!("lookalike serve: reload failed, serving the old index: {e:#}"),
            Err(e) => eprintln!("lookalike serve: reload failed: {e}"),
        }
    }
}

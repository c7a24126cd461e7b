//! `lookalike compact`: merge every segment of an index into one.

use std::path::Path;

use crate::error::IndexError;
use crate::index::merge::StopAt;
use crate::index::{Index, IndexWriter};

/// What a compaction did (`compact --json` prints it).
#[derive(Debug, Default, serde::Serialize)]
pub struct CompactStats {
    /// Segments before.
    pub segments_before: usize,
    /// Segments after (1, or 0 for an empty index).
    pub segments_after: usize,
    /// Records before (superseded and removed ones included).
    pub records_before: u64,
    /// Records after: one per path, removed files dropped.
    pub records_after: u64,
    /// Searchable images (unchanged by compaction).
    pub live_images: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Merges all segments of the index in `dir` into one, under the writer's
/// lock and crash-safely (see [`IndexWriter::compact`]). `stop` ends it
/// early as a crash would (tests only; the CLI passes None).
pub fn compact(dir: &Path, stop: Option<StopAt>) -> Result<CompactStats, IndexError> {
    let start = std::time::Instant::now();
    if !dir.join(crate::index::manifest::FILE).exists() {
        return Err(IndexError::Missing(dir.to_path_buf()));
    }
    let mut writer = IndexWriter::open(dir)?;
    let segments_before = writer.segment_count();
    let records_before = writer.committed_records();
    writer.compact(stop)?;
    let (segments_after, records_after) = (writer.segment_count(), writer.committed_records());
    drop(writer);
    Ok(CompactStats {
        segments_before,
        segments_after,
        records_before,
        records_after,
        live_images: Index::open(dir)?.live_count() as u64,
        seconds: start.elapsed().as_secs_f64(),
    })
}

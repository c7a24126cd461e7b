//! Segment merging: the tiered policy that picks which segments to merge,
//! and the writing of one merged segment from the mapped sources.
//!
//! **Policy** (size-tiered, as Lucene's and tantivy's merge policies): a
//! segment of `n` records is in tier 0 when `n ≤ floor_records`, else in the
//! smallest tier `t` with `n ≤ floor_records · segments_per_tier^t`. When
//! `segments_per_tier` (4) or more *adjacent* segments share a tier, they are
//! merged into one, which lands about one tier up; this repeats until no tier
//! has that many. A merge whose result would exceed `max_merged_records` is
//! left to `lookalike compact`. Segments must be adjacent because a later
//! segment's record for a path supersedes an earlier one: merging a run in
//! place keeps that order. Each record is thus rewritten about
//! log₄(records / floor) times, and an index holds at most
//! `segments_per_tier − 1` segments per tier: 20 small runs leave ≤ 3.
//!
//! **Merged segment**: the rows of the run that are the latest for their
//! path within it, in their old order (so ties between equal distances
//! still go to the earlier record); removed-file records are dropped too
//! when the run starts the index (nothing earlier for them to hide).
//! Column data is copied, never recomputed; the projection, codes, HNSW
//! graph and PDQ table are built over the merged rows. A compact index
//! has no embedding.col to copy: its rows are rebuilt from their codes
//! (`Projection::reconstruct`) into a scratch embedding.col that the new
//! projection is fitted on and that is deleted before the segment is
//! published. A row of a source segment of at most 256 rows is then kept
//! exactly (int8 rounding aside); a larger one loses what its axes missed.

use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;

use super::column::{Column, ColumnWriter, Count};
use super::flags;
use super::keypoint_table;
use super::manifest::{segment_dir_name, Profile, SegmentInfo};
use super::mih;
use super::projection;
use super::reader::{latest_records, RecordRef};
use super::segment::{publish, FileRecord, Segment, COLUMNS};
use super::whitening;
use crate::descriptors::{Embedding, Hash256, IndexKeypoints};
use crate::error::IndexError;

/// When segments are merged automatically (after `index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergePolicy {
    /// Merge when this many adjacent segments share a tier; also the size
    /// ratio between tiers.
    pub segments_per_tier: usize,
    /// Segments of at most this many records are all in tier 0.
    pub floor_records: u64,
    /// No automatic merge makes a segment larger than this.
    pub max_merged_records: u64,
}

impl Default for MergePolicy {
    fn default() -> Self {
        MergePolicy {
            segments_per_tier: 4,
            floor_records: 1_000,
            max_merged_records: 5_000_000,
        }
    }
}

impl MergePolicy {
    /// The tier of a segment of `records` records.
    pub fn tier(&self, records: u64) -> u32 {
        let f = self.segments_per_tier.max(2) as u64;
        let mut cap = self.floor_records.max(1);
        let mut t = 0;
        while records > cap {
            cap = cap.saturating_mul(f);
            t += 1;
        }
        t
    }

    /// The next run of segments (positions in the manifest) to merge, given
    /// their record counts, oldest first: the oldest run of at least
    /// `segments_per_tier` adjacent segments of one tier, shortened from its
    /// newest end while it is over `max_merged_records`.
    pub fn plan(&self, sizes: &[u64]) -> Option<Range<usize>> {
        let need = self.segments_per_tier.max(2);
        let mut start = 0;
        while start < sizes.len() {
            let t = self.tier(sizes[start]);
            let mut end = start + 1;
            while end < sizes.len() && self.tier(sizes[end]) == t {
                end += 1;
            }
            let mut run = start..end;
            while run.len() >= need
                && sizes[run.clone()].iter().sum::<u64>() > self.max_merged_records
            {
                run.end -= 1;
            }
            if run.len() >= need {
                return Some(run);
            }
            start = end;
        }
        None
    }
}

/// Where a merge stops on purpose, as if the process died there: tests use
/// it to prove that a crash at either point loses nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAt {
    /// The merged segment is written and fsynced, the manifest not committed.
    SegmentWritten,
    /// The manifest naming the merged segment is committed, the old
    /// segments' folders not yet removed.
    ManifestCommitted,
}

/// Writes the merged segment `id` of `sources` (adjacent segments, oldest
/// first) into the index folder: every file fsynced, renamed into place,
/// not yet named by any manifest. `first`: the run starts the index, so
/// records of removed files are dropped. None when no row is left.
pub(crate) fn write_merged(
    index_dir: &Path,
    sources: &[Segment],
    first: bool,
    id: u64,
    profile: Profile,
) -> Result<Option<SegmentInfo>, IndexError> {
    let mut kept: Vec<RecordRef> = latest_records(sources)
        .into_values()
        .filter(|r| {
            let f = sources[r.seg as usize].files()[r.row as usize].flags;
            !(first && f & flags::TOMBSTONE != 0)
        })
        .collect();
    if kept.is_empty() {
        return Ok(None);
    }
    kept.sort_unstable();
    let name = segment_dir_name(id);
    let (tmp, final_dir) = (index_dir.join(format!("{name}.tmp")), index_dir.join(&name));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
    let rows = kept.len() as u64;

    // files.col with the paths' new offsets, and paths.col.
    let mut files = ColumnWriter::create(&tmp.join(COLUMNS[0].0), COLUMNS[0].1, COLUMNS[0].2)?;
    let mut paths = ColumnWriter::create(&tmp.join(COLUMNS[1].0), COLUMNS[1].1, 1)?;
    let mut off = 0u64;
    for r in &kept {
        let s = &sources[r.seg as usize];
        let p = s.path_bytes(r.row as usize);
        let f = FileRecord {
            path_off: off,
            ..s.files()[r.row as usize]
        };
        files.write(bytemuck::bytes_of(&f))?;
        paths.write(p)?;
        off += p.len() as u64;
    }
    files.finish()?;
    paths.finish()?;

    let row = |r: &RecordRef| r.row as usize;
    let src = |r: &RecordRef| &sources[r.seg as usize];
    copy(
        &tmp,
        2,
        &kept,
        |r| Some(bytemuck::bytes_of(&src(r).pdq()[row(r)])),
        &[],
    )?;
    copy(
        &tmp,
        3,
        &kept,
        |r| Some(&src(r).quality()[row(r)..row(r) + 1]),
        &[],
    )?;
    copy(
        &tmp,
        4,
        &kept,
        |r| Some(bytemuck::bytes_of(&src(r).phash()[row(r)])),
        &[],
    )?;
    copy(
        &tmp,
        5,
        &kept,
        |r| Some(bytemuck::bytes_of(&src(r).pdq_trim()[row(r)])),
        &[],
    )?;
    // Optional columns: written as the segment writer would, only when some
    // kept row has content; rows from sources without one get the default.
    let kp = |r: &RecordRef| src(r).keypoints().map(|k| &k[row(r)]);
    let has_keypoints = kept
        .iter()
        .any(|r| kp(r).is_some_and(|k| !k.points().is_empty()));
    if has_keypoints {
        let none = IndexKeypoints::default();
        copy(
            &tmp,
            6,
            &kept,
            |r| kp(r).map(bytemuck::bytes_of),
            bytemuck::bytes_of(&none),
        )?;
    }
    // embedding.col from each kept row's embedding: stored, or in a
    // compact index rebuilt from its code (in parallel, a block at a time:
    // bounded memory). The projection, codes and graph are fitted on it; a
    // compact index keeps only those, so there it is scratch, deleted
    // before the segment is published.
    let emb = |r: &RecordRef| src(r).embedding(row(r));
    if kept.iter().any(|r| emb(r).is_some()) {
        let (file, name, width) = COLUMNS[7];
        let path = tmp.join(file);
        let mut w = ColumnWriter::create(&path, name, width)?;
        for block in kept.chunks(4096) {
            let rows: Vec<Embedding> = block
                .par_iter()
                .map(|r| emb(r).unwrap_or_default())
                .collect();
            w.write(bytemuck::cast_slice(&rows))?;
        }
        w.finish()?;
        let col = open_written(&tmp, 7, rows)?;
        projection::write_search_columns(&tmp, col.cast::<Embedding>())?;
        if profile != Profile::Compact {
            whitening::write(&tmp, col.cast::<Embedding>())?;
        }
        drop(col);
        if profile == Profile::Compact {
            std::fs::remove_file(&path).map_err(|e| IndexError::io(&path, e))?;
        }
    }
    let (f, p, t) = (
        open_written(&tmp, 0, rows)?,
        open_written(&tmp, 2, rows)?,
        open_written(&tmp, 5, rows)?,
    );
    mih::write(
        &tmp,
        mih::CURRENT,
        f.cast::<FileRecord>(),
        p.cast::<Hash256>(),
        t.cast::<Hash256>(),
    )?;
    drop((p, t));
    if has_keypoints {
        let k = open_written(&tmp, 6, rows)?;
        keypoint_table::write(&tmp, f.cast::<FileRecord>(), k.cast::<IndexKeypoints>())?;
    }
    drop(f);
    publish(index_dir, &tmp, &final_dir)?;
    Ok(Some(SegmentInfo {
        id,
        records: rows,
        path_bytes: off,
    }))
}

/// Writes column `COLUMNS[i]` of the merged rows: each row's bytes from
/// `get`, or `default` where its source lacks the column.
fn copy<'a>(
    dir: &Path,
    i: usize,
    kept: &[RecordRef],
    get: impl Fn(&RecordRef) -> Option<&'a [u8]>,
    default: &[u8],
) -> Result<(), IndexError> {
    let (file, name, width) = COLUMNS[i];
    let mut w = ColumnWriter::create(&dir.join(file), name, width)?;
    for r in kept {
        w.write(get(r).unwrap_or(default))?;
    }
    w.finish()
}

/// Maps a column just written (validated like any other) to build from it.
fn open_written(dir: &Path, i: usize, rows: u64) -> Result<Column, IndexError> {
    let (file, name, width) = COLUMNS[i];
    Column::open(&dir.join(file), name, width, Count::Exactly(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_grow_by_the_factor() {
        let p = MergePolicy::default();
        assert_eq!(p.tier(0), 0);
        assert_eq!(p.tier(1_000), 0);
        assert_eq!(p.tier(1_001), 1);
        assert_eq!(p.tier(4_000), 1);
        assert_eq!(p.tier(4_001), 2);
    }

    #[test]
    fn plan_merges_the_oldest_full_tier_of_adjacent_segments() {
        let p = MergePolicy::default();
        assert_eq!(p.plan(&[5, 5, 5]), None);
        assert_eq!(p.plan(&[5, 5, 5, 5]), Some(0..4));
        assert_eq!(p.plan(&[3_000, 5, 5, 5, 5, 5]), Some(1..6));
        // Not adjacent: a tier-1 segment between them.
        assert_eq!(p.plan(&[5, 5, 3_000, 5, 5]), None);
        let small = MergePolicy {
            max_merged_records: 12,
            ..p
        };
        assert_eq!(small.plan(&[5, 5, 5, 5]), None);
        assert_eq!(small.plan(&[3, 3, 3, 3, 3]), Some(0..4));
    }

    #[test]
    fn twenty_small_commits_leave_at_most_three_segments() {
        let p = MergePolicy::default();
        let mut sizes: Vec<u64> = vec![];
        for _ in 0..20 {
            sizes.push(5);
            while let Some(r) = p.plan(&sizes) {
                let sum = sizes[r.clone()].iter().sum();
                sizes.splice(r, [sum]);
            }
            assert!(sizes.len() < 4, "{sizes:?}");
        }
    }
}

//! The keypoint shortlist: the records sharing the most tentative keypoint
//! matches with the query, which fusion verifies beside the PDQ and
//! embedding candidates. Up to `KEYPOINT_SCAN_LIMIT` live records every
//! record is compared with the query (brute-force Hamming over 128
//! keypoints each); above, each segment's keypoint table
//! (`index::keypoint_table`) proposes the [`TABLE_RERANK`] rows with the most
//! votes and only those are compared.

use std::collections::HashMap;

use rayon::prelude::*;

use super::fusion::VERIFY_KEYPOINT;
use super::verify;
use crate::descriptors::keypoints::KeyPoint;
use crate::descriptors::QueryDescriptors;
use crate::index::keypoint_table::KeypointTable;
use crate::index::{Index, RecordRef};

/// Records up to which the keypoint shortlist scans the whole index.
pub const KEYPOINT_SCAN_LIMIT: usize = 20_000;
/// A shortlist entry needs at least this many tentative keypoint matches.
const MIN_TENTATIVE: u32 = 5;

/// Records the keypoint table proposes per segment for the exact
/// tentative count (about 10 µs each).
pub const TABLE_RERANK: usize = 128;
/// A table bucket holding more than this many times the mean bucket's
/// entries (a block value most descriptors share) casts no votes.
const TABLE_MAX_BUCKET: f64 = 16.0;

/// How the keypoint shortlist finds the records it compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeypointSearch {
    /// No shortlist: no keypoints stored (a compact index reads them back
    /// only to verify), or verification off.
    Off,
    /// Every live record is compared with the query.
    Scan,
    /// Each segment's keypoint table proposes the records compared.
    Table,
}

/// How this index's keypoint shortlist runs: a scan up to `limit` live
/// records, the keypoint tables above.
pub fn keypoint_search(index: &Index, limit: usize) -> KeypointSearch {
    if !keypoints_stored(index) {
        return KeypointSearch::Off;
    }
    keypoint_search_for(index.live_count(), limit)
}

/// Whether this index gets the exhaustive keypoint scan (at the default
/// limit) rather than its keypoint tables or no shortlist.
pub fn keypoint_scan(index: &Index) -> bool {
    keypoint_search(index, KEYPOINT_SCAN_LIMIT) == KeypointSearch::Scan
}

/// Whether some segment of `index` stores keypoints (what the exhaustive
/// shortlist scans; a compact index has them only for verification).
pub fn keypoints_stored(index: &Index) -> bool {
    index.segments().iter().any(|s| s.keypoints().is_some())
}

/// How the shortlist of an index of `live` records that stores keypoints
/// runs (a fan-out check decides it from the parts' total).
pub fn keypoint_search_for(live: usize, limit: usize) -> KeypointSearch {
    if live <= limit {
        KeypointSearch::Scan
    } else {
        KeypointSearch::Table
    }
}

/// The order of the keypoint shortlist: most tentative matches first, then
/// the earlier record.
pub fn shortlist_order(a: &(u32, RecordRef), b: &(u32, RecordRef)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Tentative keypoint correspondences (query index, record index).
pub type Pairs = Vec<(u16, u16)>;

/// The live records with the most tentative keypoint matches (at least
/// `MIN_TENTATIVE`, at most [`VERIFY_KEYPOINT`], with their counts), and the
/// tentative matches of those and of the live records in `keep`.
pub fn shortlist(
    index: &Index,
    q: &QueryDescriptors,
    parallel: bool,
    keep: &[RecordRef],
    how: KeypointSearch,
) -> (Vec<(u32, RecordRef)>, HashMap<RecordRef, Pairs>) {
    let mut hits: Vec<(u32, RecordRef, Pairs)> = Vec::new();
    for (si, seg) in index.segments().iter().enumerate() {
        let Some(kps) = seg.keypoints() else { continue };
        let live = index.live_mask(si);
        let count = |row: usize| -> Option<(u32, RecordRef, Pairs)> {
            if !live[row] {
                return None;
            }
            let pairs = verify::tentative_head(&q.keypoints, kps[row].points());
            let n = pairs.len() as u32;
            let rec = RecordRef {
                seg: si as u32,
                row: row as u32,
            };
            (n >= MIN_TENTATIVE || keep.contains(&rec)).then_some((n, rec, pairs))
        };
        let rows: Vec<usize> = match how {
            KeypointSearch::Scan => (0..kps.len()).collect(),
            _ => {
                let mut rows = seg
                    .keypoint_table()
                    .map(|t| table_rows(t, &q.keypoints, live))
                    .unwrap_or_default();
                // The PDQ candidates' tentative matches are reused by their
                // verification, found by the table or not.
                rows.extend(
                    keep.iter()
                        .filter(|r| r.seg == si as u32)
                        .map(|r| r.row as usize),
                );
                rows.sort_unstable();
                rows.dedup();
                rows
            }
        };
        if parallel {
            hits.extend(rows.into_par_iter().filter_map(count).collect::<Vec<_>>());
        } else {
            hits.extend(rows.into_iter().filter_map(count));
        }
    }
    hits.sort_by(|a, b| shortlist_order(&(a.0, a.1), &(b.0, b.1)));
    let mut top = Vec::with_capacity(VERIFY_KEYPOINT);
    let mut heads = HashMap::new();
    for (n, r, pairs) in hits {
        let listed = n >= MIN_TENTATIVE && top.len() < VERIFY_KEYPOINT;
        if listed {
            top.push((n, r));
        }
        if listed || keep.contains(&r) {
            heads.insert(r, pairs);
        }
    }
    (top, heads)
}

/// The live rows of one segment with the most keypoint-table votes from the
/// query's shortlist keypoints: at most [`TABLE_RERANK`], each with at least
/// two votes (one is chance at any table size).
fn table_rows(t: &KeypointTable, q: &[KeyPoint], live: &[bool]) -> Vec<usize> {
    let q = &q[..q.len().min(verify::SHORTLIST_QUERY_POINTS)];
    let mut votes = vec![0u16; t.rows()];
    let max_bucket = (TABLE_MAX_BUCKET * t.mean_bucket()) as usize;
    t.vote(q, max_bucket, &mut votes);
    let mut voted: Vec<(u16, usize)> = votes
        .iter()
        .enumerate()
        .filter(|&(r, &v)| v >= 2 && live[r])
        .map(|(r, &v)| (v, r))
        .collect();
    let by_votes = |a: &(u16, usize), b: &(u16, usize)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
    if voted.len() > TABLE_RERANK {
        voted.select_nth_unstable_by(TABLE_RERANK - 1, by_votes);
        voted.truncate(TABLE_RERANK);
    }
    voted.into_iter().map(|(_, r)| r).collect()
}

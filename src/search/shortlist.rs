//! The keypoint shortlist: the records sharing the most tentative keypoint
//! matches with the query, which fusion verifies beside the PDQ and
//! embedding candidates. Each segment's keypoint table
//! (`index::keypoint_table`) proposes the [`TABLE_RERANK`] rows with the most
//! votes and only those are compared with the query. A segment without a
//! table (written by an earlier build) has every record compared
//! (brute-force Hamming over 128 keypoints each) while the index holds at
//! most `KEYPOINT_SCAN_LIMIT` live records, and gets no shortlist above.
//!
//! The tables are used wherever they exist, not only where a scan is too
//! slow: their shortlist holds the expected image more often than the
//! scan's (73.2 against 63.2 % of ../shared/corpus's queries at 1 000
//! images, 71.0 against 55.0 % at 1 M; benches/keypoints.rs), since a
//! scan's top 8 fill with records whose many tentative matches are generic
//! descriptors, and those sit in the crowded buckets that do not vote.

use std::collections::HashMap;

use rayon::prelude::*;

use super::fusion::VERIFY_KEYPOINT;
use super::verify;
use crate::descriptors::keypoints::KeyPoint;
use crate::descriptors::QueryDescriptors;
use crate::index::keypoint_table::KeypointTable;
use crate::index::{Index, RecordRef};

/// Live records up to which segments without a keypoint table are scanned.
pub const KEYPOINT_SCAN_LIMIT: usize = 20_000;
/// A shortlist entry needs at least this many tentative keypoint matches.
const MIN_TENTATIVE: u32 = 5;

/// Records the keypoint table proposes per segment for the exact
/// tentative count (about 10 µs each).
pub const TABLE_RERANK: usize = 128;
/// A table bucket holding more than this many times the mean bucket's
/// entries (a key value most descriptors share) casts no votes.
const TABLE_MAX_BUCKET: f64 = 16.0;

/// How the keypoint shortlist finds the records it compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeypointSearch {
    /// No shortlist: no keypoints stored (a compact index reads them back
    /// only to verify), or verification off.
    Off,
    /// Every live record is compared with the query, tables or not: the
    /// reference the tables are measured against (`LOOKALIKE_KEYPOINT_SCAN=1`).
    Scan,
    /// Each segment's keypoint table proposes the records compared; a
    /// segment without one is scanned when `scan_rest` (the index holds at
    /// most [`KEYPOINT_SCAN_LIMIT`] live records).
    Tables {
        /// Scan the segments without a table.
        scan_rest: bool,
    },
}

/// How this index's keypoint shortlist runs (`scan`: compare every record).
pub fn keypoint_search(index: &Index, scan: bool) -> KeypointSearch {
    if !keypoints_stored(index) {
        return KeypointSearch::Off;
    }
    keypoint_search_for(index.live_count(), scan)
}

/// Whether some segment of `index` stores keypoints (what the shortlist
/// compares; a compact index has them only for verification).
pub fn keypoints_stored(index: &Index) -> bool {
    index.segments().iter().any(|s| s.keypoints().is_some())
}

/// How the shortlist of an index of `live` records that stores keypoints
/// runs (a fan-out check decides it from the parts' total).
pub fn keypoint_search_for(live: usize, scan: bool) -> KeypointSearch {
    match scan {
        true => KeypointSearch::Scan,
        false => KeypointSearch::Tables {
            scan_rest: live <= KEYPOINT_SCAN_LIMIT,
        },
    }
}

/// Which routes a shortlist run `how` takes on `index`, for the report:
/// (some segment scanned, some segment's table voted).
pub fn keypoint_routes(index: &Index, how: KeypointSearch) -> (bool, bool) {
    let segs = || index.segments().iter().filter(|s| s.keypoints().is_some());
    let tabled = segs().any(|s| s.keypoint_table().is_some());
    match how {
        KeypointSearch::Off => (false, false),
        KeypointSearch::Scan => (true, false),
        KeypointSearch::Tables { scan_rest } => (
            scan_rest && segs().any(|s| s.keypoint_table().is_none()),
            tabled,
        ),
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
        let table = seg.keypoint_table();
        let rows: Vec<usize> = match (how, table) {
            (KeypointSearch::Tables { .. }, Some(t)) => {
                let mut rows = table_rows(t, &q.keypoints, live);
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
            (KeypointSearch::Scan, _) | (KeypointSearch::Tables { scan_rest: true }, None) => {
                (0..kps.len()).collect()
            }
            _ => keep
                .iter()
                .filter(|r| r.seg == si as u32)
                .map(|r| r.row as usize)
                .collect(),
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

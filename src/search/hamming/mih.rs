//! Radius search through a segment's PDQ table (`index::mih`): probe every
//! block of the table with each query hash, verify each entry found
//! against the hash that found it, then compute the key of every row that
//! passed exactly as the scan does (every query hash against the upright
//! and, where it differs, the trimmed view; lowest code among equal
//! distances). Exact for radius ≤ `mih::RADIUS`: a row within it is within
//! it of some (query hash, view) pair; that view is an entry of the table,
//! the probes of that query hash read its bucket, and the entry passes.

use rayon::prelude::*;

use super::CODE_BITS;
use crate::descriptors::Hash256;
use crate::index::mih::{self, prefetch, Mih};
use crate::index::segment::Segment;

/// Live rows of `seg` within `radius` (≤ `mih::RADIUS`) of any query hash,
/// as (key, row) with key = distance << 5 | code, ordered by distance then
/// row. `parallel`: the query hashes are spread over all cores.
pub(super) fn radius_keys(
    seg: &Segment,
    table: &Mih,
    live: &[bool],
    q: &[Hash256],
    radius: u32,
    kernel: super::Kernel,
    parallel: bool,
) -> Vec<(u16, u32)> {
    debug_assert!(radius <= mih::RADIUS);
    let (pdq, trim) = (seg.pdq(), seg.pdq_trim());
    let mut rows = if parallel && q.len() > 1 {
        q.par_iter()
            .flat_map_iter(|h| passing_rows(table, std::slice::from_ref(h), pdq, trim, radius))
            .collect()
    } else {
        passing_rows(table, q, pdq, trim, radius)
    };
    rows.sort_unstable();
    rows.dedup();
    rows.retain(|&r| live[r as usize]);
    // Keys by the scan's own kernel on the rows that passed: the same keys
    // by construction.
    let up: Vec<Hash256> = rows.iter().map(|&r| pdq[r as usize]).collect();
    let tr: Vec<Hash256> = rows.iter().map(|&r| trim[r as usize]).collect();
    let trimmed: Vec<u32> = (0..up.len() as u32)
        .filter(|&i| up[i as usize] != tr[i as usize])
        .collect();
    let mut keys = vec![0u16; up.len()];
    super::min_keys_rows(kernel, &up, &tr, &trimmed, 0, q, &mut keys);
    let limit = (radius + 1) << CODE_BITS;
    let mut hits: Vec<(u16, u32)> = keys
        .into_iter()
        .zip(rows)
        .filter(|&(k, _)| (k as u32) < limit)
        .collect();
    hits.sort_unstable_by_key(|&(k, r)| (k >> CODE_BITS, r));
    hits
}

/// How many spans (entries) ahead [`passing_rows`] prefetches their entries
/// (stored hashes).
const PREFETCH_AHEAD: usize = 16;

/// Rows (repeated, unordered) with an entry found by a query hash's probes
/// and within `radius` of that hash.
fn passing_rows(
    table: &Mih,
    q: &[Hash256],
    pdq: &[Hash256],
    trim: &[Hash256],
    radius: u32,
) -> Vec<u32> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has the feature this copy was compiled for.
        return unsafe { passing_rows_popcnt(table, q, pdq, trim, radius) };
    }
    passing_rows_portable(table, q, pdq, trim, radius)
}

/// Without POPCNT, each distance is a dozen instructions per word.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn passing_rows_popcnt(
    table: &Mih,
    q: &[Hash256],
    pdq: &[Hash256],
    trim: &[Hash256],
    radius: u32,
) -> Vec<u32> {
    passing_rows_portable(table, q, pdq, trim, radius)
}

#[inline(always)]
fn passing_rows_portable(
    table: &Mih,
    q: &[Hash256],
    pdq: &[Hash256],
    trim: &[Hash256],
    radius: u32,
) -> Vec<u32> {
    let near = |h: &Hash256, v: &Hash256| h.hamming(v) <= radius;
    // Three passes, each of independent reads (see `Mih::probe`): the
    // buckets' spans, their entries, then each entry's stored hash.
    let mut rows: Vec<u32> = Vec::new();
    let (mut spans, mut entries) = (Vec::new(), Vec::new());
    for h in q {
        spans.clear();
        table.probe(h, &mut spans);
        entries.clear();
        for (i, &s) in spans.iter().enumerate() {
            if let Some(&ahead) = spans.get(i + PREFETCH_AHEAD) {
                prefetch(&table.entries(ahead)[0]);
            }
            entries.extend_from_slice(table.entries(s));
        }
        if table.layout.tagged {
            // One stored hash per entry: the view its tag names.
            let view_of = |e: u32| {
                let r = (e & !mih::TRIMMED_TAG) as usize;
                if e & mih::TRIMMED_TAG != 0 {
                    &trim[r]
                } else {
                    &pdq[r]
                }
            };
            for (i, &e) in entries.iter().enumerate() {
                // Ask for the hash a few entries ahead: the loads are
                // independent, but the out-of-order window alone keeps too
                // few of them in flight.
                if let Some(&ahead) = entries.get(i + PREFETCH_AHEAD) {
                    prefetch(view_of(ahead));
                }
                let r = (e & !mih::TRIMMED_TAG) as usize;
                let view = if e & mih::TRIMMED_TAG != 0 {
                    &trim[r]
                } else {
                    &pdq[r]
                };
                if near(h, view) {
                    rows.push(r as u32);
                }
            }
        } else {
            for &r in &entries {
                if near(h, &pdq[r as usize]) || near(h, &trim[r as usize]) {
                    rows.push(r);
                }
            }
        }
    }
    rows
}

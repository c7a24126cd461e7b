//! Batch search on an engine's Hamming kernel: many queries at once, the
//! same matches in the same order as the per-query CPU scan ([`super::search`]).

use std::collections::HashMap;

use super::hamming::CANDIDATE_TRIMMED;
use super::Match;
use crate::descriptors::{Hash256, QueryDescriptors};
use crate::engine::Engine;
use crate::index::Index;

/// One pass of the batch scan: a segment's hash column, the queries'
/// hashes in 8 orientations, and the variant flags its matches get.
type Run<'a> = (&'a [Hash256], &'a Vec<[Hash256; 8]>, u8);

/// `search` for many queries at once with the engine's Hamming kernel: same
/// matches, same order (distance, then segment and row), same variant codes.
/// The kernel compares 8 query hashes with one column, so it runs once per
/// (query view, candidate view) pair; every record keeps its best (distance,
/// code), which is what the CPU scan picks, and the union of the runs' top-k
/// lists contains the overall top-k. `None`: the engine declined (see
/// [`Engine::hamming_topk`]); the caller scans on the CPU.
pub fn batch_search(
    index: &Index,
    e: &dyn Engine,
    qs: &[&QueryDescriptors],
    top_k: usize,
) -> Option<Vec<Vec<Match>>> {
    let upright: Vec<[Hash256; 8]> = qs.iter().map(|q| q.pdq).collect();
    // Queries without a trimmed view repeat the upright one: same distances,
    // higher codes, so they never win a tie.
    let trimmed: Vec<[Hash256; 8]> = qs.iter().map(|q| q.pdq_trim.unwrap_or(q.pdq)).collect();
    let any_trim = qs.iter().any(|q| q.pdq_trim.is_some());
    let mut all: Vec<Vec<Match>> = vec![Vec::new(); qs.len()];
    for (si, seg) in index.segments().iter().enumerate() {
        let live = index.live_mask(si);
        let mut best: Vec<HashMap<u32, (u16, u8)>> = vec![HashMap::new(); qs.len()];
        // (segment's hashes, the queries' 8 orientations, variant flags)
        let mut runs: Vec<Run> = vec![
            (seg.pdq(), &upright, 0),
            (seg.pdq_trim(), &upright, CANDIDATE_TRIMMED),
        ];
        if any_trim {
            runs.push((seg.pdq(), &trimmed, 8));
            runs.push((seg.pdq_trim(), &trimmed, 8 | CANDIDATE_TRIMMED));
        }
        for (col, queries, flag) in runs {
            for (acc, hits) in best
                .iter_mut()
                .zip(e.hamming_topk(col, live, queries, top_k)?)
            {
                for (row, d, o) in hits {
                    let cand = (d, o | flag);
                    acc.entry(row)
                        .and_modify(|b| *b = (*b).min(cand))
                        .or_insert(cand);
                }
            }
        }
        for (acc, b) in all.iter_mut().zip(best) {
            acc.extend(b.into_iter().map(|(row, (d, code))| Match {
                rec: crate::index::RecordRef {
                    seg: si as u32,
                    row,
                },
                pdq_distance: d as u32,
                variant: code,
                phash_distance: 0,
            }));
        }
    }
    for (ms, q) in all.iter_mut().zip(qs) {
        ms.sort_by_key(|m| (m.pdq_distance, m.rec));
        ms.truncate(top_k);
        for m in ms.iter_mut() {
            let ph = index.segments()[m.rec.seg as usize].phash()[m.rec.row as usize];
            m.phash_distance = (ph ^ q.phash).count_ones();
        }
    }
    Some(all)
}

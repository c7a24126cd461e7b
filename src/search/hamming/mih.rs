//! Radius search through a segment's multi-index hash table
//! (`index::mih`): probe every block with each query hash's value and its
//! one-bit flips, then verify the union of candidate rows by full distance,
//! computing each row's key exactly as the scan does (every query hash
//! against the upright and, where it differs, the trimmed view; lowest
//! code among equal distances). Exact for radius ≤ `mih::RADIUS`: a row
//! within it is within it of some (query hash, view) pair, and that pair
//! agrees to one bit on some block, which the probes read.

use super::CODE_BITS;
use crate::descriptors::Hash256;
use crate::index::mih::{self, Mih};
use crate::index::segment::Segment;

/// Live rows of `seg` within `radius` (≤ `mih::RADIUS`) of any query hash,
/// as (key, row) with key = distance << 5 | code, ordered by distance then
/// row.
pub(super) fn radius_keys(
    seg: &Segment,
    table: &Mih,
    live: &[bool],
    q: &[Hash256],
    radius: u32,
    kernel: super::Kernel,
) -> Vec<(u16, u32)> {
    debug_assert!(radius <= mih::RADIUS);
    let mut cands: Vec<u32> = Vec::new();
    for h in q {
        for j in 0..mih::BLOCKS {
            table.probe(j, mih::block(h, j), |rows| cands.extend_from_slice(rows));
        }
    }
    let n = seg.len();
    // Many candidates: a bitmap dedups in one pass and visits rows in order.
    if cands.len() > n / 32 {
        let mut bits = vec![0u64; n.div_ceil(64)];
        for &r in &cands {
            bits[r as usize / 64] |= 1 << (r % 64);
        }
        cands.clear();
        for (w, &b) in bits.iter().enumerate() {
            let mut b = b;
            while b != 0 {
                cands.push((w * 64) as u32 + b.trailing_zeros());
                b &= b - 1;
            }
        }
    } else {
        cands.sort_unstable();
        cands.dedup();
    }
    // Verify with the scan's own kernel on the gathered candidate rows:
    // the same keys by construction.
    cands.retain(|&r| live[r as usize]);
    let (pdq, trim) = (seg.pdq(), seg.pdq_trim());
    let up: Vec<Hash256> = cands.iter().map(|&r| pdq[r as usize]).collect();
    let tr: Vec<Hash256> = cands.iter().map(|&r| trim[r as usize]).collect();
    let trimmed: Vec<u32> = (0..up.len() as u32)
        .filter(|&i| up[i as usize] != tr[i as usize])
        .collect();
    let mut keys = vec![0u16; up.len()];
    super::min_keys_rows(kernel, &up, &tr, &trimmed, 0, q, &mut keys);
    let limit = (radius + 1) << CODE_BITS;
    let mut hits: Vec<(u16, u32)> = keys
        .into_iter()
        .zip(cands)
        .filter(|&(k, _)| (k as u32) < limit)
        .collect();
    hits.sort_unstable_by_key(|&(k, r)| (k >> CODE_BITS, r));
    hits
}

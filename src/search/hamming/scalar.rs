//! Plain-Rust copy of the scan loop: runs on any CPU, and is the definition
//! the SIMD copies ([`super::avx2`], [`super::avx512`]) must equal bit for
//! bit; they also use [`row_key`] for the rows left over after their 8-row
//! groups.

use super::{CANDIDATE_TRIMMED, CODE_BITS, KEY_NONE};
use crate::descriptors::Hash256;

/// Bits in which `a` and `b` differ.
#[inline(always)]
fn hamming(a: &Hash256, b: &Hash256) -> u32 {
    (a.words[0] ^ b.words[0]).count_ones()
        + (a.words[1] ^ b.words[1]).count_ones()
        + (a.words[2] ^ b.words[2]).count_ones()
        + (a.words[3] ^ b.words[3]).count_ones()
}

/// Smallest key of one db hash over the query blocks (block `b`, variant `v`
/// has code `extra | 8b + v`). Padding repeats a block's last hash, which
/// never wins: same distance, higher code.
#[inline(always)]
pub(super) fn row_key(h: &Hash256, blocks: &[[Hash256; 8]], extra: u8) -> u16 {
    let mut k = KEY_NONE;
    for (b, qb) in blocks.iter().enumerate() {
        for (v, qv) in qb.iter().enumerate() {
            let c = (extra | (8 * b + v) as u8) as u32;
            k = k.min(((hamming(h, qv) << CODE_BITS) | c) as u16);
        }
    }
    k
}

/// Keys of rows `base..base + db.len()` (see [`super::CODE_BITS`]): each
/// row against every query block, then the rows in `trimmed` (absolute,
/// ascending) against their trimmed views too.
#[inline(always)]
pub(super) fn min_keys(
    db: &[Hash256],
    db_trim: &[Hash256],
    trimmed: &[u32],
    base: usize,
    blocks: &[[Hash256; 8]],
    keys: &mut [u16],
) {
    for (k, h) in keys.iter_mut().zip(db) {
        *k = row_key(h, blocks, 0);
    }
    // The candidates' trimmed views, only where trimming changed the image:
    // a separate sparse pass keeps the main loop free of branches.
    for &r in trimmed {
        let k = &mut keys[r as usize - base];
        *k = (*k).min(row_key(&db_trim[r as usize], blocks, CANDIDATE_TRIMMED));
    }
}

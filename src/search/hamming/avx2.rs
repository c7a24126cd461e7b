//! AVX2 copy of the scan loop.
//!
//! The same transposed layout as [`super::avx512`] on 256-bit vectors:
//! variants 0–3 and 4–7 of word `w` in two vectors. Without VPOPCNTQ the
//! bytes are counted by nibble table and summed per 64-bit lane by VPSADBW;
//! the two halves' keys then share one vector of 8 u32 lanes (key order
//! inside a vector does not matter, the code is in the key). Keys are those
//! of [`super::scalar::min_keys`], bit for bit (a test compares them).

use core::arch::x86_64::*;

use super::scalar::row_key;
use super::{CANDIDATE_TRIMMED, CODE_BITS};
use crate::descriptors::Hash256;

#[derive(Clone, Copy)]
struct Block {
    /// `[half][word]`: variants `4 * half..4 * half + 4`.
    words: [[__m256i; 4]; 2],
    /// u32 lane `2i` = code of variant `i`, lane `2i + 1` of `4 + i`.
    codes: __m256i,
}

#[inline]
#[target_feature(enable = "avx2")]
fn transpose(q: &[Hash256; 8], first_code: u8) -> Block {
    let words = std::array::from_fn(|half| {
        std::array::from_fn(|w| {
            let a: [u64; 4] = std::array::from_fn(|v| q[4 * half + v].words[w]);
            // SAFETY: reads 32 bytes from a 32-byte array.
            unsafe { _mm256_loadu_si256(a.as_ptr().cast()) }
        })
    });
    let c: [u32; 8] =
        std::array::from_fn(|l| first_code as u32 + (l / 2) as u32 + 4 * (l % 2) as u32);
    // SAFETY: as above.
    let codes = unsafe { _mm256_loadu_si256(c.as_ptr().cast()) };
    Block { words, codes }
}

/// Bit count of every byte.
#[inline]
#[target_feature(enable = "avx2")]
fn popcnt_bytes(x: __m256i) -> __m256i {
    let table = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3,
        3, 4,
    );
    let nib = _mm256_set1_epi8(0x0f);
    let lo = _mm256_and_si256(x, nib);
    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(x), nib);
    _mm256_add_epi8(
        _mm256_shuffle_epi8(table, lo),
        _mm256_shuffle_epi8(table, hi),
    )
}

/// Distances of a row (words broadcast in `h`) to 4 variants, u64 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn half_dist(h: &[__m256i; 4], q: &[__m256i; 4]) -> __m256i {
    // Per byte at most 4 · 8 = 32: the four words add up without overflow.
    let mut acc = popcnt_bytes(_mm256_xor_si256(h[0], q[0]));
    for w in 1..4 {
        acc = _mm256_add_epi8(acc, popcnt_bytes(_mm256_xor_si256(h[w], q[w])));
    }
    _mm256_sad_epu8(acc, _mm256_setzero_si256())
}

#[inline]
#[target_feature(enable = "avx2")]
fn row_keys<const NB: usize>(h: &Hash256, blocks: &[Block; NB]) -> __m256i {
    let hw: [__m256i; 4] = std::array::from_fn(|w| _mm256_set1_epi64x(h.words[w] as i64));
    let mut best = _mm256_set1_epi32(-1);
    for b in blocks {
        let d = _mm256_or_si256(
            half_dist(&hw, &b.words[0]),
            _mm256_slli_epi64::<32>(half_dist(&hw, &b.words[1])),
        );
        let k = _mm256_or_si256(_mm256_slli_epi32::<{ CODE_BITS as i32 }>(d), b.codes);
        best = _mm256_min_epu32(best, k);
    }
    best
}

/// Min over lanes of each of 8 key vectors. Results come out in slot
/// order 0,4,2,6,1,5,3,7, so callers pass rows in slots
/// 0,4,2,6,1,5,3,7 (the permutation is its own inverse).
#[inline]
#[target_feature(enable = "avx2")]
fn reduce8(v: [__m256i; 8]) -> [u16; 8] {
    // 128-bit halves: [a a a a | b b b b].
    let f = |a, b| {
        _mm256_min_epu32(
            _mm256_permute2x128_si256::<0x20>(a, b),
            _mm256_permute2x128_si256::<0x31>(a, b),
        )
    };
    let (m01, m23, m45, m67) = (f(v[0], v[1]), f(v[2], v[3]), f(v[4], v[5]), f(v[6], v[7]));
    // 64-bit pairs: [a a c c | b b d d].
    let g = |a, b| _mm256_min_epu32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
    let (n0, n1) = (g(m01, m23), g(m45, m67));
    // Within pairs, then interleave: [a e c g | b f d h].
    let h = |a| _mm256_min_epu32(a, _mm256_shuffle_epi32::<0b10_11_00_01>(a));
    let r = _mm256_blend_epi32::<0b1010_1010>(h(n0), h(n1));
    let mut out = [0u32; 8];
    // SAFETY: 32 bytes into a 32-byte array.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), r) };
    out.map(|k| k as u16)
}

#[inline]
#[target_feature(enable = "avx2")]
fn eight<const NB: usize>(rows: [&Hash256; 8], blocks: &[Block; NB]) -> [u16; 8] {
    reduce8([
        row_keys(rows[0], blocks),
        row_keys(rows[4], blocks),
        row_keys(rows[2], blocks),
        row_keys(rows[6], blocks),
        row_keys(rows[1], blocks),
        row_keys(rows[5], blocks),
        row_keys(rows[3], blocks),
        row_keys(rows[7], blocks),
    ])
}

/// `scalar::min_keys` for `NB` (1 or 2) blocks.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn min_keys<const NB: usize>(
    db: &[Hash256],
    db_trim: &[Hash256],
    trimmed: &[u32],
    base: usize,
    q: &[[Hash256; 8]],
    keys: &mut [u16],
) {
    let mk = |extra: u8| -> [Block; NB] {
        std::array::from_fn(|b| transpose(&q[b], extra | (8 * b as u8)))
    };
    let (up, trim) = (mk(0), mk(CANDIDATE_TRIMMED));
    let mut rows = db.chunks_exact(8);
    let mut out = keys.chunks_exact_mut(8);
    for (r, o) in (&mut rows).zip(&mut out) {
        o.copy_from_slice(&eight(std::array::from_fn(|i| &r[i]), &up));
    }
    for (k, h) in out.into_remainder().iter_mut().zip(rows.remainder()) {
        *k = row_key(h, q, 0);
    }
    let mut tr = trimmed.chunks_exact(8);
    for t in &mut tr {
        let k = eight(std::array::from_fn(|i| &db_trim[t[i] as usize]), &trim);
        for (&r, k) in t.iter().zip(k) {
            let slot = &mut keys[r as usize - base];
            *slot = (*slot).min(k);
        }
    }
    for &r in tr.remainder() {
        let slot = &mut keys[r as usize - base];
        *slot = (*slot).min(row_key(&db_trim[r as usize], q, CANDIDATE_TRIMMED));
    }
}

//! AVX-512 (F + VPOPCNTDQ) copy of the scan loop.
//!
//! The query block is transposed: vector `w` holds word `w` of the 8
//! variants, so one db row costs 4 broadcast-XORs, 4 VPOPCNTQ and 3 adds for
//! all 8 distances, with no per-variant compare. Two rows' keys share a
//! vector (the u32 halves of each lane), and four such vectors (8 rows) are
//! min-reduced together by a shuffle network. Keys are those of
//! [`super::scalar::min_keys`], bit for bit (a test compares them).

use core::arch::x86_64::*;

use super::scalar::row_key;
use super::{CANDIDATE_TRIMMED, CODE_BITS};
use crate::descriptors::Hash256;

#[derive(Clone, Copy)]
struct Block {
    words: [__m512i; 4],
    /// Lane `v`: the code of variant `v` in both u32 halves.
    codes: __m512i,
}

#[inline]
#[target_feature(enable = "avx512f")]
fn transpose(q: &[Hash256; 8], first_code: u8) -> Block {
    let lanes = |f: &dyn Fn(usize) -> u64| -> __m512i {
        let a: [u64; 8] = std::array::from_fn(f);
        // SAFETY: reads 64 bytes from a 64-byte array.
        unsafe { _mm512_loadu_si512(a.as_ptr().cast()) }
    };
    Block {
        words: std::array::from_fn(|w| lanes(&|v| q[v].words[w])),
        codes: lanes(&|v| (first_code as u64 + v as u64) * (1 + (1 << 32))),
    }
}

/// Distances of one row to the block's 8 variants (u64 lanes).
#[inline]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn dist(h: &Hash256, b: &Block) -> __m512i {
    let d = |w: usize| {
        let x = _mm512_xor_si512(b.words[w], _mm512_set1_epi64(h.words[w] as i64));
        _mm512_popcnt_epi64(x)
    };
    _mm512_add_epi64(_mm512_add_epi64(d(0), d(1)), _mm512_add_epi64(d(2), d(3)))
}

/// Keys of rows `a` (low u32 of each lane) and `b` (high u32); a
/// distance is at most 256, so `d << 5` stays inside its half.
#[inline]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn pair_keys<const NB: usize>(a: &Hash256, b: &Hash256, blocks: &[Block; NB]) -> __m512i {
    let keys = |blk: &Block| {
        let ka = _mm512_slli_epi64::<CODE_BITS>(dist(a, blk));
        let kb = _mm512_slli_epi64::<{ CODE_BITS + 32 }>(dist(b, blk));
        // ka | kb | codes
        _mm512_ternarylogic_epi64::<0xFE>(ka, kb, blk.codes)
    };
    let mut k = keys(&blocks[0]);
    for blk in &blocks[1..] {
        k = _mm512_min_epu32(k, keys(blk));
    }
    k
}

/// Lane-wise u32 min of the parts of `a` and `b` that IMM_LO and IMM_HI
/// (128-bit unit selectors) pick.
#[inline]
#[target_feature(enable = "avx512f")]
fn fold<const IMM_LO: i32, const IMM_HI: i32>(a: __m512i, b: __m512i) -> __m512i {
    _mm512_min_epu32(
        _mm512_shuffle_i64x2::<IMM_LO>(a, b),
        _mm512_shuffle_i64x2::<IMM_HI>(a, b),
    )
}

/// Min over the 8 lanes of each of 4 pair vectors: 8 u16 keys in row
/// order (pair 0 row a, pair 0 row b, pair 1 row a, ...).
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce(p: [__m512i; 4]) -> __m128i {
    // 256-bit halves: [a.lo, b.lo] vs [a.hi, b.hi].
    const LO256: i32 = 0b01_00_01_00;
    const HI256: i32 = 0b11_10_11_10;
    let m01 = fold::<LO256, HI256>(p[0], p[1]);
    let m23 = fold::<LO256, HI256>(p[2], p[3]);
    // 128-bit units: unit u now holds pair u only, in 2 lanes.
    let n = fold::<0b10_00_10_00, 0b11_01_11_01>(m01, m23);
    // The two lanes of each unit.
    let f = _mm512_min_epu32(n, _mm512_shuffle_epi32::<0b01_00_11_10>(n));
    // u32 → u16: unit u is words [a b a b]; keep one (a b) per unit.
    let w = _mm512_cvtepi32_epi16(f);
    let pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0);
    _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(w, pick))
}

/// Keys of 8 rows, in order. Always inlined: as a call it reloads the
/// query blocks and spills its result for every 8 rows.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VPOPCNTDQ.
#[inline(always)]
unsafe fn eight<const NB: usize>(r: [&Hash256; 8], blocks: &[Block; NB]) -> __m128i {
    // SAFETY: the caller's CPU has the features.
    unsafe {
        reduce([
            pair_keys(r[0], r[1], blocks),
            pair_keys(r[2], r[3], blocks),
            pair_keys(r[4], r[5], blocks),
            pair_keys(r[6], r[7], blocks),
        ])
    }
}

/// `scalar::min_keys` for `NB` (1 or 2) blocks.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VPOPCNTDQ.
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
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
        // SAFETY: features as above; 16 bytes into 8 u16.
        unsafe {
            let k = eight(std::array::from_fn(|i| &r[i]), &up);
            _mm_storeu_si128(o.as_mut_ptr().cast(), k);
        }
    }
    for (k, h) in out.into_remainder().iter_mut().zip(rows.remainder()) {
        *k = row_key(h, q, 0);
    }
    let mut tr = trimmed.chunks_exact(8);
    for t in &mut tr {
        let mut k = [0u16; 8];
        // SAFETY: as above.
        unsafe {
            let v = eight(std::array::from_fn(|i| &db_trim[t[i] as usize]), &trim);
            _mm_storeu_si128(k.as_mut_ptr().cast(), v);
        }
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

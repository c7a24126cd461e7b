//! Brute-force Hamming search over the index's PDQ column.
//!
//! Each database hash is compared with all 8 dihedral variants of the query
//! (so a rotated or mirrored copy is found) and the best distance kept. The
//! scan is exact: no candidate is missed, unlike approximate indexes. The
//! inner loop exists as plain Rust, an AVX2 copy and an AVX-512 VPOPCNTDQ
//! copy; the CPU picks at run time (see [`kernel`]).

use rayon::prelude::*;

use crate::descriptors::{Hash256, QueryDescriptors};
use crate::index::segment::TRIM_BLOCK;
use crate::index::{Index, RecordRef};

#[derive(Clone, Copy, Debug)]
pub struct SearchParams {
    /// Return at most this many matches (best first).
    pub top_k: usize,
    /// Only matches at PDQ distance ≤ this (256 = no limit). With a large
    /// `top_k` this is the range query "everything within d".
    pub max_distance: u32,
    /// Split the scan of one query over all cores (for a single query);
    /// batch checks parallelise over queries instead.
    pub parallel: bool,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            top_k: 10,
            max_distance: 256,
            parallel: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    pub rec: RecordRef,
    /// Smallest PDQ distance over the query orientations and views.
    pub pdq_distance: u32,
    /// Which comparison gave it: bits 0–2 the query orientation (index into
    /// QueryDescriptors::pdq), bit 3 the query's trimmed view, bit 4 the
    /// candidate's trimmed view. 0 = both upright and untrimmed.
    pub variant: u8,
    /// pHash distance between the unrotated query and the record.
    pub phash_distance: u32,
}

impl Match {
    pub fn orientation(&self) -> u8 {
        self.variant & 7
    }
    pub fn query_trimmed(&self) -> bool {
        self.variant & 8 != 0
    }
    pub fn candidate_trimmed(&self) -> bool {
        self.variant & 16 != 0
    }
}

pub const CANDIDATE_TRIMMED: u8 = 16;

const CHUNK: usize = 8192;
// Chunks start on TRIM_BLOCK boundaries: `trimmed_in` is then a lookup.
const _: () = assert!(CHUNK.is_multiple_of(TRIM_BLOCK));

pub fn search(index: &Index, q: &QueryDescriptors, p: &SearchParams) -> Vec<Match> {
    let hashes = q.hashes();
    let mut all: Vec<Match> = Vec::new();
    for (si, seg) in index.segments.iter().enumerate() {
        let (pdq, trim) = (seg.pdq(), seg.pdq_trim());
        let live = index.live_mask(si);
        let kern = kernel();
        // Keys at or above this fail max_distance (every key passes at 256).
        let key_limit = (p.max_distance.min(256) + 1) << CODE_BITS;
        let scan = |buf: &mut Vec<u16>, ci: usize| -> Vec<Match> {
            let lo = ci * CHUNK;
            let hi = (lo + CHUNK).min(pdq.len());
            let keys = &mut buf[..hi - lo];
            let trimmed = seg.trimmed_in(lo, hi);
            min_keys_rows(kern, &pdq[lo..hi], trim, trimmed, lo, &hashes, keys);
            let mut top = TopK::new(p.top_k);
            // Once the top-k is full almost no row beats it: skip groups of
            // 32 whose smallest key (a vectorised min) cannot enter.
            for (g, ks) in keys.chunks(32).enumerate() {
                let limit = top.key_limit().min(key_limit);
                if ks.iter().fold(u16::MAX, |a, &k| a.min(k)) as u32 >= limit {
                    continue;
                }
                for (i, &k) in ks.iter().enumerate() {
                    let row = lo + 32 * g + i;
                    if (k as u32) < limit && live[row] {
                        top.offer(
                            (k >> CODE_BITS) as u32,
                            RecordRef {
                                seg: si as u32,
                                row: row as u32,
                            },
                            (k & ((1 << CODE_BITS) - 1)) as u8,
                        );
                    }
                }
            }
            top.into_matches()
        };
        let chunks = pdq.len().div_ceil(CHUNK);
        // One key buffer per worker, not per chunk.
        let buf = || vec![0u16; CHUNK];
        let found: Vec<Match> = if p.parallel {
            (0..chunks)
                .into_par_iter()
                .map_init(buf, scan)
                .flatten_iter()
                .collect()
        } else {
            let mut b = buf();
            (0..chunks).flat_map(|ci| scan(&mut b, ci)).collect()
        };
        all.extend(found);
    }
    all.sort_by_key(|m| (m.pdq_distance, m.rec));
    all.truncate(p.top_k);
    for m in &mut all {
        let ph = index.segments[m.rec.seg as usize].phash()[m.rec.row as usize];
        m.phash_distance = (ph ^ q.phash).count_ones();
    }
    all
}

/// Keeps the `k` smallest distances seen (ties: earliest record).
struct TopK {
    k: usize,
    items: Vec<Match>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            items: Vec::with_capacity(k.min(1024) + 1),
        }
    }

    fn offer(&mut self, d: u32, rec: RecordRef, orientation: u8) {
        if self.k == 0 {
            return;
        }
        if self.items.len() == self.k && d >= self.items[self.k - 1].pdq_distance {
            return;
        }
        let pos = self.items.partition_point(|m| m.pdq_distance <= d);
        self.items.insert(
            pos,
            Match {
                rec,
                pdq_distance: d,
                variant: orientation,
                phash_distance: 0,
            },
        );
        self.items.truncate(self.k);
    }

    /// Keys (`CODE_BITS`) below this may enter; `offer` has the last word.
    fn key_limit(&self) -> u32 {
        match self.items.len() {
            _ if self.k == 0 => 0,
            n if n == self.k => self.items[n - 1].pdq_distance << CODE_BITS,
            _ => u32::MAX,
        }
    }

    fn into_matches(self) -> Vec<Match> {
        self.items
    }
}

/// Which copy of the scan loop runs (see [`kernel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, any CPU.
    Generic,
    /// Hand-written AVX2: 8 query variants per pair of vectors, popcount by
    /// nibble table (VPSHUFB).
    Avx2,
    /// Hand-written AVX-512 (F + VPOPCNTDQ): 8 query variants per vector.
    Avx512,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Generic => "generic",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run it.
    pub fn supported(self) -> bool {
        match self {
            Kernel::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512vpopcntdq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The kernel the scan uses: the fastest this CPU supports, or the one named
/// by `LOOKALIKE_HAMMING_KERNEL` (generic | avx2 | avx512) when supported, so
/// that benchmarks can compare them. Chosen once per process.
pub fn kernel() -> Kernel {
    static K: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *K.get_or_init(|| {
        let all = [Kernel::Avx512, Kernel::Avx2, Kernel::Generic];
        let wanted = std::env::var("LOOKALIKE_HAMMING_KERNEL").ok();
        all.into_iter()
            .find(|k| wanted.as_deref() == Some(k.name()) && k.supported())
            .or_else(|| all.into_iter().find(|k| k.supported()))
            .unwrap_or(Kernel::Generic)
    })
}

/// A row's result packed as `distance << 5 | code` (code as in
/// `Match::variant`): the smallest key is the smallest distance and, among
/// equal distances, the lowest code, so one unsigned min does both.
const CODE_BITS: u32 = 5;
/// Key of a row compared with no query hash.
const KEY_NONE: u16 = u16::MAX;

/// For every database entry (upright hash `db[i]` and trimmed-view hash
/// `db_trim[i]`), the minimum distance over all query hashes `q` (≤ 16), and
/// which comparison gave it (see `Match::variant`; ties keep the lowest code).
pub fn min_distances(
    db: &[Hash256],
    db_trim: &[Hash256],
    q: &[Hash256],
    dist: &mut [u16],
    code: &mut [u8],
) {
    let trimmed: Vec<u32> = (0..db.len())
        .filter(|&i| db_trim[i] != db[i])
        .map(|i| i as u32)
        .collect();
    min_distances_rows(db, db_trim, &trimmed, 0, q, dist, code)
}

/// `min_distances` for the rows `base..base + db.len()` of a column whose
/// trimmed views are `db_trim` (the whole column) and differ only at
/// `trimmed` (absolute rows, ascending, all inside the range).
pub fn min_distances_rows(
    db: &[Hash256],
    db_trim: &[Hash256],
    trimmed: &[u32],
    base: usize,
    q: &[Hash256],
    dist: &mut [u16],
    code: &mut [u8],
) {
    let mut keys = vec![0u16; db.len()];
    min_keys_rows(kernel(), db, db_trim, trimmed, base, q, &mut keys);
    for ((&k, d), c) in keys.iter().zip(dist.iter_mut()).zip(code.iter_mut()) {
        (*d, *c) = if k == KEY_NONE {
            (u16::MAX, 0)
        } else {
            (k >> CODE_BITS, (k & ((1 << CODE_BITS) - 1)) as u8)
        };
    }
}

/// The scan itself: `keys[i]` for row `base + i` (see `CODE_BITS`).
fn min_keys_rows(
    kernel: Kernel,
    db: &[Hash256],
    db_trim: &[Hash256],
    trimmed: &[u32],
    base: usize,
    q: &[Hash256],
    keys: &mut [u16],
) {
    assert!(q.len() <= 16, "at most 16 query hashes (codes have 4 bits)");
    assert_eq!(keys.len(), db.len());
    let blocks: Vec<[Hash256; 8]> = q
        .chunks(8)
        .map(|c| std::array::from_fn(|k| c.get(k).copied().unwrap_or(c[c.len() - 1])))
        .collect();
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if kernel.supported() && !blocks.is_empty() => {
            // SAFETY: the CPU has the features (checked just above).
            unsafe {
                if blocks.len() == 1 {
                    avx512::min_keys::<1>(db, db_trim, trimmed, base, &blocks, keys)
                } else {
                    avx512::min_keys::<2>(db, db_trim, trimmed, base, &blocks, keys)
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 | Kernel::Avx512 if Kernel::Avx2.supported() && !blocks.is_empty() => {
            // SAFETY: as above.
            unsafe {
                if blocks.len() == 1 {
                    avx2::min_keys::<1>(db, db_trim, trimmed, base, &blocks, keys)
                } else {
                    avx2::min_keys::<2>(db, db_trim, trimmed, base, &blocks, keys)
                }
            }
        }
        _ => min_keys_generic(db, db_trim, trimmed, base, &blocks, keys),
    }
}

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
fn row_key(h: &Hash256, blocks: &[[Hash256; 8]], extra: u8) -> u16 {
    let mut k = KEY_NONE;
    for (b, qb) in blocks.iter().enumerate() {
        for (v, qv) in qb.iter().enumerate() {
            let c = (extra | (8 * b + v) as u8) as u32;
            k = k.min(((hamming(h, qv) << CODE_BITS) | c) as u16);
        }
    }
    k
}

#[inline(always)]
fn min_keys_generic(
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

/// AVX-512 scan. The query block is transposed: vector `w` holds word `w` of
/// the 8 variants, so one db row costs 4 broadcast-XORs, 4 VPOPCNTQ and 3
/// adds for all 8 distances, with no per-variant compare. Two rows' keys
/// share a vector (the u32 halves of each lane), and four such vectors
/// (8 rows) are min-reduced together by a shuffle network.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use core::arch::x86_64::*;

    use super::{row_key, CANDIDATE_TRIMMED, CODE_BITS};
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

    /// `super::min_keys_generic` for `NB` (1 or 2) blocks.
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
}

/// AVX2 scan, the same transposed layout as `avx512` on 256-bit vectors:
/// variants 0–3 and 4–7 of word `w` in two vectors. Without VPOPCNTQ the
/// bytes are counted by nibble table and summed per 64-bit lane by VPSADBW;
/// the two halves' keys then share one vector of 8 u32 lanes (key order
/// inside a vector does not matter, the code is in the key).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;

    use super::{row_key, CANDIDATE_TRIMMED, CODE_BITS};
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
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
            3, 3, 4,
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

    /// `super::min_keys_generic` for `NB` (1 or 2) blocks.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_hash(seed: &mut u64) -> Hash256 {
        let mut w = [0u64; 4];
        for x in &mut w {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *x = *seed;
        }
        Hash256 { words: w }
    }

    #[test]
    fn min_distance_matches_naive_and_picks_orientation() {
        let mut s = 0x9E3779B97F4A7C15;
        let db: Vec<Hash256> = (0..1000).map(|_| rand_hash(&mut s)).collect();
        let mut q = [Hash256::default(); 8];
        for v in &mut q {
            *v = rand_hash(&mut s);
        }
        q[5] = db[123];
        let mut dist = vec![0u16; db.len()];
        let mut orient = vec![0u8; db.len()];
        let mut trim = db.clone();
        trim[7] = q[2];
        min_distances(&db, &trim, &q, &mut dist, &mut orient);
        assert_eq!((dist[7], orient[7]), (0, 2 | CANDIDATE_TRIMMED));
        for (i, h) in db.iter().enumerate().filter(|(i, _)| *i != 7) {
            let naive = q.iter().map(|v| v.hamming(h)).min().unwrap();
            assert_eq!(dist[i] as u32, naive);
        }
        assert_eq!((dist[123], orient[123]), (0, 5));
    }

    /// (distance, code) by the definition: every comparison, lexicographic min.
    fn naive(db: &[Hash256], trim: &[Hash256], q: &[Hash256], base: usize) -> Vec<(u16, u8)> {
        (0..db.len())
            .map(|i| {
                let mut c: Vec<(u16, u8)> = q
                    .iter()
                    .enumerate()
                    .map(|(v, h)| (h.hamming(&db[i]) as u16, v as u8))
                    .collect();
                if trim[base + i] != db[i] {
                    c.extend(q.iter().enumerate().map(|(v, h)| {
                        (
                            h.hamming(&trim[base + i]) as u16,
                            CANDIDATE_TRIMMED | v as u8,
                        )
                    }));
                }
                c.into_iter().min().unwrap_or((u16::MAX, 0))
            })
            .collect()
    }

    #[test]
    fn every_kernel_matches_naive_with_ties_and_trimmed_rows() {
        let mut s = 0x2545F4914F6CDD1D;
        let flip = |h: Hash256, bits: u64, s: &mut u64| {
            let mut h = h;
            for _ in 0..bits {
                let r = rand_hash(s).words[0];
                h.words[(r % 4) as usize] ^= 1 << ((r >> 8) % 64);
            }
            h
        };
        let kernels: Vec<Kernel> = [Kernel::Generic, Kernel::Avx2, Kernel::Avx512]
            .into_iter()
            .filter(|k| k.supported())
            .collect();
        for round in 0..24 {
            let nq = [8, 16, 1, 3, 9, 13, 0, 8][round % 8];
            let mut q: Vec<Hash256> = (0..nq).map(|_| rand_hash(&mut s)).collect();
            // Duplicated variants (a symmetric image) tie on every row.
            if nq >= 8 {
                q[6] = q[1];
                q[7] = q[3];
            }
            if nq == 16 {
                q[12] = q[1];
            }
            let n = 1000 + 37 * round;
            let (db, trim): (Vec<Hash256>, Vec<Hash256>) = (0..n)
                .map(|i| {
                    let near = |s: &mut u64| match (q.len(), i % 3) {
                        (0, _) | (_, 0) => rand_hash(s),
                        (l, _) => {
                            let src = q[(rand_hash(s).words[0] % l as u64) as usize];
                            let bits = rand_hash(s).words[0] % 12;
                            flip(src, bits, s)
                        }
                    };
                    let h = near(&mut s);
                    let t = match i % 4 {
                        0 => h,
                        // A trimmed view at the same distance as the upright.
                        1 => Hash256 {
                            words: [h.words[1], h.words[0], h.words[3], h.words[2]],
                        },
                        _ => near(&mut s),
                    };
                    (h, t)
                })
                .unzip();
            // A slice inside the column, as a search chunk sees it.
            let base = round % 5;
            let part = &db[base..n - round % 3];
            let trimmed: Vec<u32> = (base..base + part.len())
                .filter(|&r| trim[r] != db[r])
                .map(|r| r as u32)
                .collect();
            let want = naive(part, &trim, &q, base);
            for &k in &kernels {
                let mut keys = vec![0u16; part.len()];
                min_keys_rows(k, part, &trim, &trimmed, base, &q, &mut keys);
                let got: Vec<(u16, u8)> = keys
                    .iter()
                    .map(|&k| match k {
                        KEY_NONE => (u16::MAX, 0),
                        _ => (k >> CODE_BITS, (k & 31) as u8),
                    })
                    .collect();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g, w, "kernel {} round {round} row {i}", k.name());
                }
            }
        }
    }

    /// `search` (chunks, trimmed lookup, top-k skipping, segments, dead
    /// rows) against a sort of every live row's naive result.
    #[test]
    fn search_matches_naive_topk() {
        use crate::descriptors::Descriptors;
        use crate::index::{flags, IndexWriter};
        let mut s = 0x5DEECE66D;
        let q = QueryDescriptors {
            pdq: std::array::from_fn(|_| rand_hash(&mut s)),
            quality: 100,
            phash: 0,
            pdq_trim: Some(std::array::from_fn(|_| rand_hash(&mut s))),
            keypoints: vec![],
            embedding: None,
        };
        let hashes = q.hashes();
        let dir = tempfile::tempdir().unwrap();
        let mut w = IndexWriter::open(dir.path()).unwrap();
        // Two segments, neither a multiple of the chunk size.
        let mut db = Vec::new();
        for (seg, n) in [(0u32, 2 * CHUNK + 1234), (1, 3000)] {
            w.flush_records = usize::MAX;
            for i in 0..n {
                // Near a query hash (by few bits: many equal distances) or random.
                let near = |s: &mut u64| {
                    let r = rand_hash(s).words[0];
                    let mut h = hashes[(r % 16) as usize];
                    for b in 0..(r >> 8) % 40 {
                        h.words[(b % 4) as usize] ^= 1 << ((r >> (16 + b % 40)) % 64);
                    }
                    h
                };
                let pdq = if i % 3 == 0 {
                    near(&mut s)
                } else {
                    rand_hash(&mut s)
                };
                let pdq_trim = match i % 4 {
                    0 => pdq,
                    _ => near(&mut s),
                };
                let d = Descriptors {
                    pdq,
                    quality: 100,
                    phash: 0,
                    pdq_trim,
                    keypoints: Default::default(),
                    embedding: Default::default(),
                };
                let dead = i % 7 == 3;
                let flag = if dead { flags::FAILED } else { 0 };
                w.add(format!("{seg}/{i}").as_bytes(), 1, 1, i as u128, flag, &d);
                db.push((RecordRef { seg, row: i as u32 }, pdq, pdq_trim, !dead));
            }
            w.commit().unwrap();
        }
        drop(w);
        let index = Index::open(dir.path()).unwrap();
        for (top_k, max_distance, parallel) in
            [(10, 256, true), (500, 256, false), (10_000, 90, true)]
        {
            let mut want: Vec<(u32, RecordRef, u8)> = db
                .iter()
                .filter(|r| r.3)
                .map(|&(rec, h, t, _)| {
                    let (d, c) = naive(&[h], &[t], &hashes, 0)[0];
                    (d as u32, rec, c)
                })
                .filter(|r| r.0 <= max_distance)
                .collect();
            want.sort_by_key(|r| (r.0, r.1));
            want.truncate(top_k);
            let p = SearchParams {
                top_k,
                max_distance,
                parallel,
            };
            let got: Vec<(u32, RecordRef, u8)> = search(&index, &q, &p)
                .iter()
                .map(|m| (m.pdq_distance, m.rec, m.variant))
                .collect();
            assert!(!want.is_empty());
            assert_eq!(got, want, "top_k {top_k} max_distance {max_distance}");
        }
    }

    #[test]
    fn topk_keeps_smallest_in_order() {
        let mut t = TopK::new(3);
        for (i, d) in [50, 10, 30, 10, 5, 70].iter().enumerate() {
            t.offer(
                *d,
                RecordRef {
                    seg: 0,
                    row: i as u32,
                },
                0,
            );
        }
        let got: Vec<(u32, u32)> = t
            .into_matches()
            .iter()
            .map(|m| (m.pdq_distance, m.rec.row))
            .collect();
        assert_eq!(got, vec![(5, 4), (10, 1), (10, 3)]);
    }
}

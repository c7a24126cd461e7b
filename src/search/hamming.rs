//! Brute-force Hamming search over the index's PDQ column.
//!
//! Each database hash is compared with all 8 dihedral variants of the query
//! (so a rotated or mirrored copy is found) and the best distance kept. The
//! scan is exact: no candidate is missed, unlike approximate indexes. The
//! inner loop exists as plain Rust, the same compiled with AVX2 + POPCNT, and
//! an AVX-512 VPOPCNTDQ copy; the CPU picks at run time (see [`kernel`]).

use rayon::prelude::*;

use crate::descriptors::{Hash256, QueryDescriptors};
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

pub fn search(index: &Index, q: &QueryDescriptors, p: &SearchParams) -> Vec<Match> {
    let hashes = q.hashes();
    let mut all: Vec<Match> = Vec::new();
    for (si, seg) in index.segments.iter().enumerate() {
        let (pdq, trim) = (seg.pdq(), seg.pdq_trim());
        let live = index.live_mask(si);
        let kern = kernel();
        // Keys at or above this fail max_distance (every key passes at 256).
        let key_limit = (p.max_distance.min(256) + 1) << CODE_BITS;
        let scan = |ci: usize| -> Vec<Match> {
            let lo = ci * CHUNK;
            let hi = (lo + CHUNK).min(pdq.len());
            let mut keys = vec![0u16; hi - lo];
            let rows = seg.trimmed_rows();
            let trimmed = &rows[rows.partition_point(|&r| (r as usize) < lo)
                ..rows.partition_point(|&r| (r as usize) < hi)];
            min_keys_rows(kern, &pdq[lo..hi], trim, trimmed, lo, &hashes, &mut keys);
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
        let found: Vec<Match> = if p.parallel {
            (0..chunks).into_par_iter().flat_map_iter(scan).collect()
        } else {
            (0..chunks).flat_map(scan).collect()
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
    /// The plain loop compiled with AVX2 + POPCNT.
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
            Kernel::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt")
            }
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
        Kernel::Avx2 | Kernel::Avx512 if Kernel::Avx2.supported() => {
            // SAFETY: as above.
            unsafe { min_keys_avx2(db, db_trim, trimmed, base, &blocks, keys) }
        }
        _ => min_keys_generic(db, db_trim, trimmed, base, &blocks, keys),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn min_keys_avx2(
    db: &[Hash256],
    db_trim: &[Hash256],
    trimmed: &[u32],
    base: usize,
    blocks: &[[Hash256; 8]],
    keys: &mut [u16],
) {
    min_keys_generic(db, db_trim, trimmed, base, blocks, keys)
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
/// adds for all 8 distances, with no per-variant compare. Eight rows' key
/// vectors are then min-reduced together by a shuffle network.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use core::arch::x86_64::*;

    use super::{row_key, CANDIDATE_TRIMMED, CODE_BITS};
    use crate::descriptors::Hash256;

    #[derive(Clone, Copy)]
    struct Block {
        words: [__m512i; 4],
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
            codes: lanes(&|v| (first_code as usize + v) as u64),
        }
    }

    /// The 8 keys of one row against a block, lane `v` = variant `v`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    fn block_keys(h: &Hash256, b: &Block) -> __m512i {
        let d = |w: usize| {
            let x = _mm512_xor_si512(b.words[w], _mm512_set1_epi64(h.words[w] as i64));
            _mm512_popcnt_epi64(x)
        };
        let dist = _mm512_add_epi64(_mm512_add_epi64(d(0), d(1)), _mm512_add_epi64(d(2), d(3)));
        _mm512_or_si512(_mm512_slli_epi64::<CODE_BITS>(dist), b.codes)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    fn row_keys<const NB: usize>(h: &Hash256, blocks: &[Block; NB]) -> __m512i {
        let mut k = block_keys(h, &blocks[0]);
        for b in &blocks[1..] {
            k = _mm512_min_epu64(k, block_keys(h, b));
        }
        k
    }

    /// Lane-wise min of the two halves of `a` and of `b` (at the granularity
    /// IMM_LO/IMM_HI pick), packed into one vector.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fold<const IMM_LO: i32, const IMM_HI: i32>(a: __m512i, b: __m512i) -> __m512i {
        _mm512_min_epu64(
            _mm512_shuffle_i64x2::<IMM_LO>(a, b),
            _mm512_shuffle_i64x2::<IMM_HI>(a, b),
        )
    }

    /// Min over lanes of each of 8 key vectors, as 8 u16 keys. The result
    /// comes out in slot order 0,4,1,5,2,6,3,7, so callers pass rows in
    /// slots 0,2,4,6,1,3,5,7 to get them back in row order.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce8(v: [__m512i; 8]) -> __m128i {
        // 256-bit halves: [a.lo, b.lo] vs [a.hi, b.hi].
        const LO256: i32 = 0b01_00_01_00;
        const HI256: i32 = 0b11_10_11_10;
        let m01 = fold::<LO256, HI256>(v[0], v[1]);
        let m23 = fold::<LO256, HI256>(v[2], v[3]);
        let m45 = fold::<LO256, HI256>(v[4], v[5]);
        let m67 = fold::<LO256, HI256>(v[6], v[7]);
        // 128-bit units: each now holds two partial keys of one slot.
        const LO128: i32 = 0b10_00_10_00;
        const HI128: i32 = 0b11_01_11_01;
        let n0 = fold::<LO128, HI128>(m01, m23);
        let n1 = fold::<LO128, HI128>(m45, m67);
        // Last pair within each 128-bit unit.
        let r = _mm512_min_epu64(_mm512_unpacklo_epi64(n0, n1), _mm512_unpackhi_epi64(n0, n1));
        _mm512_cvtepi64_epi16(r)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    fn eight<const NB: usize>(rows: [&Hash256; 8], blocks: &[Block; NB]) -> [u16; 8] {
        let k = reduce8([
            row_keys(rows[0], blocks),
            row_keys(rows[2], blocks),
            row_keys(rows[4], blocks),
            row_keys(rows[6], blocks),
            row_keys(rows[1], blocks),
            row_keys(rows[3], blocks),
            row_keys(rows[5], blocks),
            row_keys(rows[7], blocks),
        ]);
        let mut out = [0u16; 8];
        // SAFETY: 16 bytes into a 16-byte array.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), k) };
        out
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
            std::array::from_fn(|b| transpose(&q[b], extra | 8 * b as u8))
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

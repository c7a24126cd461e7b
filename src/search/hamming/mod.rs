//! Brute-force Hamming search over the index's PDQ column.
//!
//! Each database hash is compared with all 8 dihedral variants of the query
//! (so a rotated or mirrored copy is found) and the best distance kept. The
//! scan is exact: no candidate is missed, unlike approximate indexes. The
//! inner loop exists as plain Rust (`scalar`), an AVX2 copy (`avx2`) and
//! an AVX-512 VPOPCNTDQ copy (`avx512`), all giving the same keys; the
//! fastest the CPU has runs unless [`SearchParams::kernel`] names another
//! (see [`Kernel`]).
//!
//! A segment with a multi-index hash table (`index::mih`) answers a radius
//! query ≤ 31 through it instead, with the same matches; a top-k query
//! goes through it too when the segment has k live rows within 31, and
//! falls back to the scan otherwise.
//!
//! This module holds the public API: [`search`] (chunks, top-k, segments),
//! [`min_distances`] and [`column_topk`] for callers with their own columns,
//! and the dispatch to a kernel.

use rayon::prelude::*;

use crate::descriptors::{Hash256, QueryDescriptors};
use crate::index::segment::TRIM_BLOCK;
use crate::index::{Index, RecordRef};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod mih;
mod scalar;
#[cfg(test)]
mod tests;

/// What [`search`] returns and how it scans.
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
    /// Which copy of the scan loop runs (same results; benchmarks compare
    /// them). Default [`Kernel::Auto`]: the fastest this CPU has.
    pub kernel: Kernel,
    /// Use segments' PDQ tables (`index::mih`) where they answer the query
    /// exactly (default); off: always scan (benchmarks and tests compare).
    pub pdq_index: bool,
    /// A top-k query (radius > 31) probes a segment's table first only when
    /// the segment has at least this many rows ([`PDQ_TABLE_MIN_ROWS`]):
    /// below, the probe costs about what the scan does, and is wasted when
    /// fewer than k rows lie within 31. Radius queries use every table.
    pub pdq_table_min_rows: usize,
}

/// Default of [`SearchParams::pdq_table_min_rows`]: from 2^16 rows a bucket
/// holds more than one entry on average and the probe reads a few percent
/// of the rows at most.
pub const PDQ_TABLE_MIN_ROWS: usize = 1 << 16;

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            top_k: 10,
            max_distance: 256,
            parallel: true,
            kernel: Kernel::Auto,
            pdq_index: true,
            pdq_table_min_rows: PDQ_TABLE_MIN_ROWS,
        }
    }
}

/// One database record found by the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// The record (segment, row).
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
    /// The query orientation that matched (index into `QueryDescriptors::pdq`).
    pub fn orientation(&self) -> u8 {
        self.variant & 7
    }
    /// Whether the query's trimmed view matched.
    pub fn query_trimmed(&self) -> bool {
        self.variant & 8 != 0
    }
    /// Whether the candidate's trimmed view matched.
    pub fn candidate_trimmed(&self) -> bool {
        self.variant & 16 != 0
    }
}

/// `Match::variant` bit: the candidate's trimmed view matched.
pub const CANDIDATE_TRIMMED: u8 = 16;

const CHUNK: usize = 8192;
const MIH_RADIUS: u32 = crate::index::mih::RADIUS;
// Chunks start on TRIM_BLOCK boundaries: `trimmed_in` is then a lookup.
const _: () = assert!(CHUNK.is_multiple_of(TRIM_BLOCK));

/// The best matches of `q` among the live records of `index`: at most
/// `p.top_k`, PDQ distance ≤ `p.max_distance`, ordered by distance, then
/// segment and row.
pub fn search(index: &Index, q: &QueryDescriptors, p: &SearchParams) -> Vec<Match> {
    let hashes = q.hashes();
    let mut all: Vec<Match> = Vec::new();
    for (si, seg) in index.segments().iter().enumerate() {
        let (pdq, trim) = (seg.pdq(), seg.pdq_trim());
        let live = index.live_mask(si);
        let radius = p.max_distance.min(256);
        let use_table = p.pdq_index && (radius <= MIH_RADIUS || seg.len() >= p.pdq_table_min_rows);
        if let Some(table) = seg.mih().filter(|_| use_table) {
            let r = radius.min(MIH_RADIUS);
            let hits = mih::radius_keys(seg, table, live, &hashes, r, p.kernel, p.parallel);
            // Exact when the radius is within reach, or when k rows are
            // within 31: every row not found is farther than all of them.
            if radius <= MIH_RADIUS || hits.len() >= p.top_k {
                all.extend(hits.into_iter().take(p.top_k).map(|(k, row)| Match {
                    rec: RecordRef {
                        seg: si as u32,
                        row,
                    },
                    pdq_distance: (k >> CODE_BITS) as u32,
                    variant: (k & ((1 << CODE_BITS) - 1)) as u8,
                    phash_distance: 0,
                }));
                continue;
            }
        }
        let kern = p.kernel.resolve();
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
    rank_matches(&mut all, p.top_k);
    for m in &mut all {
        let ph = index.segments()[m.rec.seg as usize].phash()[m.rec.row as usize];
        m.phash_distance = (ph ^ q.phash).count_ones();
    }
    all
}

/// Sorts matches as [`search`] returns them, by (distance, record), and
/// keeps the first `k` (a fan-out check merges its parts' lists so).
pub fn rank_matches(all: &mut Vec<Match>, k: usize) {
    all.sort_by_key(|m| (m.pdq_distance, m.rec));
    all.truncate(k);
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

/// Which copy of the scan loop runs. Every copy gives the same keys, so the
/// choice changes speed only; naming one lets benchmarks and tests compare
/// them (the CLI reads `LOOKALIKE_HAMMING_KERNEL`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernel {
    /// The fastest copy this CPU supports.
    #[default]
    Auto,
    /// Plain Rust, any CPU.
    Generic,
    /// Hand-written AVX2: 8 query variants per pair of vectors, popcount by
    /// nibble table (VPSHUFB).
    Avx2,
    /// Hand-written AVX-512 (F + VPOPCNTDQ): 8 query variants per vector.
    Avx512,
}

impl Kernel {
    /// The kernel's name, as [`Kernel::from_name`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Auto => "auto",
            Kernel::Generic => "generic",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run it.
    pub fn supported(self) -> bool {
        match self {
            Kernel::Auto | Kernel::Generic => true,
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

    /// The kernel with this name (auto | generic | avx2 | avx512), if any.
    pub fn from_name(name: &str) -> Option<Kernel> {
        [Kernel::Auto, Kernel::Generic, Kernel::Avx2, Kernel::Avx512]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// The copy that runs for this choice: itself when this CPU supports it,
    /// else (and for `Auto`) the fastest supported one.
    pub fn resolve(self) -> Kernel {
        if self != Kernel::Auto && self.supported() {
            return self;
        }
        [Kernel::Avx512, Kernel::Avx2]
            .into_iter()
            .find(|k| k.supported())
            .unwrap_or(Kernel::Generic)
    }
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
/// Runs the fastest kernel this CPU has.
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
    min_keys_rows(Kernel::Auto, db, db_trim, trimmed, base, q, &mut keys);
    for ((&k, d), c) in keys.iter().zip(dist.iter_mut()).zip(code.iter_mut()) {
        (*d, *c) = if k == KEY_NONE {
            (u16::MAX, 0)
        } else {
            (k >> CODE_BITS, (k & ((1 << CODE_BITS) - 1)) as u8)
        };
    }
}

/// For each query (8 orientation variants), the `k` nearest live rows of one
/// column `db` (no trimmed views): (row, distance, orientation) sorted by
/// distance then row. The CPU counterpart of the GPU top-k kernel
/// (`GpuEngine::hamming_topk`), with the same output, and the fallback
/// where that kernel declines.
pub fn column_topk(
    db: &[Hash256],
    live: &[bool],
    queries: &[[Hash256; 8]],
    k: usize,
) -> Vec<Vec<(u32, u16, u8)>> {
    queries
        .par_iter()
        .map(|q| {
            let mut dist = vec![0u16; db.len()];
            let mut orient = vec![0u8; db.len()];
            // The same column twice: no trimmed view, plain orientation codes.
            min_distances(db, db, q, &mut dist, &mut orient);
            let mut v: Vec<(u32, u16, u8)> = (0..db.len())
                .filter(|&i| live[i])
                .map(|i| (i as u32, dist[i], orient[i]))
                .collect();
            v.sort_by_key(|&(row, d, _)| (d, row));
            v.truncate(k);
            v
        })
        .collect()
}

/// The scan itself: `keys[i]` for row `base + i` (see `CODE_BITS`), by
/// `kernel` or, where this CPU lacks it, the fastest it has.
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
    match kernel.resolve() {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if !blocks.is_empty() => {
            // SAFETY: the CPU has the features (`resolve` checked them).
            unsafe {
                if blocks.len() == 1 {
                    avx512::min_keys::<1>(db, db_trim, trimmed, base, &blocks, keys)
                } else {
                    avx512::min_keys::<2>(db, db_trim, trimmed, base, &blocks, keys)
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if !blocks.is_empty() => {
            // SAFETY: as above.
            unsafe {
                if blocks.len() == 1 {
                    avx2::min_keys::<1>(db, db_trim, trimmed, base, &blocks, keys)
                } else {
                    avx2::min_keys::<2>(db, db_trim, trimmed, base, &blocks, keys)
                }
            }
        }
        _ => scalar::min_keys(db, db_trim, trimmed, base, &blocks, keys),
    }
}

//! Brute-force Hamming search over the index's PDQ column.
//!
//! Each database hash is compared with all 8 dihedral variants of the query
//! (so a rotated or mirrored copy is found) and the best distance kept. The
//! scan is exact: no candidate is missed, unlike approximate indexes. The
//! inner loop is compiled twice, plain and with AVX2 + POPCNT (LLVM vectorises
//! the popcounts), and the CPU picks at run time.

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
        let scan = |ci: usize| -> Vec<Match> {
            let lo = ci * CHUNK;
            let hi = (lo + CHUNK).min(pdq.len());
            let mut dist = vec![0u16; hi - lo];
            let mut code = vec![0u8; hi - lo];
            let rows = seg.trimmed_rows();
            let trimmed = &rows[rows.partition_point(|&r| (r as usize) < lo)
                ..rows.partition_point(|&r| (r as usize) < hi)];
            min_distances_rows(
                &pdq[lo..hi],
                trim,
                trimmed,
                lo,
                &hashes,
                &mut dist,
                &mut code,
            );
            let mut top = TopK::new(p.top_k);
            for (i, (&d, &c)) in dist.iter().zip(&code).enumerate() {
                let row = lo + i;
                if d as u32 <= p.max_distance && live[row] {
                    top.offer(
                        d as u32,
                        RecordRef {
                            seg: si as u32,
                            row: row as u32,
                        },
                        c,
                    );
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

    fn into_matches(self) -> Vec<Match> {
        self.items
    }
}

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
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU supports the features this copy was compiled for.
            return unsafe { min_distances_avx2(db, db_trim, trimmed, base, q, dist, code) };
        }
    }
    min_distances_generic(db, db_trim, trimmed, base, q, dist, code)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn min_distances_avx2(
    db: &[Hash256],
    db_trim: &[Hash256],
    trimmed: &[u32],
    base: usize,
    q: &[Hash256],
    dist: &mut [u16],
    code: &mut [u8],
) {
    min_distances_generic(db, db_trim, trimmed, base, q, dist, code)
}

#[inline(always)]
fn hamming(a: &Hash256, b: &Hash256) -> u32 {
    (a.words[0] ^ b.words[0]).count_ones()
        + (a.words[1] ^ b.words[1]).count_ones()
        + (a.words[2] ^ b.words[2]).count_ones()
        + (a.words[3] ^ b.words[3]).count_ones()
}

/// Folds 8 query hashes (codes `base..base+8`) into the running minimum.
/// A fixed 8 lets the compiler unroll and keep the query in registers; codes
/// are visited in increasing order and only a strictly smaller distance
/// wins, so ties keep the lowest code.
#[inline(always)]
fn fold8<'a>(
    rows: impl Iterator<Item = (usize, &'a Hash256)>,
    q: &[Hash256; 8],
    base: u8,
    dist: &mut [u16],
    code: &mut [u8],
) {
    for (i, h) in rows {
        let mut best = dist[i] as u32;
        let mut arg = code[i];
        for (v, qv) in q.iter().enumerate() {
            let x = hamming(h, qv);
            if x < best {
                best = x;
                arg = base + v as u8;
            }
        }
        dist[i] = best as u16;
        code[i] = arg;
    }
}

#[inline(always)]
fn min_distances_generic(
    db: &[Hash256],
    db_trim: &[Hash256],
    trimmed: &[u32],
    base: usize,
    q: &[Hash256],
    dist: &mut [u16],
    code: &mut [u8],
) {
    dist.fill(u16::MAX);
    code.fill(0);
    let blocks: Vec<[Hash256; 8]> = q
        .chunks(8)
        .map(|c| std::array::from_fn(|k| c.get(k).copied().unwrap_or(c[c.len() - 1])))
        .collect();
    for (b, qb) in blocks.iter().enumerate() {
        fold8(db.iter().enumerate(), qb, 8 * b as u8, dist, code);
    }
    // The candidates' trimmed views, only where trimming changed the image:
    // a separate sparse pass keeps the main loop free of branches.
    for (b, qb) in blocks.iter().enumerate() {
        let rows = trimmed
            .iter()
            .map(|&r| (r as usize - base, &db_trim[r as usize]));
        fold8(rows, qb, CANDIDATE_TRIMMED | 8 * b as u8, dist, code);
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

//! Near-duplicates inside the indexed training set (`lookalike dedup`) and
//! the per-match `corpus_copies` count of `check`.
//!
//! Memorisation studies found that the training images a model reproduces are
//! mostly the ones duplicated in its training set, so both commands answer
//! "how often is this picture in the corpus?".
//!
//! Pair rule ([`near_copy`]): same file bytes, or upright PDQ distance ≤ the
//! threshold (default 31, the match threshold) and, when either hash has
//! quality < 50, pHash distance ≤ 10 as well (the rule `check` uses). Only
//! the upright hashes are compared: the index stores one PDQ per image and the
//! 8 dihedral variants cannot be rebuilt from a hash (they come from the DCT),
//! so mirrored or rotated duplicates inside the corpus are not grouped.
//!
//! Grouping is greedy **clique** grouping: every member of a group is a near
//! copy of every other member, never linked through a chain (A~B and B~C do
//! not put A and C together unless A~C). Seeds are taken by decreasing number
//! of near copies; each seed's still-free near copies are admitted nearest
//! first if they are near copies of every member admitted so far.
//!
//! Cost: an exact brute-force O(N²/2) pass counts near copies (all cores,
//! AVX2 popcounts), then one O(N) scan per seed that has any. Memory is O(N)
//! (one flat copy of the descriptors plus a count per image), never O(N²):
//! no pair list is kept.

use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use super::verdict::{LOW_QUALITY_PHASH, MATCH_PDQ, MIN_QUALITY};
use crate::descriptors::Hash256;
use crate::index::{Index, RecordRef};

/// Schema tag of the `dedup` JSON report.
pub const SCHEMA: &str = "lookalike.dedup/1";

/// Whether two images are near copies, given their PDQ distance `d`.
#[inline]
pub fn near_copy(d: u32, max: u32, a: (u8, u64, u128), b: (u8, u64, u128)) -> bool {
    if a.2 == b.2 {
        return true; // same bytes
    }
    if d > max {
        return false;
    }
    a.0 >= MIN_QUALITY && b.0 >= MIN_QUALITY || (a.1 ^ b.1).count_ones() <= LOW_QUALITY_PHASH
}

/// The live records of an index as flat columns.
pub struct Corpus {
    /// Where each record lives in the index.
    pub refs: Vec<RecordRef>,
    /// Upright PDQ hash per record.
    pub pdq: Vec<Hash256>,
    /// PDQ quality per record (0–100).
    pub quality: Vec<u8>,
    /// pHash per record, the second opinion for low-quality PDQ hashes.
    pub phash: Vec<u64>,
    /// Content hash of the file bytes, so byte-identical files always pair.
    pub content: Vec<u128>,
}

impl Corpus {
    /// Copies the live records of every segment, in segment then row order.
    pub fn from_index(index: &Index) -> Corpus {
        let n = index.live_count();
        let mut c = Corpus {
            refs: Vec::with_capacity(n),
            pdq: Vec::with_capacity(n),
            quality: Vec::with_capacity(n),
            phash: Vec::with_capacity(n),
            content: Vec::with_capacity(n),
        };
        for (si, seg) in index.segments().iter().enumerate() {
            let (pdq, q, ph, files) = (seg.pdq(), seg.quality(), seg.phash(), seg.files());
            for (row, &live) in index.live_mask(si).iter().enumerate() {
                if live {
                    c.refs.push(RecordRef {
                        seg: si as u32,
                        row: row as u32,
                    });
                    c.pdq.push(pdq[row]);
                    c.quality.push(q[row]);
                    c.phash.push(ph[row]);
                    c.content.push(files[row].content_hash());
                }
            }
        }
        c
    }

    /// Number of live records copied.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// Whether the index had no live records.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    fn key(&self, i: usize) -> (u8, u64, u128) {
        (self.quality[i], self.phash[i], self.content[i])
    }

    fn near(&self, i: usize, j: usize, max: u32) -> bool {
        near_copy(
            self.pdq[i].hamming(&self.pdq[j]),
            max,
            self.key(i),
            self.key(j),
        )
    }
}

/// PDQ distances of `q` to every hash of `db` (upright only).
pub fn distances(db: &[Hash256], q: &Hash256, out: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU supports the features this copy was compiled for.
            return unsafe { distances_avx2(db, q, out) };
        }
    }
    distances_generic(db, q, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn distances_avx2(db: &[Hash256], q: &Hash256, out: &mut [u16]) {
    distances_generic(db, q, out)
}

#[inline(always)]
fn distances_generic(db: &[Hash256], q: &Hash256, out: &mut [u16]) {
    for (h, o) in db.iter().zip(out.iter_mut()) {
        *o = ((h.words[0] ^ q.words[0]).count_ones()
            + (h.words[1] ^ q.words[1]).count_ones()
            + (h.words[2] ^ q.words[2]).count_ones()
            + (h.words[3] ^ q.words[3]).count_ones()) as u16;
    }
}

const CHUNK: usize = 4096;

/// Indices `j` in `range` (≠ `i`) that are near copies of record `i`.
fn near_in(
    c: &Corpus,
    i: usize,
    range: std::ops::Range<usize>,
    max: u32,
    mut found: impl FnMut(usize, u32),
) {
    let mut dist = [0u16; CHUNK];
    let mut start = range.start;
    while start < range.end {
        let end = (start + CHUNK).min(range.end);
        let d = &mut dist[..end - start];
        distances(&c.pdq[start..end], &c.pdq[i], d);
        for (k, &dk) in d.iter().enumerate() {
            let j = start + k;
            // Same bytes means identical descriptors (distance 0), so the
            // distance test never drops an exact duplicate.
            if dk as u32 <= max && j != i && near_copy(dk as u32, max, c.key(i), c.key(j)) {
                found(j, dk as u32);
            }
        }
        start = end;
    }
}

/// Number of near copies of every record (itself excluded), exact, O(N²/2).
pub fn near_copy_counts(c: &Corpus, max: u32) -> Vec<u32> {
    let counts: Vec<AtomicU32> = (0..c.len()).map(|_| AtomicU32::new(0)).collect();
    (0..c.len()).into_par_iter().with_min_len(16).for_each(|i| {
        let mut mine = 0;
        near_in(c, i, i + 1..c.len(), max, |j, _| {
            mine += 1;
            counts[j].fetch_add(1, Ordering::Relaxed);
        });
        counts[i].fetch_add(mine, Ordering::Relaxed);
    });
    counts.into_iter().map(AtomicU32::into_inner).collect()
}

/// One group, as corpus indices; `members[0]` is the representative.
pub struct RawGroup {
    /// Corpus indices with their PDQ distance to the representative.
    pub members: Vec<(usize, u32)>,
    /// Largest PDQ distance between any two members.
    pub max_pairwise: u32,
}

/// Greedy clique grouping (module docs). Groups of two or more only.
pub fn group(c: &Corpus, max: u32) -> Vec<RawGroup> {
    let counts = near_copy_counts(c, max);
    let mut seeds: Vec<usize> = (0..c.len()).filter(|&i| counts[i] > 0).collect();
    seeds.sort_by_key(|&i| (std::cmp::Reverse(counts[i]), i));
    let mut taken = vec![false; c.len()];
    let mut groups = vec![];
    for seed in seeds {
        if taken[seed] {
            continue;
        }
        let mut cands: Vec<(u32, usize)> = (0..c.len())
            .into_par_iter()
            .step_by(CHUNK)
            .flat_map_iter(|start| {
                let mut v = vec![];
                near_in(c, seed, start..(start + CHUNK).min(c.len()), max, |j, d| {
                    if !taken[j] {
                        v.push((d, j));
                    }
                });
                v
            })
            .collect();
        cands.sort_unstable();
        let mut members = vec![(seed, 0u32)];
        let mut max_pairwise = 0;
        for (d, j) in cands {
            if members.iter().all(|&(m, _)| c.near(m, j, max)) {
                for &(m, _) in &members {
                    max_pairwise = max_pairwise.max(c.pdq[m].hamming(&c.pdq[j]));
                }
                members.push((j, d));
            }
        }
        if members.len() > 1 {
            for &(m, _) in &members {
                taken[m] = true;
            }
            groups.push(RawGroup {
                members,
                max_pairwise,
            });
        }
    }
    groups
}

/// One image of a duplicate group, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct Member {
    /// The image's path as shown to the user.
    pub path: String,
    /// PDQ distance to the group's representative (0 for itself).
    pub distance: u32,
    /// pHash distance to the representative.
    pub phash_distance: u32,
    /// PDQ quality of this image's hash.
    pub quality: u8,
    /// Byte-identical to the representative.
    pub same_bytes: bool,
    /// Whether this member is the group's representative.
    pub representative: bool,
}

/// A group of near copies, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// 1-based group number, largest groups first.
    pub group: usize,
    /// Number of members.
    pub size: usize,
    /// Path of the member that seeded the group.
    pub representative: String,
    /// Largest PDQ distance between any two members (≤ max_distance: a clique).
    pub max_pairwise_distance: u32,
    /// Members, the representative first, then by distance.
    pub members: Vec<Member>,
}

/// The pair rule's thresholds, echoed in the report.
#[derive(Clone, Debug, Serialize)]
pub struct DedupThresholds {
    /// Largest upright PDQ distance between two members.
    pub max_pdq_distance: u32,
    /// Below this PDQ quality the pHash must agree too.
    pub min_quality: u8,
    /// Largest pHash distance allowed for low-quality pairs.
    pub low_quality_phash_distance: u32,
}

/// Result of `lookalike dedup`: the near-duplicate groups of an index.
#[derive(Clone, Debug, Serialize)]
pub struct DedupReport {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// The index folder.
    pub index: String,
    /// Live records compared.
    pub index_records: usize,
    /// "clique": every member is within the threshold of every other member.
    pub grouping: &'static str,
    /// "upright": rotated/mirrored duplicates are not compared.
    pub orientations: &'static str,
    /// Thresholds the groups were made with.
    pub thresholds: DedupThresholds,
    /// Number of groups.
    pub group_count: usize,
    /// Images that belong to some group.
    pub images_in_groups: usize,
    /// Images that could be removed keeping one per group.
    pub redundant_images: usize,
    /// Wall time of the grouping, in seconds.
    pub seconds: f64,
    /// The groups, largest first.
    pub groups: Vec<Group>,
}

/// Groups the live records of `index` whose upright PDQ distance is at most
/// `max` into cliques of near copies (module docs) and reports them.
pub fn dedup(index: &Index, max: u32) -> DedupReport {
    let t0 = std::time::Instant::now();
    let c = Corpus::from_index(index);
    let raw = group(&c, max);
    let path = |i: usize| crate::ingest::names::path_text(&index.path(c.refs[i]));
    let mut groups: Vec<Group> = raw
        .into_iter()
        .map(|g| {
            let rep = g.members[0].0;
            let members: Vec<Member> = g
                .members
                .iter()
                .map(|&(m, d)| Member {
                    path: path(m),
                    distance: d,
                    phash_distance: (c.phash[m] ^ c.phash[rep]).count_ones(),
                    quality: c.quality[m],
                    same_bytes: c.content[m] == c.content[rep],
                    representative: m == rep,
                })
                .collect();
            Group {
                group: 0,
                size: members.len(),
                representative: members[0].path.clone(),
                max_pairwise_distance: g.max_pairwise,
                members,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then_with(|| a.representative.cmp(&b.representative))
    });
    for (i, g) in groups.iter_mut().enumerate() {
        g.group = i + 1;
    }
    let images_in_groups = groups.iter().map(|g| g.size).sum::<usize>();
    DedupReport {
        schema: SCHEMA,
        index: crate::ingest::names::path_text(index.dir()),
        index_records: c.len(),
        grouping: "clique",
        orientations: "upright",
        thresholds: DedupThresholds {
            max_pdq_distance: max,
            min_quality: MIN_QUALITY,
            low_quality_phash_distance: LOW_QUALITY_PHASH,
        },
        group_count: groups.len(),
        images_in_groups,
        redundant_images: images_in_groups - groups.len(),
        seconds: t0.elapsed().as_secs_f64(),
        groups,
    }
}

/// For each record in `cands`: how many other live records of the index are
/// near copies of it (threshold = the match threshold). One pass over the
/// index for all of them, so it costs O(N · cands) popcounts, chunk-parallel.
pub fn corpus_copies(index: &Index, cands: &[RecordRef]) -> Vec<u32> {
    let keys: Vec<CopyKey> = cands.iter().map(|&r| copy_key(index, r)).collect();
    let own: Vec<Option<RecordRef>> = cands.iter().map(|&r| Some(r)).collect();
    count_copies(index, &keys, &own)
}

/// What [`near_copy`] compares of a record: its upright PDQ hash and
/// (quality, pHash, content hash).
pub type CopyKey = (Hash256, (u8, u64, u128));

/// The [`CopyKey`] of record `r`.
pub fn copy_key(index: &Index, r: RecordRef) -> CopyKey {
    let s = &index.segments()[r.seg as usize];
    let row = r.row as usize;
    (
        s.pdq()[row],
        (
            s.quality()[row],
            s.phash()[row],
            s.files()[row].content_hash(),
        ),
    )
}

/// For each of `keys`, the live records of `index` that are near copies of
/// it (upright PDQ ≤ the match threshold), `own[i]` (the record the key is
/// of, when it is in this index) not counted. [`corpus_copies`] counts in
/// the candidates' own index; a fan-out check sums this over the parts.
pub fn count_copies(index: &Index, keys: &[CopyKey], own: &[Option<RecordRef>]) -> Vec<u32> {
    let key = |r: RecordRef| copy_key(index, r);
    let qs = keys;
    let mut total = vec![0u32; qs.len()];
    if qs.is_empty() {
        return total;
    }
    for (si, seg) in index.segments().iter().enumerate() {
        let (pdq, live) = (seg.pdq(), index.live_mask(si));
        let counts = pdq
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(ci, chunk)| {
                let mut dist = vec![0u16; chunk.len()];
                let mut counts = vec![0u32; qs.len()];
                for (qi, (qh, qk)) in qs.iter().enumerate() {
                    distances(chunk, qh, &mut dist);
                    for (k, &d) in dist.iter().enumerate() {
                        let row = ci * CHUNK + k;
                        if d as u32 <= MATCH_PDQ && live[row] {
                            let r = RecordRef {
                                seg: si as u32,
                                row: row as u32,
                            };
                            if own.get(qi).copied().flatten() != Some(r)
                                && near_copy(d as u32, MATCH_PDQ, *qk, key(r).1)
                            {
                                counts[qi] += 1;
                            }
                        }
                    }
                }
                counts
            })
            .reduce(
                || vec![0u32; qs.len()],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        total.iter_mut().zip(counts).for_each(|(x, y)| *x += y);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seed: u64) -> Hash256 {
        let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        let mut w = [0u64; 4];
        for x in &mut w {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *x = s;
        }
        Hash256 { words: w }
    }

    fn flip(mut x: Hash256, bits: std::ops::Range<usize>) -> Hash256 {
        for k in bits {
            x.words[k / 64] ^= 1 << (k % 64);
        }
        x
    }

    fn corpus(hashes: Vec<Hash256>) -> Corpus {
        let n = hashes.len();
        Corpus {
            refs: (0..n)
                .map(|i| RecordRef {
                    seg: 0,
                    row: i as u32,
                })
                .collect(),
            pdq: hashes,
            quality: vec![100; n],
            phash: (0..n as u64)
                .map(|i| i.wrapping_mul(0x9E3779B97F4A7C15))
                .collect(),
            content: (0..n as u128).collect(),
        }
    }

    /// A chain A~B~C with A and C far apart must not become one group.
    #[test]
    fn no_transitive_chaining() {
        let a = h(1);
        let b = flip(a, 0..20);
        let c = flip(a, 0..40); // 20 from b, 40 from a
        let far = h(2);
        let cp = corpus(vec![a, b, c, far]);
        let groups = group(&cp, 31);
        assert_eq!(groups.len(), 1);
        let g: Vec<usize> = groups[0].members.iter().map(|m| m.0).collect();
        // b has the most near copies (a and c), so it seeds; then a joins, and c
        // (40 bits from a) cannot.
        assert_eq!(g, vec![1, 0]);
        assert_eq!(near_copy_counts(&cp, 31), vec![1, 2, 1, 0]);
        for grp in &groups {
            for &(x, _) in &grp.members {
                for &(y, _) in &grp.members {
                    assert!(cp.pdq[x].hamming(&cp.pdq[y]) <= 31);
                }
            }
        }
    }

    #[test]
    fn exact_duplicates_group_and_low_quality_needs_phash() {
        let a = h(7);
        let mut cp = corpus(vec![a, a, h(8), flip(h(8), 0..5)]);
        cp.content[1] = cp.content[0];
        // Flat images: PDQ is unreliable, and these pHashes disagree.
        cp.quality[2] = 10;
        let groups = group(&cp, 31);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].members.len(), 2);
        assert!(groups[0].members.iter().all(|m| m.0 < 2));
        cp.phash[3] = cp.phash[2] ^ 0b111; // pHash agrees within 10: now a pair
        assert_eq!(group(&cp, 31).len(), 2);
    }

    #[test]
    fn counts_match_a_naive_count() {
        let base: Vec<Hash256> = (0..50).map(h).collect();
        let mut all = base.clone();
        for (i, b) in base.iter().enumerate().take(20) {
            all.push(flip(*b, 0..(i * 2)));
        }
        let cp = corpus(all);
        let got = near_copy_counts(&cp, 31);
        for (i, &g) in got.iter().enumerate() {
            let naive = (0..cp.len())
                .filter(|&j| j != i && cp.pdq[i].hamming(&cp.pdq[j]) <= 31)
                .count();
            assert_eq!(g as usize, naive, "record {i}");
        }
    }
}

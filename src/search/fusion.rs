//! Second stage: verify the first stage's candidates geometrically, find
//! the copies hashing missed through their keypoints, and give every
//! candidate one calibrated score.
//!
//! Candidates: the PDQ scan's best `VERIFY_PDQ`, the `VERIFY_EMBEDDING`
//! nearest embeddings, and the `VERIFY_KEYPOINT` records sharing the most
//! keypoint matches with the query (`search::shortlist`: a scan of every
//! record on small indexes, the segments' keypoint tables on large ones).
//!
//! Before ranking, query keypoints that several verified training pictures
//! explain are counted in share among them ([`share_inliers`]).

use std::collections::HashMap;

use rayon::prelude::*;

use super::dedup::{self, CopyKey};
use super::hamming::{min_distances_rows, Match};
use super::shortlist::shortlist;
pub use super::shortlist::{
    keypoint_routes, keypoint_search, keypoint_search_for, keypoints_stored, shortlist_order,
    KeypointSearch, Pairs, KEYPOINT_SCAN_LIMIT,
};
use super::verify::{self, QueryPoints, Verification};
use super::{ann, calibrate, verdict};
use crate::descriptors::embedding::dot_f32_f16;
use crate::descriptors::QueryDescriptors;
use crate::index::segment::Scorer;
use crate::index::{Index, RecordRef};

/// PDQ candidates verified per query.
pub const VERIFY_PDQ: usize = 8;
/// Keypoint-shortlist candidates verified per query.
pub const VERIFY_KEYPOINT: usize = 8;
/// Nearest neighbours by embedding verified per query.
pub const VERIFY_EMBEDDING: usize = 8;

/// One candidate with all its evidence.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// The hash evidence: which record, PDQ and pHash distances.
    pub m: Match,
    /// None: not verified (no keypoints, or not among the verified candidates).
    pub verification: Option<Verification>,
    /// Cosine similarity of the embeddings (None: no embeddings). In a
    /// segment with a whitening, the whitened cosine put on the raw scale:
    /// the raw cosine as rare among unrelated images
    /// ([`calibrate::Calibration::from_whitened`]).
    pub similarity: Option<f32>,
    /// Calibrated score in [0, 1] (see `calibrate`).
    pub score: f64,
}

/// How the second stage runs.
#[derive(Clone, Copy, Debug)]
pub struct FuseParams {
    /// Candidates returned per query.
    pub top_k: usize,
    /// Spread one query's work over all cores (for a single query).
    pub parallel: bool,
    /// Verify candidates geometrically (off: PDQ and embedding evidence only).
    pub verify: bool,
    /// Segments with at least this many records search embeddings through
    /// their HNSW graph, smaller ones by an exact scan ([`ANN_MIN_ROWS`]).
    pub ann_min_rows: usize,
    /// Compare the query's keypoints with every record instead of asking
    /// the keypoint tables (the reference they are measured against).
    pub keypoint_scan: bool,
    /// Maps evidence to scores (the index's recorded model).
    pub calibration: calibrate::Calibration,
}

/// Segments with at least this many records are searched through their
/// HNSW graph by default; smaller ones by an exact scan, which is as fast there.
pub const ANN_MIN_ROWS: usize = 4096;

/// Verifies (unless `p.verify` is false) and rescores `pdq` (the first stage's top matches, best first);
/// returns at most `p.top_k` candidates, best score first.
pub fn fuse(index: &Index, q: &QueryDescriptors, pdq: &[Match], p: &FuseParams) -> Vec<Candidate> {
    let take = if p.verify { VERIFY_PDQ } else { 0 };
    let keep: Vec<RecordRef> = pdq.iter().take(take).map(|m| m.rec).collect();
    let how = match p.verify && !q.keypoints.is_empty() {
        true => keypoint_search(index, p.keypoint_scan),
        false => KeypointSearch::Off,
    };
    let k = VERIFY_EMBEDDING.max(p.top_k);
    let ev = evidence(index, q, &keep, how, k, p);
    let short: Vec<RecordRef> = ev.shortlist.iter().map(|s| s.1).collect();
    let near: Vec<RecordRef> = ev.nearest.iter().map(|n| n.1).collect();
    // The shortlist scan's tentative matches of the records it verifies,
    // so their verification does not match those keypoints again.
    let mut heads = ev.heads;
    let scorers = Scorers::new(index, q, &p.calibration);
    let mut out: Vec<Candidate> = plan(pdq, &short, &near, p.verify)
        .iter()
        .map(|c| score(index, q, c, heads.remove(&c.rec), &p.calibration, &scorers))
        .collect();
    let keys: Vec<CopyKey> = out
        .iter()
        .map(|c| dedup::copy_key(index, c.m.rec))
        .collect();
    share_inliers(&mut out, &keys, &p.calibration);
    sort_fused(&mut out);
    out.truncate(p.top_k);
    out
}

/// A candidate whose map explains at least this many query keypoints
/// (distinct candidate keypoints) claims them in [`share_inliers`]. Fewer
/// are chance ([`calibrate::CHANCE_INLIERS`]).
pub const SHARES_FROM: u32 = calibrate::CHANCE_INLIERS;

/// Counts the query keypoints that several training pictures explain in
/// share, and rescores: each query keypoint is one piece of evidence, split
/// evenly among the pictures claiming it (candidates with at least
/// [`SHARES_FROM`] inliers; near copies of each other, by
/// [`dedup::near_copy`] at the match threshold, are one picture), so a
/// candidate's `inliers` become its consensus times the mean share of its
/// keypoints, rounded. A painted background, a logo or a frame that many
/// training pictures share (a game's portraits on one template) then stops
/// counting once for each of them — the inter-image burstiness of Jégou,
/// Douze & Schmid (CVPR 2009) — while what only the copy's source shows
/// counts in full, and a training image stored twice keeps all its
/// evidence in both copies. `keys[i]`: the [`dedup::copy_key`] of
/// `cands[i]`. Idempotent; run over all of a query's verified candidates
/// before ranking them.
pub fn share_inliers<C: AsMut<Candidate>>(
    cands: &mut [C],
    keys: &[CopyKey],
    cal: &calibrate::Calibration,
) {
    let has = |p: &QueryPoints, k: usize| (p[k / 64] >> (k % 64)) & 1 == 1;
    // The claimers: (position in `cands`, the query keypoints they explain).
    let claimers: Vec<(usize, QueryPoints)> = cands
        .iter_mut()
        .enumerate()
        .filter_map(|(i, c)| {
            let v = c.as_mut().verification?;
            (v.consensus >= SHARES_FROM).then_some((i, v.query_points))
        })
        .collect();
    // Each claimer's picture: its connected component under near copy
    // (labelled by its first member, so the order of `cands` is no matter).
    let mut picture: Vec<usize> = (0..claimers.len()).collect();
    let near = |a: usize, b: usize| {
        let (a, b) = (&keys[claimers[a].0], &keys[claimers[b].0]);
        dedup::near_copy(a.0.hamming(&b.0), verdict::MATCH_PDQ, a.1, b.1)
    };
    let mut changed = true;
    while changed {
        changed = false;
        for a in 0..claimers.len() {
            for b in a + 1..claimers.len() {
                let low = picture[a].min(picture[b]);
                if picture[a] != picture[b] && near(a, b) {
                    (picture[a], picture[b], changed) = (low, low, true);
                }
            }
        }
    }
    let mut claimed: Vec<QueryPoints> = vec![QueryPoints::default(); claimers.len()];
    for ((_, points), &pic) in claimers.iter().zip(&picture) {
        for (w, &bits) in claimed[pic].iter_mut().zip(points) {
            *w |= bits;
        }
    }
    let mut count = [0u16; crate::descriptors::keypoints::QUERY_KEYPOINTS];
    for (k, n) in count.iter_mut().enumerate() {
        *n = claimed.iter().filter(|p| has(p, k)).count() as u16;
    }
    for c in cands.iter_mut() {
        let c = c.as_mut();
        let Some(v) = c.verification.as_mut() else {
            continue;
        };
        let (mut points, mut share) = (0u32, 0f64);
        for (k, &n) in count.iter().enumerate() {
            if !has(&v.query_points, k) {
                continue;
            }
            points += 1;
            share += 1.0 / n.max(1) as f64;
        }
        let inliers = if points == 0 {
            v.consensus
        } else {
            (v.consensus as f64 * share / points as f64).round() as u32
        };
        if inliers != v.inliers {
            v.inliers = inliers;
            c.score = cal.score(&c.m, Some(v), c.similarity);
        }
    }
}

/// A query's first-stage evidence besides its PDQ matches.
#[derive(Debug, Default)]
pub struct Evidence {
    /// The keypoint shortlist: (tentative matches, record), at most
    /// [`VERIFY_KEYPOINT`], in [`shortlist_order`]; empty when not scanned.
    pub shortlist: Vec<(u32, RecordRef)>,
    /// Tentative keypoint matches of the shortlisted records and of `keep`
    /// (so their verification need not match those keypoints again).
    pub heads: HashMap<RecordRef, Pairs>,
    /// The nearest records by embedding, most similar first (see
    /// [`nearest_embeddings`]); empty without a query embedding.
    pub nearest: Vec<(f32, RecordRef)>,
}

/// The keypoint shortlist (when `scan`) and the `k` nearest embeddings
/// of one query in `index`; `keep`: records whose tentative matches to keep.
pub fn evidence(
    index: &Index,
    q: &QueryDescriptors,
    keep: &[RecordRef],
    how: KeypointSearch,
    k: usize,
    p: &FuseParams,
) -> Evidence {
    let (shortlist, heads) = match how {
        KeypointSearch::Off => Default::default(),
        _ => shortlist(index, q, p.parallel, keep, how),
    };
    let nearest = q
        .embedding
        .as_ref()
        .map(|e| nearest_embeddings(index, e, k, p.parallel, p.ann_min_rows))
        .unwrap_or_default();
    Evidence {
        shortlist,
        heads,
        nearest,
    }
}

/// One candidate as fusion plans it, before it is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    /// The record.
    pub rec: RecordRef,
    /// Its match from the PDQ scan, when the scan found it (else computed).
    pub pdq: Option<Match>,
    /// Whether it is verified geometrically.
    pub verify: bool,
}

/// The candidates of one query from its first-stage evidence: every PDQ
/// match (`pdq`, best first), the keypoint `shortlist` and the `nearest`
/// embeddings. With `verify`, the best [`VERIFY_PDQ`] PDQ matches, the
/// shortlist and the nearest are verified. Each candidate is scored on its
/// own ([`score`]), so the plan can be split among index parts.
pub fn plan(
    pdq: &[Match],
    shortlist: &[RecordRef],
    nearest: &[RecordRef],
    verify: bool,
) -> Vec<Planned> {
    let take = if verify { VERIFY_PDQ } else { 0 };
    let mut recs: Vec<RecordRef> = pdq.iter().take(take).map(|m| m.rec).collect();
    recs.extend_from_slice(shortlist);
    recs.extend_from_slice(nearest);
    recs.sort_unstable();
    recs.dedup();
    let mut out: Vec<Planned> = pdq
        .iter()
        .map(|m| Planned {
            rec: m.rec,
            pdq: Some(*m),
            verify: false,
        })
        .collect();
    for r in recs {
        match out.iter_mut().find(|c| c.rec == r) {
            Some(c) => c.verify = verify,
            None => out.push(Planned {
                rec: r,
                pdq: None,
                verify,
            }),
        }
    }
    out
}

/// One query's embedding prepared for each segment of an index
/// (`Segment::scorer`) on first use, so that a compact segment projects
/// the query once for all its candidates, not once for each.
pub struct Scorers<'a> {
    index: &'a Index,
    q: Option<&'a [f32]>,
    cal: &'a calibrate::Calibration,
    per_segment: Vec<std::cell::OnceCell<Option<Scorer<'a>>>>,
}

impl<'a> Scorers<'a> {
    /// For query `q` (its embedding, if it has one) in `index`, whose
    /// similarities `cal` scores (and says whether to whiten).
    pub fn new(
        index: &'a Index,
        q: &'a QueryDescriptors,
        cal: &'a calibrate::Calibration,
    ) -> Scorers<'a> {
        Scorers {
            index,
            q: q.embedding.as_deref(),
            cal,
            per_segment: (0..index.segments().len())
                .map(|_| Default::default())
                .collect(),
        }
    }

    /// The query's similarity with record `r` (None: no embedding on either
    /// side): in a whitened segment the whitened cosine, on the raw scale
    /// ([`calibrate::Calibration::from_whitened`]).
    fn similarity(&self, r: RecordRef) -> Option<f32> {
        let q = self.q?;
        let scorer = self.per_segment[r.seg as usize]
            .get_or_init(|| self.index.segments()[r.seg as usize].scorer(q, self.cal.whitens()))
            .as_ref()?;
        let s = scorer.similarity(r.row)?;
        Some(match scorer.whitened() {
            true => self.cal.from_whitened(s),
            false => s,
        })
    }
}

/// Scores one planned candidate of `index`: its PDQ match (the scan's, else
/// computed as the scan would), its verification (`head`: the record's
/// [`verify::tentative_head`] when known), embedding similarity (through
/// `scorers`, made for `q`) and calibrated score.
pub fn score(
    index: &Index,
    q: &QueryDescriptors,
    c: &Planned,
    head: Option<Pairs>,
    cal: &calibrate::Calibration,
    scorers: &Scorers,
) -> Candidate {
    let m = c.pdq.unwrap_or_else(|| pdq_match(index, q, c.rec));
    let verification = if c.verify {
        verify_record(index, q, c.rec, head)
    } else {
        None
    };
    let similarity = scorers.similarity(c.rec);
    Candidate {
        m,
        verification,
        similarity,
        score: cal.score(&m, verification.as_ref(), similarity),
    }
}

/// The order of fused candidates: best score first, then the nearer hash,
/// then the earlier record.
pub fn fused_order(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.m.pdq_distance.cmp(&b.m.pdq_distance))
        .then(a.m.rec.cmp(&b.m.rec))
}

/// Sorts candidates in [`fused_order`].
pub fn sort_fused(out: &mut [Candidate]) {
    out.sort_by(fused_order);
}

/// Keeps the first `k` of `out` and, after them, every candidate that
/// claims keypoints in [`share_inliers`] (so an index part's answer lets
/// the merged ranking count them as one index would).
pub fn truncate_keeping_claims(out: &mut Vec<Candidate>, k: usize) {
    let mut i = 0;
    out.retain(|c| {
        i += 1;
        i <= k || c.verification.is_some_and(|v| v.consensus >= SHARES_FROM)
    });
}

impl AsMut<Candidate> for Candidate {
    fn as_mut(&mut self) -> &mut Candidate {
        self
    }
}

/// Sorts nearest-embedding hits (most similar first, then the earlier
/// record) and keeps the first `k`.
pub fn rank_nearest(all: &mut Vec<(f32, RecordRef)>, k: usize) {
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
}

/// The `k` live records most similar to the query embedding: per segment
/// through its graph (approximate) when it has at least `min_rows` records,
/// else an exact scan.
pub fn nearest_embeddings(
    index: &Index,
    q: &[f32],
    k: usize,
    parallel: bool,
    min_rows: usize,
) -> Vec<(f32, RecordRef)> {
    let mut all: Vec<(f32, RecordRef)> = Vec::new();
    for (si, seg) in index.segments().iter().enumerate() {
        let Some(scorer) = seg.scorer(q, false) else {
            continue;
        };
        let live = index.live_mask(si);
        let at = |row: u32| RecordRef {
            seg: si as u32,
            row,
        };
        if let Some(g) = seg.graph().filter(|_| seg.len() >= min_rows) {
            let exact = |r: u32| scorer.similarity(r).unwrap_or(f32::NEG_INFINITY);
            let keep = |r: u32| live[r as usize];
            let ef = ann::ef_for(k);
            let hits = match (seg.projection(), seg.embeddings()) {
                (Some(p), _) => {
                    let projected;
                    let qp = match scorer.codes() {
                        Some((_, qp)) => qp,
                        None => {
                            projected = p.project(q);
                            &projected
                        }
                    };
                    ann::search(g, |r| p.dot(qp, r), exact, k, ef, keep)
                }
                // A graph written before codes: walked over the f16 rows.
                (None, Some(embs)) => {
                    let d = g.dim.min(q.len());
                    let approx = |r: u32| dot_f32_f16(&q[..d], &embs[r as usize].0[..d]);
                    ann::search(g, approx, exact, k, ef, keep)
                }
                (None, None) => continue,
            };
            all.extend(hits.into_iter().map(|(s, r)| (s, at(r))));
            continue;
        }
        let sim = |row: usize| -> Option<(f32, RecordRef)> {
            if !live[row] {
                return None;
            }
            scorer.similarity(row as u32).map(|s| (s, at(row as u32)))
        };
        let mut found: Vec<(f32, RecordRef)> = if parallel {
            (0..seg.len()).into_par_iter().filter_map(sim).collect()
        } else {
            (0..seg.len()).filter_map(sim).collect()
        };
        rank_nearest(&mut found, k);
        all.extend(found);
    }
    rank_nearest(&mut all, k);
    all
}

/// Verifies record `r`; `head`: its [`verify::tentative_head`] when the
/// shortlist scan computed it.
fn verify_record(
    index: &Index,
    q: &QueryDescriptors,
    r: RecordRef,
    head: Option<Pairs>,
) -> Option<Verification> {
    let kps = index.keypoints(r)?;
    let pts = kps.points();
    (!pts.is_empty() && !q.keypoints.is_empty()).then(|| match head {
        Some(h) => verify::verify_after_head(&q.keypoints, pts, h),
        None => verify::verify(&q.keypoints, pts),
    })
}

/// The PDQ comparison of the query with one record, as the scan computes it.
pub fn pdq_match(index: &Index, q: &QueryDescriptors, r: RecordRef) -> Match {
    let seg = &index.segments()[r.seg as usize];
    let row = r.row as usize;
    let trimmed: &[u32] = if seg.pdq_trim()[row] != seg.pdq()[row] {
        &[r.row]
    } else {
        &[]
    };
    let (mut d, mut c) = ([0u16], [0u8]);
    min_distances_rows(
        &seg.pdq()[row..row + 1],
        seg.pdq_trim(),
        trimmed,
        row,
        &q.hashes(),
        &mut d,
        &mut c,
    );
    Match {
        rec: r,
        pdq_distance: d[0] as u32,
        variant: c[0],
        phash_distance: (seg.phash()[row] ^ q.phash).count_ones(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptors::hash256::Hash256;

    /// A candidate verified with `consensus` inliers explaining query
    /// keypoints `points`.
    fn claimer(row: u32, consensus: u32, points: std::ops::Range<usize>) -> Candidate {
        let mut v = Verification {
            matches: consensus,
            inliers: consensus,
            consensus,
            ..Default::default()
        };
        for k in points {
            v.query_points[k / 64] |= 1 << (k % 64);
        }
        Candidate {
            m: Match {
                rec: RecordRef { seg: 0, row },
                pdq_distance: 120,
                variant: 0,
                phash_distance: 32,
            },
            verification: Some(v),
            similarity: None,
            score: 0.0,
        }
    }

    fn key(seed: u64) -> CopyKey {
        // Distinct seeds give hashes about 128 bits apart.
        let w = |i: u64| (seed * 4 + i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let words = [w(0), w(1), w(2), w(3)];
        (Hash256 { words }, (100, seed, seed as u128))
    }

    #[test]
    fn shared_keypoints_count_in_share_and_copies_are_one_picture() {
        let cal = calibrate::Calibration::default();
        // a explains keypoints 0..40; b (another picture) 20..50; c, a copy
        // of a (same key), 0..40 too; d only 4 keypoints (chance, no claim).
        let mut cands = vec![
            claimer(0, 40, 0..40),
            claimer(1, 30, 20..50),
            claimer(2, 40, 0..40),
            claimer(3, 4, 30..34),
        ];
        let keys = vec![key(1), key(2), key(1), key(3)];
        share_inliers(&mut cands, &keys, &cal);
        let inl: Vec<u32> = cands
            .iter()
            .map(|c| c.verification.unwrap().inliers)
            .collect();
        // a: 20 own + 20 shared with b's picture at 1/2 → 30; b: 20 shared
        // at 1/2 + 10 own → 20; d's 4 are all shared by a and b → 2.
        assert_eq!(inl, vec![30, 20, 30, 2]);
        for c in &cands {
            let v = c.verification.unwrap();
            assert_eq!(c.score, cal.score(&c.m, Some(&v), None));
        }
        // Idempotent: the shares come from the consensus, not the inliers.
        let once = inl;
        share_inliers(&mut cands, &keys, &cal);
        let twice: Vec<u32> = cands
            .iter()
            .map(|c| c.verification.unwrap().inliers)
            .collect();
        assert_eq!(once, twice);
        // Alone, a keeps all its evidence.
        let mut alone = vec![claimer(0, 40, 0..40)];
        share_inliers(&mut alone, &keys[..1], &cal);
        assert_eq!(alone[0].verification.unwrap().inliers, 40);
    }
}

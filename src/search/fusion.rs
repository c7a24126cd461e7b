//! Second stage: verify the first stage's candidates geometrically, find
//! the copies hashing missed through their keypoints, and give every
//! candidate one calibrated score.
//!
//! Candidates: the PDQ scan's best `VERIFY_PDQ`, plus the `VERIFY_KEYPOINT`
//! records sharing the most keypoint matches with the query. That keypoint
//! shortlist compares the query with every indexed record (brute-force
//! Hamming over 128 keypoints each), so it runs only on indexes of at most
//! `KEYPOINT_SCAN_LIMIT` records; larger ones verify the PDQ candidates only.

use std::collections::HashMap;

use rayon::prelude::*;

use super::hamming::{min_distances_rows, Match};
use super::verify::{self, Verification};
use super::{ann, calibrate};
use crate::descriptors::QueryDescriptors;
use crate::index::{Index, RecordRef};

/// PDQ candidates verified per query.
pub const VERIFY_PDQ: usize = 8;
/// Keypoint-shortlist candidates verified per query.
pub const VERIFY_KEYPOINT: usize = 8;
/// Nearest neighbours by embedding verified per query.
pub const VERIFY_EMBEDDING: usize = 8;
/// Records up to which the keypoint shortlist scans the whole index.
pub const KEYPOINT_SCAN_LIMIT: usize = 20_000;
/// A shortlist entry needs at least this many tentative keypoint matches.
const MIN_TENTATIVE: u32 = 5;

/// One candidate with all its evidence.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// The hash evidence: which record, PDQ and pHash distances.
    pub m: Match,
    /// None: not verified (no keypoints, or not among the verified candidates).
    pub verification: Option<Verification>,
    /// Cosine similarity of the embeddings (None: no embeddings).
    pub similarity: Option<f32>,
    /// Calibrated score in [0, 1] (see `calibrate`).
    pub score: f64,
}

/// Whether this index gets the exhaustive keypoint shortlist.
pub fn keypoint_scan(index: &Index) -> bool {
    index.live_count() <= KEYPOINT_SCAN_LIMIT
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
    /// Maps evidence to scores (the index's recorded model).
    pub calibration: calibrate::Calibration,
}

/// Segments with at least this many records are searched through their
/// HNSW graph by default; smaller ones by an exact scan, which is as fast there.
pub const ANN_MIN_ROWS: usize = 4096;

/// Verifies (unless `p.verify` is false) and rescores `pdq` (the first stage's top matches, best first);
/// returns at most `p.top_k` candidates, best score first.
pub fn fuse(index: &Index, q: &QueryDescriptors, pdq: &[Match], p: &FuseParams) -> Vec<Candidate> {
    let (top_k, parallel, verify) = (p.top_k, p.parallel, p.verify);
    let take = if verify { VERIFY_PDQ } else { 0 };
    let mut recs: Vec<RecordRef> = pdq.iter().take(take).map(|m| m.rec).collect();
    // The shortlist scan's tentative matches of the records it verifies,
    // so their verification does not match those keypoints again.
    let mut heads = HashMap::new();
    if verify && !q.keypoints.is_empty() && keypoint_scan(index) {
        let (top, h) = shortlist(index, q, parallel, &recs);
        recs.extend(top);
        heads = h;
    }
    let nearest = q
        .embedding
        .as_ref()
        .map(|e| {
            nearest_embeddings(
                index,
                e,
                VERIFY_EMBEDDING.max(top_k),
                parallel,
                p.ann_min_rows,
            )
        })
        .unwrap_or_default();
    recs.extend(nearest.iter().map(|&(_, r)| r));
    recs.sort_unstable();
    recs.dedup();
    let verified: Vec<(RecordRef, Option<Verification>)> = recs
        .iter()
        .map(|&r| {
            let head = heads.remove(&r);
            (
                r,
                verify.then(|| verify_record(index, q, r, head)).flatten(),
            )
        })
        .collect();
    let mut out: Vec<Candidate> = pdq
        .iter()
        .map(|m| Candidate {
            m: *m,
            verification: None,
            similarity: None,
            score: 0.0,
        })
        .collect();
    for (r, v) in verified {
        match out.iter_mut().find(|c| c.m.rec == r) {
            Some(c) => c.verification = v,
            None => out.push(Candidate {
                m: pdq_match(index, q, r),
                verification: v,
                similarity: None,
                score: 0.0,
            }),
        }
    }
    for c in &mut out {
        c.similarity = q
            .embedding
            .as_ref()
            .and_then(|e| similarity(index, e, c.m.rec));
        c.score = p
            .calibration
            .score(&c.m, c.verification.as_ref(), c.similarity);
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.m.pdq_distance.cmp(&b.m.pdq_distance))
            .then(a.m.rec.cmp(&b.m.rec))
    });
    out.truncate(top_k);
    out
}

/// Cosine similarity of the query's embedding with one record's.
fn similarity(index: &Index, q: &[f32], r: RecordRef) -> Option<f32> {
    let e = &index.segments()[r.seg as usize].embeddings()?[r.row as usize];
    (!e.is_none()).then(|| crate::descriptors::embedding::similarity(q, e))
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
        let Some(embs) = seg.embeddings() else {
            continue;
        };
        let live = index.live_mask(si);
        let at = |row: u32| RecordRef {
            seg: si as u32,
            row,
        };
        if let Some(g) = seg.graph().filter(|_| seg.len() >= min_rows) {
            let hits = ann::search(g, embs, q, k, ann::ef_for(k), |r| live[r as usize]);
            all.extend(hits.into_iter().map(|(s, r)| (s, at(r))));
            continue;
        }
        let sim = |row: usize| -> Option<(f32, RecordRef)> {
            let e = &embs[row];
            (live[row] && !e.is_none()).then(|| {
                (
                    crate::descriptors::embedding::similarity(q, e),
                    at(row as u32),
                )
            })
        };
        let mut found: Vec<(f32, RecordRef)> = if parallel {
            (0..embs.len()).into_par_iter().filter_map(sim).collect()
        } else {
            (0..embs.len()).filter_map(sim).collect()
        };
        found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        found.truncate(k);
        all.extend(found);
    }
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
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
    let kps = index.segments()[r.seg as usize].keypoints()?[r.row as usize];
    let pts = kps.points();
    (!pts.is_empty() && !q.keypoints.is_empty()).then(|| match head {
        Some(h) => verify::verify_after_head(&q.keypoints, pts, h),
        None => verify::verify(&q.keypoints, pts),
    })
}

/// Tentative keypoint correspondences (query index, record index).
type Pairs = Vec<(u16, u16)>;

/// The live records with the most tentative keypoint matches, and the
/// tentative matches of those and of the live records in `keep`.
fn shortlist(
    index: &Index,
    q: &QueryDescriptors,
    parallel: bool,
    keep: &[RecordRef],
) -> (Vec<RecordRef>, HashMap<RecordRef, Pairs>) {
    let mut hits: Vec<(u32, RecordRef, Pairs)> = Vec::new();
    for (si, seg) in index.segments().iter().enumerate() {
        let Some(kps) = seg.keypoints() else { continue };
        let live = index.live_mask(si);
        let count = |row: usize| -> Option<(u32, RecordRef, Pairs)> {
            if !live[row] {
                return None;
            }
            let pairs = verify::tentative_head(&q.keypoints, kps[row].points());
            let n = pairs.len() as u32;
            let rec = RecordRef {
                seg: si as u32,
                row: row as u32,
            };
            (n >= MIN_TENTATIVE || keep.contains(&rec)).then_some((n, rec, pairs))
        };
        if parallel {
            hits.extend(
                (0..kps.len())
                    .into_par_iter()
                    .filter_map(count)
                    .collect::<Vec<_>>(),
            );
        } else {
            hits.extend((0..kps.len()).filter_map(count));
        }
    }
    hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut top = Vec::with_capacity(VERIFY_KEYPOINT);
    let mut heads = HashMap::new();
    for (n, r, pairs) in hits {
        let listed = n >= MIN_TENTATIVE && top.len() < VERIFY_KEYPOINT;
        if listed {
            top.push(r);
        }
        if listed || keep.contains(&r) {
            heads.insert(r, pairs);
        }
    }
    (top, heads)
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

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

/// Whether this index gets the exhaustive keypoint shortlist (not a
/// compact one: its keypoints are not stored, only read back to verify).
pub fn keypoint_scan(index: &Index) -> bool {
    keypoint_scan_for(index.live_count()) && keypoints_stored(index)
}

/// Whether some segment of `index` stores keypoints (what the exhaustive
/// shortlist scans; a compact index has them only for verification).
pub fn keypoints_stored(index: &Index) -> bool {
    index.segments().iter().any(|s| s.keypoints().is_some())
}

/// Whether an index of `live` records gets the exhaustive keypoint
/// shortlist (a fan-out check decides it from the parts' total).
pub fn keypoint_scan_for(live: usize) -> bool {
    live <= KEYPOINT_SCAN_LIMIT
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
    let take = if p.verify { VERIFY_PDQ } else { 0 };
    let keep: Vec<RecordRef> = pdq.iter().take(take).map(|m| m.rec).collect();
    let scan = p.verify && !q.keypoints.is_empty() && keypoint_scan(index);
    let k = VERIFY_EMBEDDING.max(p.top_k);
    let ev = evidence(index, q, &keep, scan, k, p);
    let short: Vec<RecordRef> = ev.shortlist.iter().map(|s| s.1).collect();
    let near: Vec<RecordRef> = ev.nearest.iter().map(|n| n.1).collect();
    // The shortlist scan's tentative matches of the records it verifies,
    // so their verification does not match those keypoints again.
    let mut heads = ev.heads;
    let scorers = Scorers::new(index, q);
    let mut out: Vec<Candidate> = plan(pdq, &short, &near, p.verify)
        .iter()
        .map(|c| score(index, q, c, heads.remove(&c.rec), &p.calibration, &scorers))
        .collect();
    sort_fused(&mut out);
    out.truncate(p.top_k);
    out
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
    scan: bool,
    k: usize,
    p: &FuseParams,
) -> Evidence {
    let (shortlist, heads) = if scan {
        shortlist(index, q, p.parallel, keep)
    } else {
        Default::default()
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
    per_segment: Vec<std::cell::OnceCell<Option<Scorer<'a>>>>,
}

impl<'a> Scorers<'a> {
    /// For query `q` (its embedding, if it has one) in `index`.
    pub fn new(index: &'a Index, q: &'a QueryDescriptors) -> Scorers<'a> {
        Scorers {
            index,
            q: q.embedding.as_deref(),
            per_segment: (0..index.segments().len())
                .map(|_| Default::default())
                .collect(),
        }
    }

    /// The query's similarity with record `r` (None: no embedding on either side).
    fn similarity(&self, r: RecordRef) -> Option<f32> {
        let q = self.q?;
        self.per_segment[r.seg as usize]
            .get_or_init(|| self.index.segments()[r.seg as usize].scorer(q))
            .as_ref()?
            .similarity(r.row)
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

/// The order of fused candidates, by (score, PDQ distance, record): best
/// score first, then the nearer hash, then the earlier record.
pub fn fused_order(a: (f64, u32, RecordRef), b: (f64, u32, RecordRef)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
}

/// Sorts candidates in [`fused_order`].
pub fn sort_fused(out: &mut [Candidate]) {
    out.sort_by(|a, b| {
        fused_order(
            (a.score, a.m.pdq_distance, a.m.rec),
            (b.score, b.m.pdq_distance, b.m.rec),
        )
    });
}

/// The order of the keypoint shortlist: most tentative matches first, then
/// the earlier record.
pub fn shortlist_order(a: &(u32, RecordRef), b: &(u32, RecordRef)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(&b.1))
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
        let Some(scorer) = seg.scorer(q) else {
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

/// Tentative keypoint correspondences (query index, record index).
pub type Pairs = Vec<(u16, u16)>;

/// The live records with the most tentative keypoint matches (at least
/// `MIN_TENTATIVE`, at most [`VERIFY_KEYPOINT`], with their counts), and the
/// tentative matches of those and of the live records in `keep`.
fn shortlist(
    index: &Index,
    q: &QueryDescriptors,
    parallel: bool,
    keep: &[RecordRef],
) -> (Vec<(u32, RecordRef)>, HashMap<RecordRef, Pairs>) {
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
    hits.sort_by(|a, b| shortlist_order(&(a.0, a.1), &(b.0, b.1)));
    let mut top = Vec::with_capacity(VERIFY_KEYPOINT);
    let mut heads = HashMap::new();
    for (n, r, pairs) in hits {
        let listed = n >= MIN_TENTATIVE && top.len() < VERIFY_KEYPOINT;
        if listed {
            top.push((n, r));
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

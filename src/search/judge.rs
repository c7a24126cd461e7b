//! Judging a query's candidates: the verdict of each, the evidence it rests
//! on, and how many near copies each matched training image has in the index.

use super::calibrate::{self, Calibration};
use super::fusion::Candidate;
use super::result::{MatchOut, QueryResult, ORIENTATIONS};
use super::{verdict, Match, Verdict};
use crate::descriptors::QueryDescriptors;
use crate::index::Index;

/// The result for one query image: its fused candidates judged and ranked.
pub fn judge(
    index: &Index,
    path: &str,
    content_hash: u128,
    q: &QueryDescriptors,
    found: &[Candidate],
    cal: &Calibration,
) -> QueryResult {
    let matches: Vec<MatchOut> = found
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let m = &c.m;
            let seg = &index.segments()[m.rec.seg as usize];
            let rec = seg.files()[m.rec.row as usize];
            let dbq = seg.quality()[m.rec.row as usize];
            let same = rec.content_hash() == content_hash;
            MatchOut {
                rank: i + 1,
                candidate: crate::ingest::names::path_text(&index.path(m.rec)),
                score: c.score,
                verdict: verdict::combined(
                    verdict::verdict(m, q.quality, dbq, same),
                    c.verification.as_ref(),
                    c.similarity,
                    cal,
                ),
                pdq_distance: m.pdq_distance,
                phash_distance: m.phash_distance,
                orientation: ORIENTATIONS[m.orientation() as usize],
                trimmed: match (m.query_trimmed(), m.candidate_trimmed()) {
                    (false, false) => "none",
                    (true, false) => "query",
                    (false, true) => "candidate",
                    (true, true) => "both",
                },
                candidate_quality: dbq,
                keypoint_matches: c.verification.map(|v| v.matches),
                inliers: c.verification.map(|v| v.inliers),
                similarity: c.similarity,
                evidence: evidence(m, c, cal),
                same_bytes: same,
                corpus_copies: None,
                rec: m.rec,
            }
        })
        .collect();
    let best = matches
        .iter()
        .map(|m| m.verdict)
        .max()
        .unwrap_or(Verdict::None);
    QueryResult {
        query: path.to_string(),
        verdict: best,
        best_score: matches.first().map(|m| m.score).unwrap_or(0.0),
        pdq: q.pdq[0].to_hex(),
        quality: q.quality,
        phash: format!("{:016x}", q.phash),
        matches,
    }
}

/// Which pieces of evidence reach the match threshold on their own, e.g.
/// "pdq+keypoints"; the strongest one when none does.
fn evidence(m: &Match, c: &Candidate, cal: &Calibration) -> String {
    let kp = c.verification.map(|v| v.inliers);
    let parts: Vec<(&str, bool, f64)> = vec![
        (
            "pdq",
            m.pdq_distance <= verdict::MATCH_PDQ,
            calibrate::pdq_score(m.pdq_distance),
        ),
        (
            "keypoints",
            kp.is_some_and(|n| n >= verdict::match_inliers()),
            kp.map(calibrate::keypoint_score).unwrap_or(-1.0),
        ),
        (
            "embedding",
            c.similarity
                .is_some_and(|s| s >= verdict::match_similarity(cal)),
            c.similarity.map(|s| cal.embedding_score(s)).unwrap_or(-1.0),
        ),
    ];
    let strong: Vec<&str> = parts.iter().filter(|p| p.1).map(|p| p.0).collect();
    if strong.is_empty() {
        let best = parts.iter().max_by(|a, b| a.2.total_cmp(&b.2)).unwrap();
        best.0.to_string()
    } else {
        strong.join("+")
    }
}

/// Sets `corpus_copies` on every match, one index pass for all distinct matched candidates.
pub fn fill_corpus_copies(index: &Index, results: &mut [QueryResult]) {
    let mut cands: Vec<crate::index::RecordRef> = results
        .iter()
        .flat_map(|q| {
            q.matches
                .iter()
                .filter(|m| m.verdict.is_match())
                .map(|m| m.rec)
        })
        .collect();
    cands.sort_unstable();
    cands.dedup();
    let counts = super::dedup::corpus_copies(index, &cands);
    for m in results
        .iter_mut()
        .flat_map(|q| q.matches.iter_mut())
        .filter(|m| m.verdict.is_match())
    {
        m.corpus_copies = cands.binary_search(&m.rec).ok().map(|i| counts[i]);
    }
}

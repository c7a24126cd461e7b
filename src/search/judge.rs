//! Judging a query's candidates: the verdict of each, the evidence it rests
//! on, and how many near copies each matched training image has in the index.

use super::calibrate::{self, Calibration};
use super::fusion::Candidate;
use super::result::{MatchOut, QueryResult, ORIENTATIONS};
use super::{verdict, Match, Verdict};
use crate::descriptors::QueryDescriptors;
use crate::index::{Index, RecordRef};

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
        .map(|c| {
            let rec = CandidateRecord::of(index, c.m.rec);
            judge_candidate(c, &rec, q.quality, content_hash, cal)
        })
        .collect();
    query_result(path, q, matches)
}

/// What judging a candidate needs of its index record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateRecord {
    /// The training file's path, as the report prints it.
    pub path: String,
    /// Its PDQ quality.
    pub quality: u8,
    /// The content hash of its file bytes.
    pub content_hash: u128,
}

impl CandidateRecord {
    /// Record `r` of `index`.
    pub fn of(index: &Index, r: RecordRef) -> CandidateRecord {
        let seg = &index.segments()[r.seg as usize];
        CandidateRecord {
            path: crate::ingest::names::path_text(&index.path(r)),
            quality: seg.quality()[r.row as usize],
            content_hash: seg.files()[r.row as usize].content_hash(),
        }
    }
}

/// One candidate judged (rank 0 and no corpus copies yet): `rec` is its
/// record, `quality` and `content_hash` the query's.
pub fn judge_candidate(
    c: &Candidate,
    rec: &CandidateRecord,
    quality: u8,
    content_hash: u128,
    cal: &Calibration,
) -> MatchOut {
    let m = &c.m;
    let dbq = rec.quality;
    let same = rec.content_hash == content_hash;
    MatchOut {
        rank: 0,
        candidate: rec.path.clone(),
        score: c.score,
        verdict: verdict::combined(
            verdict::verdict(m, quality, dbq, same),
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
        region: None,
        candidate_quality: dbq,
        keypoint_matches: c.verification.map(|v| v.matches),
        inliers: c.verification.map(|v| v.inliers),
        similarity: c.similarity,
        evidence: evidence(m, c, cal),
        same_bytes: same,
        corpus_copies: None,
        rec: m.rec,
    }
}

/// The result of query `path` from its judged candidates in fused order:
/// ranks, the best verdict, the best score.
pub fn query_result(path: &str, q: &QueryDescriptors, matches: Vec<MatchOut>) -> QueryResult {
    let mut r = QueryResult {
        query: path.to_string(),
        verdict: Verdict::None,
        best_score: 0.0,
        pdq: q.pdq[0].to_hex(),
        quality: q.quality,
        phash: format!("{:016x}", q.phash),
        matches,
    };
    r.settle();
    r
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
            kp.map(|n| calibrate::keypoint_score_alone(n, c.similarity.is_some()))
                .unwrap_or(-1.0),
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
    let cands = matched_records(results);
    let counts = super::dedup::corpus_copies(index, &cands);
    set_corpus_copies(results, &cands, &counts);
}

/// The distinct records of the results' matches (verdict exact or near
/// duplicate), in record order: those whose corpus copies are counted.
pub fn matched_records(results: &[QueryResult]) -> Vec<RecordRef> {
    let mut cands: Vec<RecordRef> = results
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
    cands
}

/// Sets `corpus_copies` on every match: `counts[i]` for record `cands[i]`
/// (`cands` as [`matched_records`] lists them).
pub fn set_corpus_copies(results: &mut [QueryResult], cands: &[RecordRef], counts: &[u32]) {
    for m in results
        .iter_mut()
        .flat_map(|q| q.matches.iter_mut())
        .filter(|m| m.verdict.is_match())
    {
        m.corpus_copies = cands
            .binary_search(&m.rec)
            .ok()
            .and_then(|i| counts.get(i).copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::verify::Verification;

    /// The label names the evidence that scored: chance-level inliers beside
    /// an embedding (which count only jointly) are not it; alone they are.
    #[test]
    fn chance_inliers_beside_an_embedding_are_not_the_evidence() {
        let cal = Calibration::for_model(Some("sscd_disc_mixup@0123456789abcdef"));
        let m = Match {
            rec: RecordRef { seg: 0, row: 0 },
            pdq_distance: 120,
            variant: 0,
            phash_distance: 30,
        };
        let v = Verification {
            matches: 20,
            inliers: 4,
            consensus: 4,
            ..Default::default()
        };
        let c = |similarity| Candidate {
            m,
            verification: Some(v),
            similarity,
            score: cal.score(&m, Some(&v), similarity),
        };
        assert_eq!(evidence(&m, &c(None), &cal), "keypoints");
        assert_eq!(evidence(&m, &c(Some(0.0)), &cal), "pdq");
        assert_eq!(evidence(&m, &c(Some(0.45)), &cal), "embedding");
        let strong = Verification { inliers: 25, ..v };
        let c = Candidate {
            verification: Some(strong),
            ..c(Some(0.0))
        };
        assert_eq!(evidence(&m, &c, &cal), "keypoints");
    }
}

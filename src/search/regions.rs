//! A query's result from its probes: the whole image and each region where
//! a copy may sit inside it ([`crate::descriptors::regions`]) are searched
//! as images of their own, and the query keeps every training image's best
//! evidence among them.

use super::result::QueryResult;
use crate::descriptors::regions::Rect;
use crate::descriptors::QueryDescriptors;

/// One search of a query: the whole image (`region` None) or one region.
pub struct Probe<'a> {
    /// Which query of the batch it belongs to.
    pub owner: usize,
    /// The region searched; None: the whole image.
    pub region: Option<Rect>,
    /// Its descriptors.
    pub q: &'a QueryDescriptors,
}

/// The probes of a batch of queries: each query's whole image, then its
/// regions.
pub fn probes<'a>(queries: impl Iterator<Item = &'a QueryDescriptors>) -> Vec<Probe<'a>> {
    let mut out = Vec::new();
    for (owner, q) in queries.enumerate() {
        out.push(Probe {
            owner,
            region: None,
            q,
        });
        out.extend(q.regions.iter().map(|r| Probe {
            owner,
            region: Some(r.rect),
            q: &r.q,
        }));
    }
    out
}

/// Folds the results of a batch's probes (in [`probes`] order: each whole
/// image, None, then its regions) into one result per image: the whole
/// image's result with, for every training image, the best-scoring evidence
/// any probe found (ties: the whole image's), at most `top_k` candidates
/// ranked again, and the verdict of the best. A region listed first stands
/// for an image of its own.
pub fn fold(results: Vec<(Option<Rect>, QueryResult)>, top_k: usize) -> Vec<QueryResult> {
    let mut out: Vec<QueryResult> = Vec::new();
    for (region, r) in results {
        match (region, out.last_mut()) {
            (None, _) | (Some(_), None) => out.push(r),
            (Some(rect), Some(q)) => {
                for mut m in r.matches {
                    m.region = Some(rect);
                    // The query's file bytes are not the region's.
                    m.same_bytes = false;
                    match q.matches.iter_mut().find(|o| o.candidate == m.candidate) {
                        Some(o) if o.score >= m.score => {}
                        Some(o) => *o = m,
                        None => q.matches.push(m),
                    }
                }
            }
        }
    }
    for q in &mut out {
        // Stable: equal scores keep the whole image's order, then the regions'.
        q.matches.sort_by(|a, b| b.score.total_cmp(&a.score));
        q.matches.truncate(top_k);
        q.settle();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::RecordRef;
    use crate::search::result::MatchOut;
    use crate::search::Verdict;

    fn m(candidate: &str, score: f64, verdict: Verdict) -> MatchOut {
        MatchOut {
            rank: 0,
            candidate: candidate.into(),
            score,
            verdict,
            pdq_distance: 100,
            phash_distance: 30,
            orientation: "original",
            trimmed: "none",
            region: None,
            candidate_quality: 100,
            keypoint_matches: None,
            inliers: None,
            similarity: None,
            evidence: "pdq".into(),
            same_bytes: true,
            corpus_copies: None,
            rec: RecordRef { seg: 0, row: 0 },
        }
    }

    fn result(query: &str, matches: Vec<MatchOut>) -> QueryResult {
        QueryResult {
            query: query.into(),
            verdict: Verdict::None,
            best_score: 0.0,
            pdq: String::new(),
            quality: 100,
            phash: String::new(),
            matches,
        }
    }

    #[test]
    fn each_candidate_keeps_its_best_evidence() {
        let r1 = Rect {
            x: 0.1,
            y: 0.2,
            w: 0.5,
            h: 0.4,
        };
        let r2 = Rect {
            x: 0.5,
            y: 0.0,
            w: 0.3,
            h: 0.3,
        };
        let n = Verdict::None;
        let out = fold(
            vec![
                (
                    None,
                    result("a", vec![m("t1", 0.4, n), m("t2", 0.3, n), m("t3", 0.2, n)]),
                ),
                // t2 much stronger in a region; t1 as strong as in the whole image.
                (
                    Some(r1),
                    result(
                        "a",
                        vec![m("t2", 0.9, Verdict::NearDuplicate), m("t1", 0.4, n)],
                    ),
                ),
                (Some(r2), result("a", vec![m("t4", 0.35, n)])),
                (None, result("b", vec![m("t9", 0.1, n)])),
            ],
            3,
        );
        assert_eq!(out.len(), 2, "one result per image");
        let a = &out[0];
        let got: Vec<(&str, usize, Option<Rect>)> = a
            .matches
            .iter()
            .map(|m| (m.candidate.as_str(), m.rank, m.region))
            .collect();
        // t1's tie keeps the whole image's evidence; top 3 only.
        assert_eq!(
            got,
            vec![("t2", 1, Some(r1)), ("t1", 2, None), ("t4", 3, Some(r2))]
        );
        assert_eq!(a.verdict, Verdict::NearDuplicate);
        assert_eq!(a.best_score, 0.9);
        assert!(!a.matches[0].same_bytes, "a region is not the file's bytes");
        assert!(a.matches[1].same_bytes);
        assert_eq!(out[1].query, "b");
        assert_eq!(out[1].matches[0].rank, 1);
    }

    #[test]
    fn a_region_without_its_image_stands_alone() {
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: 0.5,
            h: 0.5,
        };
        let out = fold(vec![(Some(r), result("a", vec![]))], 10);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].verdict, Verdict::None);
    }
}

//! A query's result from its probes: the whole image and each region where
//! a copy may sit inside it ([`crate::descriptors::regions`]) are searched
//! as images of their own, and the query keeps every training image's best
//! evidence among them.

use super::result::QueryResult;
use super::Verdict;
use crate::descriptors::regions::Rect;

/// One search of a query: the whole image (`region` None) or one region.
pub struct Probe<'a, T> {
    /// Which query of the batch it belongs to.
    pub owner: usize,
    /// The region searched; None: the whole image.
    pub region: Option<Rect>,
    /// What is searched (descriptors, or a message carrying them).
    pub what: &'a T,
}

/// The probes of a batch of queries, each query's whole image first, then
/// its regions; `regions(q)` lists a query's regions and what to search.
pub fn probes<'a, Q, T>(
    queries: &'a [Q],
    whole: impl Fn(&'a Q) -> &'a T,
    regions: impl Fn(&'a Q) -> Vec<(Rect, &'a T)>,
) -> Vec<Probe<'a, T>> {
    let mut out = Vec::with_capacity(queries.len());
    for (owner, q) in queries.iter().enumerate() {
        out.push(Probe {
            owner,
            region: None,
            what: whole(q),
        });
        out.extend(regions(q).into_iter().map(|(r, what)| Probe {
            owner,
            region: Some(r),
            what,
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
        for (i, m) in q.matches.iter_mut().enumerate() {
            m.rank = i + 1;
        }
        q.verdict = q
            .matches
            .iter()
            .map(|m| m.verdict)
            .max()
            .unwrap_or(Verdict::None);
        q.best_score = q.matches.first().map(|m| m.score).unwrap_or(0.0);
    }
    out
}

//! Checking generated images against an index: decode, describe (all
//! orientations), search, judge. Used by `query` (one image) and `check` (a folder).

use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;

use super::{search, verdict, Match, SearchParams, Verdict};
use crate::descriptors::{describe_query, QueryDescriptors};
use crate::index::Index;
use crate::ingest::walk::WalkItem;
use crate::ingest::{pipeline, DecodeMode, FileEntry, Limits, Outcome, Skipped, Walker};

pub const SCHEMA: &str = "lookalike.check/1";

#[derive(Clone, Debug, Serialize)]
pub struct MatchOut {
    pub rank: usize,
    pub candidate: String,
    pub score: f64,
    pub verdict: Verdict,
    pub pdq_distance: u32,
    pub phash_distance: u32,
    /// Orientation of the query that matched: how the copy was turned.
    pub orientation: &'static str,
    pub candidate_quality: u8,
    pub same_bytes: bool,
    /// Near copies of this training image elsewhere in the index (upright
    /// PDQ ≤ 31, itself excluded); computed for matches only, else null.
    pub corpus_copies: Option<u32>,
    #[serde(skip)]
    pub rec: crate::index::RecordRef,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryResult {
    pub query: String,
    pub verdict: Verdict,
    pub best_score: f64,
    pub pdq: String,
    pub quality: u8,
    pub phash: String,
    pub matches: Vec<MatchOut>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Thresholds {
    pub match_pdq_distance: u32,
    pub exact_pdq_distance: u32,
    pub exact_phash_distance: u32,
    pub min_quality: u8,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub schema: &'static str,
    pub index: String,
    pub index_records: usize,
    pub images_checked: usize,
    pub matched: usize,
    pub exact: usize,
    pub near_duplicate: usize,
    /// Share of checked images with a match (exact or near-duplicate).
    pub replication_rate: f64,
    pub thresholds: Thresholds,
    pub skipped: Vec<Skipped>,
    pub results: Vec<QueryResult>,
}

pub const ORIENTATIONS: [&str; 8] = ["original", "rot90", "rot180", "rot270", "flip-x", "flip-y", "flip-diag", "flip-antidiag"];

pub struct CheckOptions {
    pub mode: DecodeMode,
    pub limits: Limits,
    pub top_k: usize,
}

/// Lists the image files under `root` (a folder or one file) in name order.
pub fn collect_queries(root: &std::path::Path) -> (Vec<FileEntry>, Vec<Skipped>) {
    let mut files = vec![];
    let mut skipped = vec![];
    if root.is_file() {
        // A single file is checked whatever its extension.
        match std::fs::metadata(root) {
            Ok(md) => files.push(FileEntry { path: root.to_path_buf(), size: md.len(), mtime_ns: crate::ingest::walk::mtime_ns(&md) }),
            Err(e) => skipped.push(Skipped { path: root.display().to_string(), reason: format!("cannot stat: {e}") }),
        }
        return (files, skipped);
    }
    if !root.exists() {
        skipped.push(Skipped { path: root.display().to_string(), reason: "no such file or folder".into() });
    }
    for item in Walker::new(root) {
        match item {
            WalkItem::File(f) => files.push(f),
            WalkItem::Skipped(s) => skipped.push(s),
        }
    }
    (files, skipped)
}

pub fn check(index: &Index, files: Vec<FileEntry>, mut skipped: Vec<Skipped>, opts: &CheckOptions, progress: &ProgressBar) -> CheckReport {
    let mut results = Vec::with_capacity(files.len());
    let single = files.len() == 1;
    for chunk in files.chunks(pipeline::BATCH) {
        let processed = pipeline::process_batch(chunk.to_vec(), opts.mode, &opts.limits, |_| None, |d| describe_query(&d.rgb));
        let described: Vec<(String, u128, QueryDescriptors)> = processed
            .into_iter()
            .filter_map(|p| match p.outcome {
                Outcome::Done(q) | Outcome::Duplicate(q) => Some((p.entry.path.display().to_string(), p.content_hash, q)),
                Outcome::Skipped(reason) => {
                    skipped.push(Skipped { path: p.entry.path.display().to_string(), reason });
                    None
                }
            })
            .collect();
        let params = SearchParams { top_k: opts.top_k, max_distance: 256, parallel: single };
        let found: Vec<QueryResult> = described
            .par_iter()
            .map(|(path, ch, q)| judge(index, path, *ch, q, &search(index, q, &params)))
            .collect();
        results.extend(found);
        progress.inc(chunk.len() as u64);
    }
    fill_corpus_copies(index, &mut results);
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let (exact, near) = (count(Verdict::Exact), count(Verdict::NearDuplicate));
    CheckReport {
        schema: SCHEMA,
        index: index.dir.display().to_string(),
        index_records: index.live_count(),
        images_checked: results.len(),
        matched: exact + near,
        exact,
        near_duplicate: near,
        replication_rate: if results.is_empty() { 0.0 } else { (exact + near) as f64 / results.len() as f64 },
        thresholds: Thresholds {
            match_pdq_distance: verdict::MATCH_PDQ,
            exact_pdq_distance: verdict::EXACT_PDQ,
            exact_phash_distance: verdict::EXACT_PHASH,
            min_quality: verdict::MIN_QUALITY,
        },
        skipped,
        results,
    }
}

fn judge(index: &Index, path: &str, content_hash: u128, q: &QueryDescriptors, found: &[Match]) -> QueryResult {
    let matches: Vec<MatchOut> = found
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let seg = &index.segments[m.rec.seg as usize];
            let rec = seg.files()[m.rec.row as usize];
            let dbq = seg.quality()[m.rec.row as usize];
            let same = rec.content_hash() == content_hash;
            MatchOut {
                rank: i + 1,
                candidate: index.path(m.rec).display().to_string(),
                score: super::score(m),
                verdict: verdict(m, q.quality, dbq, same),
                pdq_distance: m.pdq_distance,
                phash_distance: m.phash_distance,
                orientation: ORIENTATIONS[m.orientation as usize],
                candidate_quality: dbq,
                same_bytes: same,
                corpus_copies: None,
                rec: m.rec,
            }
        })
        .collect();
    let best = matches.iter().map(|m| m.verdict).max().unwrap_or(Verdict::None);
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

/// Sets `corpus_copies` on every match, one index pass for all distinct matched candidates.
fn fill_corpus_copies(index: &Index, results: &mut [QueryResult]) {
    let mut cands: Vec<crate::index::RecordRef> =
        results.iter().flat_map(|q| q.matches.iter().filter(|m| m.verdict.is_match()).map(|m| m.rec)).collect();
    cands.sort_unstable();
    cands.dedup();
    let counts = super::dedup::corpus_copies(index, &cands);
    for m in results.iter_mut().flat_map(|q| q.matches.iter_mut()).filter(|m| m.verdict.is_match()) {
        m.corpus_copies = cands.binary_search(&m.rec).ok().map(|i| counts[i]);
    }
}

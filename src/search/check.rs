//! Checking generated images against an index: decode, describe (all
//! orientations), search, judge. Used by `query` (one image) and `check` (a folder).

use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;

use super::fusion::{self, Candidate};
use super::{search, verdict, Match, SearchParams, Verdict};
use crate::descriptors::{describe_query_with, Extras, QueryDescriptors};
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
    /// Which views matched: "none", "query", "candidate" or "both" had their
    /// borders / caption bars trimmed.
    pub trimmed: &'static str,
    pub candidate_quality: u8,
    /// Keypoint correspondences that passed the ratio test (null: not verified).
    pub keypoint_matches: Option<u32>,
    /// Of those, how many one affine map explains (null: not verified).
    pub inliers: Option<u32>,
    /// Cosine similarity of the learned embeddings (null: hash-only).
    pub similarity: Option<f32>,
    /// What the score rests on: the pieces of evidence ("pdq", "keypoints",
    /// "embedding") that reach the match threshold, joined by "+"; when none
    /// does, the strongest one.
    pub evidence: String,
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
    /// Verified keypoint inliers that make a match (same false-alarm rate
    /// per comparison as the PDQ threshold).
    pub match_inliers: u32,
    /// The score of all thresholds.
    pub match_score: f64,
    /// Embedding cosine similarity that makes a match (same false-alarm rate).
    pub match_similarity: f32,
    /// The model whose embeddings were compared (null: hash-only).
    pub embedding_model: Option<String>,
    /// Whether keypoints of the query were compared with every indexed image
    /// (indexes up to 20 000 images) or only with the PDQ candidates.
    pub keypoint_scan: bool,
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

pub const ORIENTATIONS: [&str; 8] = [
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flip-x",
    "flip-y",
    "flip-diag",
    "flip-antidiag",
];

pub struct CheckOptions {
    pub mode: DecodeMode,
    pub limits: Limits,
    pub top_k: usize,
    /// Run the verification stage (`fusion`); off: PDQ evidence only.
    pub verify: bool,
    /// Embed queries and search the index's embeddings (the index has them).
    pub embed: bool,
    /// Describe (and, for batches of >= GPU_MIN_BATCH images, search) on this GPU engine.
    pub gpu: Option<std::sync::Arc<crate::gpu::GpuEngine>>,
}

/// Below this many query images the CPU scan is as fast as a GPU round trip.
pub const GPU_MIN_BATCH: usize = 64;

/// Lists the image files under `root` (a folder or one file) in name order.
pub fn collect_queries(root: &std::path::Path) -> (Vec<FileEntry>, Vec<Skipped>) {
    let mut files = vec![];
    let mut skipped = vec![];
    if root.is_file() {
        // A single file is checked whatever its extension.
        match std::fs::metadata(root) {
            Ok(md) => files.push(FileEntry {
                path: root.to_path_buf(),
                size: md.len(),
                mtime_ns: crate::ingest::walk::mtime_ns(&md),
            }),
            Err(e) => skipped.push(Skipped {
                path: crate::report::path_text(root),
                reason: format!("cannot stat: {e}"),
            }),
        }
        return (files, skipped);
    }
    if !root.exists() {
        skipped.push(Skipped {
            path: crate::report::path_text(root),
            reason: "no such file or folder".into(),
        });
    }
    for item in Walker::new(root) {
        match item {
            WalkItem::File(f) => files.push(f),
            WalkItem::Skipped(s) => skipped.push(s),
        }
    }
    (files, skipped)
}

pub fn check(
    index: &Index,
    files: Vec<FileEntry>,
    mut skipped: Vec<Skipped>,
    opts: &CheckOptions,
    progress: &ProgressBar,
) -> CheckReport {
    let mut results = Vec::with_capacity(files.len());
    let single = files.len() == 1;
    // An index without keypoints (`index --no-keypoints`) has nothing to
    // verify against: the query's keypoints would be extracted for nothing.
    let verify = opts.verify && index.has_keypoints();
    let extras = Extras {
        embedding: opts.embed,
        keypoints: verify,
    };
    for chunk in files.chunks(pipeline::BATCH) {
        use crate::gpu::ingest::{resolve, Deferred};
        let processed = pipeline::process_batch(
            chunk.to_vec(),
            opts.mode,
            &opts.limits,
            |_| None,
            |d| match &opts.gpu {
                Some(_) => Deferred::Pixels(std::sync::Arc::new(d.rgb.clone())),
                None => Deferred::Ready(describe_query_with(&d.rgb, extras)),
            },
        );
        let processed = resolve(processed, |imgs| {
            opts.gpu
                .as_ref()
                .expect("pixels only kept for the GPU")
                .describe_batch_with(imgs, extras)
        });
        let described: Vec<(String, u128, QueryDescriptors)> = processed
            .into_iter()
            .filter_map(|p| match p.outcome {
                Outcome::Done(q) | Outcome::Duplicate(q) => {
                    Some((crate::report::path_text(&p.entry.path), p.content_hash, q))
                }
                Outcome::Skipped(failure) => {
                    skipped.push(Skipped {
                        path: crate::report::path_text(&p.entry.path),
                        reason: failure.reason,
                    });
                    None
                }
            })
            .collect();
        let params = SearchParams {
            top_k: opts.top_k.max(fusion::VERIFY_PDQ),
            max_distance: 256,
            parallel: single,
        };
        let judge = |path: &str, ch: u128, q: &QueryDescriptors, found: &[Match]| {
            let cands = fusion::fuse(index, q, found, opts.top_k, single, verify);
            judge(index, path, ch, q, &cands)
        };
        let found: Vec<QueryResult> = match &opts.gpu {
            Some(e) if described.len() >= GPU_MIN_BATCH => {
                let qs: Vec<QueryDescriptors> = described.iter().map(|d| d.2.clone()).collect();
                let hits = gpu_search(index, e, &qs, params.top_k);
                described
                    .par_iter()
                    .zip(hits)
                    .map(|((path, ch, q), m)| judge(path, *ch, q, &m))
                    .collect()
            }
            _ => described
                .par_iter()
                .map(|(path, ch, q)| judge(path, *ch, q, &search(index, q, &params)))
                .collect(),
        };
        results.extend(found);
        progress.inc(chunk.len() as u64);
    }
    fill_corpus_copies(index, &mut results);
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let (exact, near) = (count(Verdict::Exact), count(Verdict::NearDuplicate));
    CheckReport {
        schema: SCHEMA,
        index: crate::report::path_text(&index.dir),
        index_records: index.live_count(),
        images_checked: results.len(),
        matched: exact + near,
        exact,
        near_duplicate: near,
        replication_rate: if results.is_empty() {
            0.0
        } else {
            (exact + near) as f64 / results.len() as f64
        },
        thresholds: Thresholds {
            match_pdq_distance: verdict::MATCH_PDQ,
            exact_pdq_distance: verdict::EXACT_PDQ,
            exact_phash_distance: verdict::EXACT_PHASH,
            min_quality: verdict::MIN_QUALITY,
            match_inliers: verdict::match_inliers(),
            match_score: verdict::match_score(),
            match_similarity: verdict::match_similarity(),
            embedding_model: opts.embed.then(crate::descriptors::embedding::model_label),
            keypoint_scan: verify && fusion::keypoint_scan(index),
        },
        skipped,
        results,
    }
}

/// `search` for many queries at once with the GPU Hamming kernel: same
/// matches, same order (distance, then segment and row), same variant codes.
/// The kernel compares 8 query hashes with one column, so it runs once per
/// (query view, candidate view) pair; every record keeps its best (distance,
/// code), which is what the CPU scan picks, and the union of the runs' top-k
/// lists contains the overall top-k.
pub fn gpu_search(
    index: &Index,
    e: &crate::gpu::GpuEngine,
    qs: &[QueryDescriptors],
    top_k: usize,
) -> Vec<Vec<Match>> {
    use crate::descriptors::Hash256;
    use std::collections::HashMap;
    let upright: Vec<[Hash256; 8]> = qs.iter().map(|q| q.pdq).collect();
    // Queries without a trimmed view repeat the upright one: same distances,
    // higher codes, so they never win a tie.
    let trimmed: Vec<[Hash256; 8]> = qs.iter().map(|q| q.pdq_trim.unwrap_or(q.pdq)).collect();
    let any_trim = qs.iter().any(|q| q.pdq_trim.is_some());
    let mut all: Vec<Vec<Match>> = vec![Vec::new(); qs.len()];
    for (si, seg) in index.segments.iter().enumerate() {
        let live = index.live_mask(si);
        let mut best: Vec<HashMap<u32, (u16, u8)>> = vec![HashMap::new(); qs.len()];
        let mut runs: Vec<(&[Hash256], &Vec<[Hash256; 8]>, u8)> = vec![
            (seg.pdq(), &upright, 0),
            (seg.pdq_trim(), &upright, super::hamming::CANDIDATE_TRIMMED),
        ];
        if any_trim {
            runs.push((seg.pdq(), &trimmed, 8));
            runs.push((
                seg.pdq_trim(),
                &trimmed,
                8 | super::hamming::CANDIDATE_TRIMMED,
            ));
        }
        for (col, queries, flag) in runs {
            for (acc, hits) in best
                .iter_mut()
                .zip(e.hamming_topk(col, live, queries, top_k))
            {
                for (row, d, o) in hits {
                    let cand = (d, o | flag);
                    acc.entry(row)
                        .and_modify(|b| *b = (*b).min(cand))
                        .or_insert(cand);
                }
            }
        }
        for (acc, b) in all.iter_mut().zip(best) {
            acc.extend(b.into_iter().map(|(row, (d, code))| Match {
                rec: crate::index::RecordRef {
                    seg: si as u32,
                    row,
                },
                pdq_distance: d as u32,
                variant: code,
                phash_distance: 0,
            }));
        }
    }
    for (ms, q) in all.iter_mut().zip(qs) {
        ms.sort_by_key(|m| (m.pdq_distance, m.rec));
        ms.truncate(top_k);
        for m in ms.iter_mut() {
            let ph = index.segments[m.rec.seg as usize].phash()[m.rec.row as usize];
            m.phash_distance = (ph ^ q.phash).count_ones();
        }
    }
    all
}

fn judge(
    index: &Index,
    path: &str,
    content_hash: u128,
    q: &QueryDescriptors,
    found: &[Candidate],
) -> QueryResult {
    let matches: Vec<MatchOut> = found
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let m = &c.m;
            let seg = &index.segments[m.rec.seg as usize];
            let rec = seg.files()[m.rec.row as usize];
            let dbq = seg.quality()[m.rec.row as usize];
            let same = rec.content_hash() == content_hash;
            MatchOut {
                rank: i + 1,
                candidate: crate::report::path_text(&index.path(m.rec)),
                score: c.score,
                verdict: verdict::combined(
                    verdict(m, q.quality, dbq, same),
                    c.verification.as_ref(),
                    c.similarity,
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
                evidence: evidence(m, c),
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
fn evidence(m: &Match, c: &Candidate) -> String {
    let kp = c.verification.map(|v| v.inliers);
    let parts: Vec<(&str, bool, f64)> = vec![
        (
            "pdq",
            m.pdq_distance <= verdict::MATCH_PDQ,
            super::calibrate::pdq_score(m.pdq_distance),
        ),
        (
            "keypoints",
            kp.is_some_and(|n| n >= verdict::match_inliers()),
            kp.map(super::calibrate::keypoint_score).unwrap_or(-1.0),
        ),
        (
            "embedding",
            c.similarity
                .is_some_and(|s| s >= verdict::match_similarity()),
            c.similarity
                .map(super::calibrate::embedding_score)
                .unwrap_or(-1.0),
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
fn fill_corpus_copies(index: &Index, results: &mut [QueryResult]) {
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

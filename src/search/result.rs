//! What a check finds, as `check --json` prints it (schema
//! `lookalike.check/1`): per query image its ranked training matches, each
//! with its distances, evidence and verdict; and the batch's summary.

use serde::Serialize;

use super::calibrate::Calibration;
use super::{verdict, Verdict};
use crate::ingest::Skipped;

/// The schema name `check --json` writes.
pub const SCHEMA: &str = "lookalike.check/1";

/// One training candidate of a query image.
#[derive(Clone, Debug, Serialize)]
pub struct MatchOut {
    /// 1 = best.
    pub rank: usize,
    /// The training file's path.
    pub candidate: String,
    /// Calibrated score in [0, 1): equal scores, equal false-alarm rates.
    pub score: f64,
    /// exact / near-duplicate / none.
    pub verdict: Verdict,
    /// PDQ Hamming distance (best orientation and view).
    pub pdq_distance: u32,
    /// pHash Hamming distance.
    pub phash_distance: u32,
    /// Orientation of the query that matched: how the copy was turned.
    pub orientation: &'static str,
    /// Which views matched: "none", "query", "candidate" or "both" had their
    /// borders / caption bars trimmed.
    pub trimmed: &'static str,
    /// The part of the query image this evidence came from, in its pixels
    /// (a proposed region: a picture inside a screenshot or pasted onto
    /// another); null: the whole image.
    pub region: Option<crate::descriptors::regions::Rect>,
    /// The training image's PDQ quality (below 50: unreliable hash).
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
    /// The query file has the same bytes as the training file.
    pub same_bytes: bool,
    /// Near copies of this training image elsewhere in the index (upright
    /// PDQ ≤ 31, itself excluded); computed for matches only, else null.
    pub corpus_copies: Option<u32>,
    /// Where the candidate is in the index.
    #[serde(skip)]
    pub rec: crate::index::RecordRef,
}

/// One checked image and its candidates.
#[derive(Clone, Debug, Serialize)]
pub struct QueryResult {
    /// The query file's path.
    pub query: String,
    /// The best verdict among its candidates.
    pub verdict: Verdict,
    /// The best candidate's score (0 without candidates).
    pub best_score: f64,
    /// The query's PDQ, ThreatExchange hex.
    pub pdq: String,
    /// The query's PDQ quality.
    pub quality: u8,
    /// The query's pHash, imagehash hex.
    pub phash: String,
    /// Ranked candidates, best first.
    pub matches: Vec<MatchOut>,
}

impl QueryResult {
    /// Derives what follows from `matches` (in their final order): each
    /// one's rank, the image's verdict (the best of theirs) and best score.
    pub fn settle(&mut self) {
        for (i, m) in self.matches.iter_mut().enumerate() {
            m.rank = i + 1;
        }
        self.verdict = self
            .matches
            .iter()
            .map(|m| m.verdict)
            .max()
            .unwrap_or(Verdict::None);
        self.best_score = self.matches.first().map(|m| m.score).unwrap_or(0.0);
    }
}

/// The thresholds a check ran with (they decide the verdicts).
#[derive(Clone, Debug, Serialize)]
pub struct Thresholds {
    /// PDQ distance at or below which images match.
    pub match_pdq_distance: u32,
    /// PDQ distance at or below which a match is exact (with pHash).
    pub exact_pdq_distance: u32,
    /// pHash distance at or below which a close PDQ match is exact.
    pub exact_phash_distance: u32,
    /// PDQ quality below which pHash must confirm a PDQ match.
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
    /// of some segment (one without a keypoint table, written by an earlier
    /// build, in an index of up to 20 000 images).
    pub keypoint_scan: bool,
    /// Whether the images compared by keypoints were proposed by the
    /// index's keypoint tables. With neither, only the PDQ and embedding
    /// candidates were compared.
    pub keypoint_table: bool,
}

/// A whole check: what `check --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The index folder.
    pub index: String,
    /// Live images in the index.
    pub index_records: usize,
    /// The engine that described the queries (`Engine::label`), for the
    /// HTML report's settings; not part of the JSON schema.
    #[serde(skip)]
    pub device: String,
    /// Query images described and searched.
    pub images_checked: usize,
    /// Of those, how many matched (exact or near-duplicate).
    pub matched: usize,
    /// Exact matches.
    pub exact: usize,
    /// Near-duplicate matches.
    pub near_duplicate: usize,
    /// Share of checked images with a match (exact or near-duplicate).
    pub replication_rate: f64,
    /// The thresholds used.
    pub thresholds: Thresholds,
    /// Files that could not be checked, and why.
    pub skipped: Vec<Skipped>,
    /// One entry per checked image, in name order.
    pub results: Vec<QueryResult>,
}

impl Thresholds {
    /// The thresholds of a check: `verify` (verification ran: asked, and
    /// the index has keypoints), `embed` (embeddings compared, of `model`),
    /// the calibration of the index's model, and the keypoint shortlist's
    /// routes (`fusion::keypoint_routes`: some segment scanned, some table voted).
    pub fn of_check(
        verify: bool,
        embed: bool,
        model: Option<String>,
        cal: &Calibration,
        (scanned, tabled): (bool, bool),
    ) -> Thresholds {
        Thresholds {
            match_pdq_distance: verdict::MATCH_PDQ,
            exact_pdq_distance: verdict::EXACT_PDQ,
            exact_phash_distance: verdict::EXACT_PHASH,
            min_quality: verdict::MIN_QUALITY,
            match_inliers: verdict::match_inliers(),
            match_score: verdict::match_score(),
            match_similarity: verdict::match_similarity(cal),
            embedding_model: if embed { model } else { None },
            keypoint_scan: verify && scanned,
            keypoint_table: verify && tabled,
        }
    }
}

impl CheckReport {
    /// The report of `results` on an index (`index`: its folder, or a
    /// label), with counts and rate set from the results' verdicts.
    pub fn new(
        index: String,
        index_records: usize,
        device: String,
        thresholds: Thresholds,
        skipped: Vec<Skipped>,
        results: Vec<QueryResult>,
    ) -> CheckReport {
        let mut r = CheckReport {
            schema: SCHEMA,
            index,
            index_records,
            device,
            images_checked: 0,
            matched: 0,
            exact: 0,
            near_duplicate: 0,
            replication_rate: 0.0,
            thresholds,
            skipped,
            results,
        };
        r.count_verdicts();
        r
    }

    /// Sets the counts and the replication rate from the results' verdicts.
    pub fn count_verdicts(&mut self) {
        let count = |v: Verdict| self.results.iter().filter(|q| q.verdict == v).count();
        let (exact, near) = (count(Verdict::Exact), count(Verdict::NearDuplicate));
        self.images_checked = self.results.len();
        self.exact = exact;
        self.near_duplicate = near;
        self.matched = exact + near;
        self.replication_rate = if self.results.is_empty() {
            0.0
        } else {
            self.matched as f64 / self.results.len() as f64
        };
    }
}

/// Names of the 8 query orientations, in the order of the PDQ variants.
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

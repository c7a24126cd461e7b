//! Verdicts and scores for hash matches. Thresholds (documented in README):
//!
//! * PDQ distance ≤ 31 of 256 bits is a match — Meta's published guidance for
//!   PDQ (ThreatExchange `pdq/README.md`), with a false-positive rate near
//!   10⁻⁶ per comparison on photos.
//! * PDQ quality < 50 means the hash is unreliable (flat or tiny images):
//!   such matches also need pHash to agree before we call them anything.
//! * Exact: the same bytes, or PDQ ≤ 8 and pHash ≤ 4 — a re-encode or
//!   resize of the same pixels, not a reinterpretation.

use serde::Serialize;

use super::Match;

/// Largest PDQ distance (of 256 bits) that counts as a match (Meta's guidance).
pub const MATCH_PDQ: u32 = 31;
/// Largest PDQ distance of an exact copy (with pHash ≤ [`EXACT_PHASH`]).
pub const EXACT_PDQ: u32 = 8;
/// Largest pHash distance of an exact copy.
pub const EXACT_PHASH: u32 = 4;
/// PDQ quality below which a hash is unreliable and pHash must agree too.
pub const MIN_QUALITY: u8 = 50;
/// pHash agreement needed to back a match when PDQ quality is low.
pub const LOW_QUALITY_PHASH: u32 = 10;

/// How close a copy is: the order is None < NearDuplicate < Exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// No match.
    None,
    /// A match: the same picture, possibly edited (cropped, recoloured, turned).
    NearDuplicate,
    /// The same bytes, or the same pixels re-encoded or resized.
    Exact,
}

impl Verdict {
    /// The name used in every report: "exact", "near-duplicate" or "none".
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Exact => "exact",
            Verdict::NearDuplicate => "near-duplicate",
            Verdict::None => "none",
        }
    }

    /// Whether this is a match of any strength.
    pub fn is_match(&self) -> bool {
        *self != Verdict::None
    }
}

/// Verdict for one match. `same_bytes`: the files are byte-identical.
/// pHash is neither rotation nor crop invariant, so it only counts for an
/// upright, untrimmed comparison.
pub fn verdict(m: &Match, query_quality: u8, db_quality: u8, same_bytes: bool) -> Verdict {
    if same_bytes {
        return Verdict::Exact;
    }
    let phash_agrees = |limit| m.variant == 0 && m.phash_distance <= limit;
    if m.pdq_distance > MATCH_PDQ {
        return Verdict::None;
    }
    if query_quality < MIN_QUALITY || db_quality < MIN_QUALITY {
        return if phash_agrees(LOW_QUALITY_PHASH) {
            Verdict::NearDuplicate
        } else {
            Verdict::None
        };
    }
    if m.pdq_distance <= EXACT_PDQ && phash_agrees(EXACT_PHASH) {
        Verdict::Exact
    } else {
        Verdict::NearDuplicate
    }
}

/// Verified keypoint inliers that make a match: the count whose calibrated
/// score equals that of PDQ distance `MATCH_PDQ`.
pub fn match_inliers() -> u32 {
    super::calibrate::inliers_matching_pdq(MATCH_PDQ)
}

/// The calibrated score of both match thresholds.
pub fn match_score() -> f64 {
    super::calibrate::pdq_score(MATCH_PDQ)
}

/// Embedding cosine that makes a match: the value whose calibrated score
/// (under `cal`) equals that of PDQ distance `MATCH_PDQ`.
pub fn match_similarity(cal: &super::calibrate::Calibration) -> f32 {
    cal.similarity_matching_pdq(MATCH_PDQ)
}

/// The hash verdict, raised to near-duplicate when geometric verification
/// found enough inliers (a crop, rotation or paste that hashes miss) or the
/// embeddings are as close as a PDQ match is rare.
pub fn combined(
    hash: Verdict,
    v: Option<&super::verify::Verification>,
    similarity: Option<f32>,
    cal: &super::calibrate::Calibration,
) -> Verdict {
    let kp = v.is_some_and(|v| v.inliers >= match_inliers());
    let emb = similarity.is_some_and(|s| s >= match_similarity(cal));
    if kp || emb {
        hash.max(Verdict::NearDuplicate)
    } else {
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::RecordRef;

    fn m(d: u32, o: u8, ph: u32) -> Match {
        Match {
            rec: RecordRef { seg: 0, row: 0 },
            pdq_distance: d,
            variant: o,
            phash_distance: ph,
        }
    }

    #[test]
    fn thresholds() {
        assert_eq!(verdict(&m(3, 0, 2), 90, 90, false), Verdict::Exact);
        assert_eq!(verdict(&m(3, 2, 2), 90, 90, false), Verdict::NearDuplicate);
        assert_eq!(
            verdict(&m(31, 0, 30), 90, 90, false),
            Verdict::NearDuplicate
        );
        assert_eq!(verdict(&m(32, 0, 0), 90, 90, false), Verdict::None);
        assert_eq!(verdict(&m(10, 0, 20), 30, 90, false), Verdict::None);
        assert_eq!(verdict(&m(10, 0, 5), 30, 90, false), Verdict::NearDuplicate);
        assert_eq!(verdict(&m(200, 0, 60), 90, 90, true), Verdict::Exact);
    }
}

//! One score per candidate, whatever evidence produced it.
//!
//! Each kind of evidence is mapped to the chance that an UNRELATED image
//! would show evidence at least this strong against one indexed record (its
//! null tail probability p), and the score is −log10(p) / 10, clamped to
//! [0, 1]. Equal scores therefore mean equal false-alarm rates per
//! comparison: a score of s lets through about N·10^(−10·s) unrelated records
//! per query on an index of N records. The candidate's score is the best of
//! its evidence (PDQ distance, verified keypoint inliers).
//!
//! The null tails were measured, not assumed: every image of a 300-image
//! photo corpus against every other (89 700 ordered pairs, none related),
//! and the log-linear fit of each tail is extrapolated below the smallest
//! probabilities such a sample can show. `scripts/calibrate.py` redoes the fit
//! from `lookalike check --csv` output; README "Scores" documents it.

use super::hamming::Match;
use super::verify::Verification;

/// log10 P(null min PDQ distance ≤ d) ≈ PDQ_A + PDQ_B·d, for d below the bulk.
const PDQ_A: f64 = -9.287;
const PDQ_B: f64 = 0.0732;
/// log10 P(null inliers ≥ n) ≈ KP_A + KP_B·n.
const KP_A: f64 = -1.787;
const KP_B: f64 = -0.2649;
/// log10 P(null cosine ≥ c) ≈ a + b·c, for c above the bulk, per model.
/// EfficientNet-Lite0 (the built-in model): its tail is fat (unrelated clip
/// art reaches 0.87), so it ranks and shortlists but rarely accuses alone.
const LITE0_TAIL: (f64, f64) = (4.076, -9.6867);
/// SSCD ResNet-50 at 288²: fitted over c = 0.30..0.55 on the 89 700
/// ordered pairs of `../shared/corpus/db` (unrelated images; the largest
/// cosine among them is 0.80). Also heavy: even c = 1 scores below the match
/// threshold, so SSCD too ranks and shortlists, and verification accuses.
const SSCD_TAIL: (f64, f64) = (-0.883, -4.170);

/// The cosine tail of the model that embeds (`descriptors::embedding`):
/// SSCD's for models named `sscd…`, else the built-in model's.
pub fn embedding_tail() -> (f64, f64) {
    let name = crate::descriptors::embedding::model()
        .name
        .to_ascii_lowercase();
    if name.contains("sscd") {
        SSCD_TAIL
    } else {
        LITE0_TAIL
    }
}

fn from_log10_p(lp: f64) -> f64 {
    (-lp / 10.0).clamp(0.0, 1.0)
}

/// Score of a PDQ distance alone.
pub fn pdq_score(d: u32) -> f64 {
    from_log10_p((PDQ_A + PDQ_B * d as f64).min(0.0))
}

/// Score of a verification alone.
pub fn keypoint_score(inliers: u32) -> f64 {
    from_log10_p((KP_A + KP_B * inliers as f64).min(0.0))
}

/// Score of an embedding cosine similarity alone.
pub fn embedding_score(cos: f32) -> f64 {
    let (a, b) = embedding_tail();
    from_log10_p((a + b * cos as f64).min(0.0))
}

pub fn score(m: &Match, v: Option<&Verification>, similarity: Option<f32>) -> f64 {
    let kp = v.map(|v| keypoint_score(v.inliers)).unwrap_or(0.0);
    let emb = similarity.map(embedding_score).unwrap_or(0.0);
    pdq_score(m.pdq_distance).max(kp).max(emb)
}

/// The smallest cosine whose score reaches that of PDQ distance `d`.
pub fn similarity_matching_pdq(d: u32) -> f32 {
    let target = pdq_score(d);
    let (a, b) = embedding_tail();
    ((target * -10.0 - a) / b) as f32
}

/// The fewest inliers whose score reaches that of a PDQ distance of `d`:
/// the keypoint threshold with the same false-alarm rate as PDQ's.
pub fn inliers_matching_pdq(d: u32) -> u32 {
    let target = pdq_score(d);
    (0..=u16::MAX as u32)
        .find(|&n| keypoint_score(n) >= target)
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_monotone_and_bounded() {
        let mut last = 2.0;
        for d in 0..=256 {
            let s = pdq_score(d);
            assert!((0.0..=1.0).contains(&s) && s <= last);
            last = s;
        }
        assert_eq!(pdq_score(256), 0.0);
        let n = inliers_matching_pdq(31);
        assert!(keypoint_score(n) >= pdq_score(31));
        assert!(keypoint_score(n - 1) < pdq_score(31));
    }
}

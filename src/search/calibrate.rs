//! One score per candidate, whatever evidence produced it.
//!
//! Each kind of evidence is mapped to the chance that an UNRELATED image
//! would show evidence at least this strong against one indexed record (its
//! null tail probability p), and the score is −log10(p) / 10, clamped to
//! [0, 1]. Equal scores therefore mean equal false-alarm rates per
//! comparison: a score of s lets through about N·10^(−10·s) unrelated records
//! per query on an index of N records. The candidate's score is the best of
//! its evidence (PDQ distance, verified keypoint inliers, embedding cosine),
//! or of keypoints and embedding together, scored by their joint null tail:
//! with T = log10 p_kp + log10 p_emb, P(T ≤ t) was measured (SSCD, whitened
//! and raw Lite0 pooled) instead of assumed. The two are not independent for
//! unrelated images — portraits painted on one background template share
//! both corners and likeness — so the tail is far heavier than Fisher's
//! P(p₁·p₂ ≤ t) = t·(1 − ln t) (at t = −8: 10^−4.6 measured, 10^−6.7
//! Fisher), which would score such a pair above real copies. The fitted
//! line is never allowed past Fisher's bound (what independence would give).
//! A chance-level verification (under [`CHANCE_INLIERS`] inliers) counts
//! alone only where no embedding was measured.
//! Above 0.9 (p ≤ 10⁻⁹) scores are compressed instead of clamped, so the
//! strongest matches still rank by strength: 0.9 + 0.1·(1 − 1/(1 + (L − 9)/10))
//! for L = −log10 p > 9 (never reaching 1).
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
/// log10 P(null T ≤ t) ≈ JOINT_A + JOINT_B·t for T = log10 p_kp + log10 p_emb
/// (module doc), for t ≤ [`JOINT_FROM`]: fitted over t = −9..−5.5 on every
/// ordered pair of `../shared/corpus/db` (999 000, related ones dropped)
/// checked against its own index three times, pooled: SSCD, whitened Lite0
/// and raw Lite0 (an index without whitening), every path that combines. The
/// three agree within 0.3 there (P(T ≤ −7) = 10^−4.34, 10^−4.14, 10^−3.81):
/// `python3 scripts/calibrate.py white.csv sscd.csv raw.csv --images 1000
/// --joint --embedding-tail=4.076,-9.6867 --embedding-tail=-0.883,-4.170,0.30
/// --embedding-tail=4.076,-9.6867`.
const JOINT_A: f64 = -0.086;
const JOINT_B: f64 = 0.550;
/// Above this T the line is not extrapolated: the combination claims
/// nothing (its bulk was never measured: each run kept 10 candidates a query).
const JOINT_FROM: f64 = -5.5;
/// Verifications with fewer inliers are the bulk of unrelated candidates:
/// of the 1 830 verified candidates of the 189 unrelated queries of
/// ../shared/corpus, 96 % had 3 to 5 inliers (or none). Their tail line still
/// gives them a score (4 inliers: p = 10^−2.85 a comparison, about one
/// unrelated record in 700), and where nothing else is measured
/// (`--hash-only`) that score ranks candidates. Beside an embedding they
/// count only jointly with it, never alone: otherwise 4 chance inliers on a
/// record the embedding finds as unlike the query as unrelated images are
/// (SSCD cosine 0.0) outrank the copy the embedding finds (cosine 0.44,
/// p = 10^−2.7, no inliers), and fusion ranks below its best single piece
/// of evidence. Measured in `--model` SSCD mode: of the 5 056 candidates
/// listed whose evidence was 2 to 5 inliers, 4 were copies (cosines 0.25–0.48)
/// and the rest had a median cosine of 0.07.
pub const CHANCE_INLIERS: u32 = 6;

/// Whether a verification of `inliers` counts by itself (module doc and
/// [`CHANCE_INLIERS`]).
fn counts_alone(inliers: u32, with_embedding: bool) -> bool {
    inliers >= CHANCE_INLIERS || !with_embedding
}

/// log10 P(null cosine ≥ c) ≈ a + b·c, for c above the bulk, per model.
/// EfficientNet-Lite0 (the built-in model): its tail is fat (unrelated clip
/// art reaches 0.87), so it ranks and shortlists but rarely accuses alone.
const LITE0_TAIL: (f64, f64) = (4.076, -9.6867);
/// Lite0's cosines after a segment's whitening (`index::whitening`): fitted
/// over P = 10^−2.5..10^−4.5 on 1.5 M pairs of `../shared/corpus/db`, each
/// a row of one random half against a whitening fitted on the other
/// (queries are never in the rows a whitening was fitted on), related pairs
/// dropped (`scripts/calibrate_whitening.py`). Whitened, unrelated images
/// spread out: P = 10⁻⁴ is reached at 0.71 instead of 0.85, while copies
/// keep most of their similarity.
const LITE0_WHITENED_TAIL: (f64, f64) = (-1.246, -4.008);
/// SSCD ResNet-50 at 288²: fitted over c = 0.30..0.55 on the 89 700
/// ordered pairs of `../shared/corpus/db` (unrelated images; the largest
/// cosine among them is 0.80). Also heavy: even c = 1 scores below the match
/// threshold, so SSCD too ranks and shortlists, and verification accuses.
const SSCD_TAIL: (f64, f64) = (-0.883, -4.170);
/// Below its fitted range SSCD's line is not extrapolated: no evidence.
const SSCD_FIT_FROM: f32 = 0.30;

/// The calibration of one index: which model's cosine tail its embedding
/// evidence follows. Taken from the model the index records (its manifest's
/// `embedding`), so two indexes of different models can be searched in one
/// process, each by its own tail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    /// log10 P(null cosine ≥ c) ≈ a + b·c.
    tail: (f64, f64),
    /// Below this cosine the tail carries no evidence.
    floor: f32,
    /// The tail of whitened cosines (None: the model's similarity is never
    /// whitened: SSCD is trained for copies and its tail was fitted raw).
    whitened: Option<(f64, f64)>,
}

impl Default for Calibration {
    /// The built-in model's (EfficientNet-Lite0).
    fn default() -> Self {
        // Lite0's line reaches p = 1 by itself (at c = 0.42).
        Calibration {
            tail: LITE0_TAIL,
            floor: f32::NEG_INFINITY,
            whitened: Some(LITE0_WHITENED_TAIL),
        }
    }
}

impl Calibration {
    /// For embeddings of the model labelled `model` ("name@fingerprint", as
    /// indexes record it): SSCD's tail for models named `sscd…`, else the
    /// built-in model's (also for hash-only indexes, `None`).
    pub fn for_model(model: Option<&str>) -> Calibration {
        match model {
            Some(m) if m.to_ascii_lowercase().contains("sscd") => Calibration {
                tail: SSCD_TAIL,
                floor: SSCD_FIT_FROM,
                whitened: None,
            },
            _ => Calibration::default(),
        }
    }

    /// The calibration of `index`'s recorded embedding model.
    pub fn for_index(index: &crate::index::Index) -> Calibration {
        Calibration::for_model(index.embedding_model())
    }

    /// The cosine tail (a, b): log10 P(null cosine ≥ c) ≈ a + b·c.
    pub fn embedding_tail(&self) -> (f64, f64) {
        self.tail
    }

    /// Whether segments' whitenings are used for this model's similarity.
    pub fn whitens(&self) -> bool {
        self.whitened.is_some()
    }

    /// The raw cosine with the same null tail probability as whitened
    /// cosine `cw`: how a whitened similarity is scored and reported, so
    /// that thresholds, verdicts and outputs keep one scale whichever
    /// segments were whitened. `cw` itself without a whitened tail.
    pub fn from_whitened(&self, cw: f32) -> f32 {
        match self.whitened {
            Some((aw, bw)) => {
                let (a, b) = self.tail;
                ((aw + bw * cw as f64 - a) / b) as f32
            }
            None => cw,
        }
    }

    fn embedding_log10_p(&self, cos: f32) -> f64 {
        let (a, b) = self.tail;
        if cos < self.floor {
            return 0.0;
        }
        (a + b * cos as f64).min(0.0)
    }

    /// Score of an embedding cosine similarity alone.
    pub fn embedding_score(&self, cos: f32) -> f64 {
        from_log10_p(self.embedding_log10_p(cos))
    }

    /// One candidate's score from all its evidence (see the module doc).
    pub fn score(&self, m: &Match, v: Option<&Verification>, similarity: Option<f32>) -> f64 {
        let kp = v.map(|v| keypoint_log10_p(v.inliers)).unwrap_or(0.0);
        let emb = similarity.map(|c| self.embedding_log10_p(c)).unwrap_or(0.0);
        let kp_alone = match v {
            Some(v) if !counts_alone(v.inliers, similarity.is_some()) => 0.0,
            _ => kp,
        };
        let best = pdq_log10_p(m.pdq_distance).min(kp_alone).min(emb);
        from_log10_p(best.min(joint_log10_p(kp, emb)))
    }

    /// The smallest cosine whose score reaches that of PDQ distance `d`.
    pub fn similarity_matching_pdq(&self, d: u32) -> f32 {
        let target = pdq_score(d);
        let (a, b) = self.tail;
        ((target * -10.0 - a) / b) as f32
    }
}

/// −log10 p → score: linear up to 0.9, compressed above (see the module doc).
fn from_log10_p(lp: f64) -> f64 {
    let l = (-lp).max(0.0);
    if l <= 9.0 {
        l / 10.0
    } else {
        0.9 + 0.1 * (1.0 - 1.0 / (1.0 + (l - 9.0) / 10.0))
    }
}

fn pdq_log10_p(d: u32) -> f64 {
    (PDQ_A + PDQ_B * d as f64).min(0.0)
}

fn keypoint_log10_p(inliers: u32) -> f64 {
    (KP_A + KP_B * inliers as f64).min(0.0)
}

/// The joint evidence of keypoints and embedding (log10 tail probabilities
/// `kp` and `emb`), in log10: the measured line of the module doc, never
/// below Fisher's bound for independent pieces.
pub fn joint_log10_p(kp: f64, emb: f64) -> f64 {
    let t = kp + emb;
    if t > JOINT_FROM {
        return 0.0;
    }
    (JOINT_A + JOINT_B * t).max(fisher2(kp, emb)).min(0.0)
}

/// Fisher's combination of two independent tail probabilities, in log10:
/// P(p₁·p₂ ≤ t) = t·(1 − ln t).
pub fn fisher2(lp1: f64, lp2: f64) -> f64 {
    let lt = lp1 + lp2;
    if lt >= 0.0 {
        return 0.0;
    }
    (lt + (1.0 - lt * std::f64::consts::LN_10).log10()).min(0.0)
}

/// Score of a PDQ distance alone.
pub fn pdq_score(d: u32) -> f64 {
    from_log10_p(pdq_log10_p(d))
}

/// Score of a verification alone.
pub fn keypoint_score(inliers: u32) -> f64 {
    from_log10_p(keypoint_log10_p(inliers))
}

/// The score a verification of `inliers` contributes by itself: none for a
/// chance-level one beside an embedding (see [`CHANCE_INLIERS`]).
pub fn keypoint_score_alone(inliers: u32, with_embedding: bool) -> f64 {
    match counts_alone(inliers, with_embedding) {
        true => keypoint_score(inliers),
        false => 0.0,
    }
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
        // Compressed, not clamped: strong matches keep their order below 1.
        assert!(keypoint_score(60) > keypoint_score(40) && keypoint_score(60) < 1.0);
        assert!(keypoint_score(40) > 0.9);
    }

    #[test]
    fn whitened_similarities_keep_their_false_alarm_rate_on_the_raw_scale() {
        let cal = Calibration::default();
        assert!(cal.whitens());
        let (aw, bw) = LITE0_WHITENED_TAIL;
        let mut last = f32::NEG_INFINITY;
        for i in 0..=20 {
            let cw = i as f32 / 20.0;
            let c = cal.from_whitened(cw);
            assert!(c > last, "monotone at {cw}");
            last = c;
            // The mapped value scores what the whitened tail says.
            let want = from_log10_p((aw + bw * cw as f64).min(0.0));
            assert!((cal.embedding_score(c) - want).abs() < 1e-6, "at {cw}");
        }
        // A whitened cosine of 0.71 is as rare among unrelated pairs as a
        // raw one of about 0.85 (P ≈ 10⁻⁴ each).
        assert!((cal.from_whitened(0.71) - 0.85).abs() < 0.02);
        // SSCD's similarity is never whitened.
        let sscd = Calibration::for_model(Some("sscd_disc_mixup@1234"));
        assert!(!sscd.whitens());
        assert_eq!(sscd.from_whitened(0.5), 0.5);
    }

    #[test]
    fn keypoints_and_embedding_combine_by_their_measured_joint_tail() {
        // Known value: t = 0.01 → 0.01·(1 + ln 100) = 0.05605.
        assert!((10f64.powf(fisher2(-1.0, -1.0)) - 0.056052).abs() < 1e-5);
        // Two weak pieces beat either alone; a piece of no evidence weakens
        // the other (the combination pays for its second test), so `score`
        // keeps the best of singles and the pair.
        assert!(fisher2(-2.5, -2.5) < -2.5 - 1.0);
        assert!(fisher2(-3.0, 0.0) > -3.0);
        assert_eq!(fisher2(0.0, 0.0), 0.0);
        let m = Match {
            rec: crate::index::RecordRef { seg: 0, row: 0 },
            pdq_distance: 120,
            variant: 0,
            phash_distance: 30,
        };
        let v = Verification {
            matches: 10,
            inliers: 3,
            consensus: 3,
            ..Default::default()
        };
        let cal = Calibration::default();
        let alone = cal.score(&m, Some(&v), None);
        assert_eq!(alone, keypoint_score(3));
        // The measured joint tail: far heavier than Fisher's, so a pair of
        // moderate pieces gains little; never more than independence gives.
        for (kp, emb) in [(-3.0, -3.0), (-4.0, -4.0), (-6.0, -3.0)] {
            let j = joint_log10_p(kp, emb);
            assert!(j >= fisher2(kp, emb), "{kp} {emb}: {j}");
        }
        assert!((joint_log10_p(-4.0, -4.0) - (JOINT_A - 8.0 * JOINT_B)).abs() < 1e-12);
        assert!(joint_log10_p(-4.0, -4.0) > fisher2(-4.0, -4.0) + 1.5);
        assert_eq!(joint_log10_p(0.0, 0.0), 0.0);
        // Not extrapolated above its fitted range.
        assert_eq!(joint_log10_p(-1.787, -2.0), 0.0);
        // 8 inliers and a cosine of 0.85 together beat either alone.
        let v8 = Verification { inliers: 8, ..v };
        let both = cal.score(&m, Some(&v8), Some(0.85));
        let single = keypoint_score(8).max(cal.embedding_score(0.85));
        assert!(both > single, "{both} vs {single}");
        // 3 inliers (chance level) beside a weak cosine: they count only
        // jointly, so the cosine's own score stands; without an embedding
        // they rank by themselves.
        let others = pdq_score(m.pdq_distance).max(cal.embedding_score(0.45));
        assert_eq!(cal.score(&m, Some(&v), Some(0.45)), others);
        assert!(others < alone);
        assert_eq!(keypoint_score_alone(3, true), 0.0);
        assert_eq!(keypoint_score_alone(3, false), alone);
        let v6 = Verification {
            inliers: CHANCE_INLIERS,
            ..v
        };
        assert_eq!(
            cal.score(&m, Some(&v6), Some(0.0)),
            keypoint_score(CHANCE_INLIERS)
        );
        // SSCD: 4 chance inliers on an unlike record (cosine 0.0) rank
        // below a copy the embedding finds (cosine 0.44, no inliers).
        let sscd = Calibration::for_model(Some("sscd_disc_mixup@0123456789abcdef"));
        let v4 = Verification { inliers: 4, ..v };
        let v0 = Verification { inliers: 0, ..v };
        assert!(
            sscd.score(&m, Some(&v4), Some(0.0)) < sscd.score(&m, Some(&v0), Some(0.44)),
            "chance inliers outrank the embedding's copy"
        );
        // SSCD (by the index's recorded label) has its own tail.
        assert_ne!(sscd.embedding_tail(), cal.embedding_tail());
        assert_eq!(Calibration::for_model(None), cal);
    }
}

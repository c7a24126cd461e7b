//! Steered BRIEF's geometry: each keypoint's orientation (the angle of the
//! intensity centroid of a disc around it) and the fixed pattern of 256
//! intensity tests that the orientation rotates.

use super::fast::Candidate;
use super::pyramid::Plane;
use super::{DISC_R, PATTERN_R};

/// Half-width of the orientation disc's row dy: `⌊√(R² − dy²)⌋` for
/// |dy| = 0..=R (checked against that formula by a test).
const DISC_HALF: [i32; DISC_R as usize + 1] = [12, 11, 11, 11, 11, 10, 10, 9, 8, 7, 6, 4, 0];

/// Angle of the intensity centroid of the disc around each keypoint.
///
/// Each keypoint's moments are sums of ~440 terms in a fixed order (kept for
/// bit-identical angles), a chain of dependent float additions; running 8
/// keypoints side by side keeps the adder busy instead of waiting on it.
#[inline(always)] // see `extract_avx2`
pub(super) fn orientations(chosen: &[Candidate], levels: &[(Plane, f32)]) -> Vec<f32> {
    const LANES: usize = 8;
    let mut out = Vec::with_capacity(chosen.len());
    for group in chosen.chunks(LANES) {
        // Per lane: the plane and the index of the keypoint; short groups
        // repeat their first keypoint in the spare lanes.
        let lane = |l: usize| {
            let c = &group[if l < group.len() { l } else { 0 }];
            let p = &levels[c.level as usize].0;
            (&p.px[..], p.w, c.y as usize * p.w + c.x as usize)
        };
        let lanes: [(&[f32], usize, usize); LANES] = std::array::from_fn(lane);
        let (mut m10, mut m01) = ([0f32; LANES], [0f32; LANES]);
        for dy in -DISC_R..=DISC_R {
            let half = DISC_HALF[dy.unsigned_abs() as usize];
            let rows: [&[f32]; LANES] = lanes.map(|(px, w, c)| {
                let start = (c as isize + dy as isize * w as isize) as usize - half as usize;
                &px[start..][..2 * half as usize + 1]
            });
            for (k, dx) in (-half..=half).enumerate() {
                for l in 0..LANES {
                    let v = rows[l][k];
                    m10[l] += dx as f32 * v;
                    m01[l] += dy as f32 * v;
                }
            }
        }
        out.extend((0..group.len()).map(|l| m01[l].atan2(m10[l])));
    }
    out
}

/// The pattern's 512 points as coordinate arrays: x then y, first the 256
/// `a` points of the test pairs, then the 256 `b` points.
pub(super) fn pattern_points() -> &'static ([f32; 512], [f32; 512]) {
    static P: std::sync::OnceLock<([f32; 512], [f32; 512])> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let p = pattern();
        let x = std::array::from_fn(|j| if j < 256 { p[j].0 } else { p[j - 256].2 });
        let y = std::array::from_fn(|j| if j < 256 { p[j].1 } else { p[j - 256].3 });
        (x, y)
    })
}
/// The 256 test pairs, from a fixed seed: coordinates i.i.d. Gaussian with
/// σ = S/5 for a patch of side S (BRIEF's best layout), kept inside the disc.
fn pattern() -> &'static [(f32, f32, f32, f32); 256] {
    static P: std::sync::OnceLock<[(f32, f32, f32, f32); 256]> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let mut state = 0x6c6f_6f6b_616c_696bu64; // "lookalik"
        let mut uniform = move || {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let sigma = (2.0 * PATTERN_R as f64 + 1.0) / 5.0;
        let mut point = || loop {
            // Box–Muller
            let (u1, u2) = (uniform().max(1e-12), uniform());
            let r = (-2.0 * u1.ln()).sqrt() * sigma;
            let (x, y) = (
                r * (std::f64::consts::TAU * u2).cos(),
                r * (std::f64::consts::TAU * u2).sin(),
            );
            if x * x + y * y <= (PATTERN_R as f64).powi(2) {
                return (x.round() as f32, y.round() as f32);
            }
        };
        std::array::from_fn(|_| loop {
            let (a, b) = (point(), point());
            if a != b {
                return (a.0, a.1, b.0, b.1);
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disc_half_widths() {
        for dy in 0..=DISC_R {
            let half = ((DISC_R * DISC_R - dy * dy) as f32).sqrt() as i32;
            assert_eq!(DISC_HALF[dy as usize], half);
        }
    }
}

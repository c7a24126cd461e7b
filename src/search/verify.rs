//! Geometric verification: do the query and a candidate share many local
//! features that one affine transform maps onto each other?
//!
//! Tentative correspondences come from brute-force Hamming matching of the
//! keypoint descriptors with Lowe's ratio test (SIFT, IJCV 2004); RANSAC
//! (Fischler & Bolles, 1981) then finds the affine map that most of them
//! agree with. Unrelated images yield a handful of chance inliers; a crop,
//! rotation, rescale or paste of the same picture yields dozens. Affine is
//! enough for perspective copies too: the inlier tolerance absorbs the mild
//! projective part, and the model stays cheap to fit from 3 points.

use crate::descriptors::keypoints::{KeyPoint, QUERY_KEYPOINTS};

/// Descriptor distance (of 256 bits) above which two keypoints never match.
pub const MAX_DESC_DISTANCE: u32 = 64;
/// Lowe's ratio: the best match must be clearly better than the second.
const RATIO: f32 = 0.8;
const ITERATIONS: usize = 400;
/// Inlier tolerance in level-0 pixels of the candidate (long side 384).
const TOLERANCE: f32 = 6.0;

/// Outcome of geometric verification of a query against one candidate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Verification {
    /// Tentative correspondences (passed the ratio test).
    pub matches: u32,
    /// The evidence: [`Verification::consensus`], with the query keypoints
    /// that other candidates' maps explain too counted in share (see
    /// `fusion::share_inliers`); equal to it until then.
    pub inliers: u32,
    /// Distinct candidate keypoints consistent with the best affine map.
    pub consensus: u32,
    /// The map from query to candidate level-0 pixels: x' = a·x + b·y + c,
    /// y' = d·x + e·y + f.
    pub affine: [f32; 6],
    /// Which query keypoints the map explains (bit i: keypoint i).
    pub query_points: QueryPoints,
}

/// A set of query keypoints (at most [`QUERY_KEYPOINTS`]) as bits.
pub type QueryPoints = [u64; QUERY_KEYPOINTS.div_ceil(64)];

/// For each query keypoint, its best candidate keypoint if it passes the
/// distance limit and the ratio test: (query index, candidate index).
pub fn tentative(q: &[KeyPoint], c: &[KeyPoint]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    if c.is_empty() {
        return out;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512vpopcntdq") {
            // SAFETY: the CPU has the features this copy was compiled for.
            unsafe { tentative_avx512(q, c, &mut out) };
            return out;
        }
        if std::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has the feature this copy was compiled for.
            unsafe { tentative_popcnt(q, c, &mut out) };
            return out;
        }
    }
    tentative_into(q, c, &mut out);
    out
}

/// Without POPCNT, `count_ones` is a dozen instructions per word.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn tentative_popcnt(q: &[KeyPoint], c: &[KeyPoint], out: &mut Vec<(u16, u16)>) {
    tentative_into(q, c, out)
}

/// With AVX-512's vector POPCNT (Zen 4, Ice Lake and later): the candidates
/// transposed into four columns of 64-bit words, so one 512-bit step gives
/// the distances to 8 candidates (LLVM vectorizes the column loop). Same
/// matches as [`tentative_into`]. On the project's 2-core AMD EPYC (Zen 4),
/// 384 query against 128 candidate keypoints: 17 µs a call against 57 µs
/// for the scalar POPCNT copy (timed in a throwaway loop, random
/// descriptors, half of the candidates near copies or none).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq,popcnt")]
unsafe fn tentative_avx512(q: &[KeyPoint], c: &[KeyPoint], out: &mut Vec<(u16, u16)>) {
    let n = c.len();
    let mut cols = vec![0u64; 4 * n];
    for (j, k) in c.iter().enumerate() {
        for w in 0..4 {
            cols[w * n + j] = k.desc[2 * w] as u64 | (k.desc[2 * w + 1] as u64) << 32;
        }
    }
    let (c0, rest) = cols.split_at(n);
    let (c1, rest) = rest.split_at(n);
    let (c2, c3) = rest.split_at(n);
    // Every slice visibly n long, so the loop below has no bounds checks
    // (with them LLVM kept a scalar loop).
    let (c0, c1, c2, c3) = (&c0[..n], &c1[..n], &c2[..n], &c3[..n]);
    // Keys distance << 16 | candidate: the least key is the best candidate,
    // the first one on ties, without a scalar search for its position. The
    // scalar copies keep u16 distances and [`pick`]: these u32 keys made
    // them 18 % slower (measured), so the ratio test is written twice.
    let mut row = vec![0u32; n];
    for (i, a) in q.iter().enumerate() {
        let a: [u64; 4] =
            std::array::from_fn(|w| a.desc[2 * w] as u64 | (a.desc[2 * w + 1] as u64) << 32);
        let mut best = u32::MAX;
        let row = &mut row[..n];
        for j in 0..n {
            let d = (a[0] ^ c0[j]).count_ones()
                + (a[1] ^ c1[j]).count_ones()
                + (a[2] ^ c2[j]).count_ones()
                + (a[3] ^ c3[j]).count_ones();
            row[j] = d << 16 | j as u32;
            best = best.min(row[j]);
        }
        if best >> 16 > MAX_DESC_DISTANCE {
            continue;
        }
        let at = best & 0xffff;
        row[at as usize] = u32::MAX;
        let second = row.iter().fold(u32::MAX, |m, &k| m.min(k));
        let second = if second == u32::MAX {
            u32::MAX
        } else {
            second >> 16
        };
        if ((best >> 16) as f32) < RATIO * second as f32 {
            out.push((i as u16, at as u16));
        }
    }
}

/// Query keypoint `i`'s match from its distances to every candidate: the
/// best (first on ties) if within [`MAX_DESC_DISTANCE`] and Lowe's ratio
/// of the second best. Clobbers `row`.
#[inline(always)]
fn pick(i: usize, row: &mut [u16], out: &mut Vec<(u16, u16)>) {
    let best = row.iter().fold(u16::MAX, |m, &d| m.min(d));
    if best as u32 > MAX_DESC_DISTANCE {
        return;
    }
    let at = row.iter().position(|&d| d == best).unwrap_or(0);
    // The second best: the least distance of every other candidate.
    row[at] = u16::MAX;
    let second = row.iter().fold(u16::MAX, |m, &d| m.min(d));
    let second = if second == u16::MAX {
        u32::MAX
    } else {
        second as u32
    };
    if (best as f32) < RATIO * second as f32 {
        out.push((i as u16, at as u16));
    }
}

/// The matching loop, inlined into each CPU-feature copy above; `c` is not
/// empty.
///
/// Two passes per query keypoint: its distances to all candidates into a
/// row, then the best (first on ties) and second best of that row by
/// minima. One running best/second pair over the candidates, however
/// written, compiles to a chain of conditional moves that each candidate
/// waits on (measured 1.3x slower); the row's distances are independent.
/// Scalar POPCNT, not an AVX2 nibble-lookup count: on this project's
/// 2-core AMD EPYC machines the AVX2 count measured 1.3x slower.
#[inline(always)]
fn tentative_into(q: &[KeyPoint], c: &[KeyPoint], out: &mut Vec<(u16, u16)>) {
    let words = |k: &KeyPoint| -> [u64; 4] {
        std::array::from_fn(|i| k.desc[2 * i] as u64 | (k.desc[2 * i + 1] as u64) << 32)
    };
    let cw: Vec<[u64; 4]> = c.iter().map(words).collect();
    let mut row = vec![0u16; cw.len()];
    for (i, a) in q.iter().enumerate() {
        let a = words(a);
        for (d, b) in row.iter_mut().zip(&cw) {
            *d = ((a[0] ^ b[0]).count_ones()
                + (a[1] ^ b[1]).count_ones()
                + (a[2] ^ b[2]).count_ones()
                + (a[3] ^ b[3]).count_ones()) as u16;
        }
        pick(i, &mut row, out);
    }
}

/// Number of tentative correspondences of the query's strongest
/// `SHORTLIST_QUERY_POINTS` keypoints: the cheap score that picks which
/// records are worth a RANSAC.
pub fn tentative_count(q: &[KeyPoint], c: &[KeyPoint]) -> u32 {
    tentative_head(q, c).len() as u32
}

/// The tentative correspondences of the query's strongest
/// `SHORTLIST_QUERY_POINTS` keypoints (their number is [`tentative_count`]);
/// [`verify_after_head`] reuses them.
pub fn tentative_head(q: &[KeyPoint], c: &[KeyPoint]) -> Vec<(u16, u16)> {
    tentative(&q[..q.len().min(SHORTLIST_QUERY_POINTS)], c)
}

/// Query keypoints used by the shortlist scan (all of them are verified).
pub const SHORTLIST_QUERY_POINTS: usize = 128;

/// Verifies a candidate against the query: ratio-tested keypoint matches,
/// then RANSAC for the affine map most of them agree on, refitted on its
/// inliers.
pub fn verify(q: &[KeyPoint], c: &[KeyPoint]) -> Verification {
    verify_pairs(q, c, tentative(q, c))
}

/// [`verify`], given `head = tentative_head(q, c)` (the shortlist scan
/// computed it already): each query keypoint is matched on its own, so the
/// rest of the query's keypoints complete the same pairs `verify` finds.
pub fn verify_after_head(q: &[KeyPoint], c: &[KeyPoint], head: Vec<(u16, u16)>) -> Verification {
    let n = q.len().min(SHORTLIST_QUERY_POINTS);
    let mut pairs = head;
    pairs.extend(
        tentative(&q[n..], c)
            .into_iter()
            .map(|(i, j)| (i + n as u16, j)),
    );
    verify_pairs(q, c, pairs)
}

/// A query keypoint's position and the candidate keypoint's it matched.
type Correspondence = ((f32, f32), (f32, f32));

/// RANSAC over the tentative correspondences `pairs` of `q` and `c`.
fn verify_pairs(q: &[KeyPoint], c: &[KeyPoint], pairs: Vec<(u16, u16)>) -> Verification {
    let mut v = Verification {
        matches: pairs.len() as u32,
        ..Default::default()
    };
    if pairs.len() < 3 {
        return v;
    }
    let pts: Vec<Correspondence> = pairs
        .iter()
        .map(|&(i, j)| (q[i as usize].pos(), c[j as usize].pos()))
        .collect();
    let mut rng = 0x2545_f491_4f6c_dd1du64 ^ pairs.len() as u64;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut best: Option<([f32; 6], Vec<usize>)> = None;
    for _ in 0..ITERATIONS {
        let (i, j, k) = (next(pts.len()), next(pts.len()), next(pts.len()));
        if i == j || j == k || i == k {
            continue;
        }
        let Some(a) = affine_from(&[pts[i], pts[j], pts[k]]) else {
            continue;
        };
        // Count first: the inlier list is built only for a new best.
        let n = pts.iter().filter(|p| is_inlier(&a, p)).count();
        if best.as_ref().is_none_or(|b| n > b.1.len()) {
            best = Some((a, inliers(&a, &pts)));
        }
    }
    let Some((mut a, mut inl)) = best else {
        return v;
    };
    // Refit on the consensus set and count again (standard RANSAC polish).
    if inl.len() >= 4 {
        let set: Vec<_> = inl.iter().map(|&i| pts[i]).collect();
        if let Some(r) = least_squares(&set) {
            let again = inliers(&r, &pts);
            if again.len() >= inl.len() {
                (a, inl) = (r, again);
            }
        }
    }
    let mut cands: Vec<u16> = inl.iter().map(|&i| pairs[i].1).collect();
    cands.sort_unstable();
    cands.dedup();
    v.consensus = cands.len() as u32;
    v.inliers = v.consensus;
    v.affine = a;
    for &i in &inl {
        let k = pairs[i].0 as usize;
        v.query_points[k / 64] |= 1 << (k % 64);
    }
    v
}

fn inliers(a: &[f32; 6], pts: &[Correspondence]) -> Vec<usize> {
    pts.iter()
        .enumerate()
        .filter(|(_, p)| is_inlier(a, p))
        .map(|(i, _)| i)
        .collect()
}

/// Whether `a` maps the query point within `TOLERANCE` of its candidate point.
#[inline]
fn is_inlier(a: &[f32; 6], &((x, y), (u, v)): &Correspondence) -> bool {
    let (px, py) = (a[0] * x + a[1] * y + a[2], a[3] * x + a[4] * y + a[5]);
    (px - u).powi(2) + (py - v).powi(2) <= TOLERANCE * TOLERANCE
}

/// A plausible copy keeps the picture recognisable: each axis scaled by at
/// most 6× either way and no mirror (descriptors are not mirror invariant,
/// so a mirrored fit is chance).
fn plausible(a: &[f32; 6]) -> bool {
    let det = a[0] * a[4] - a[1] * a[3];
    let sx = (a[0] * a[0] + a[3] * a[3]).sqrt();
    let sy = (a[1] * a[1] + a[4] * a[4]).sqrt();
    det > 1.0 / 36.0
        && det < 36.0
        && (1.0 / 6.0..6.0).contains(&sx)
        && (1.0 / 6.0..6.0).contains(&sy)
}

/// The affine map through three correspondences (None if the query points
/// are nearly collinear or the map implausible).
fn affine_from(p: &[Correspondence; 3]) -> Option<[f32; 6]> {
    let [((x1, y1), (u1, v1)), ((x2, y2), (u2, v2)), ((x3, y3), (u3, v3))] = *p;
    let det = x1 * (y2 - y3) - y1 * (x2 - x3) + (x2 * y3 - x3 * y2);
    // Twice the triangle's area, in px²: tiny triangles amplify position noise.
    if det.abs() < 100.0 {
        return None;
    }
    let solve = |r1: f32, r2: f32, r3: f32| {
        let a = (r1 * (y2 - y3) - y1 * (r2 - r3) + (r2 * y3 - r3 * y2)) / det;
        let b = (x1 * (r2 - r3) - r1 * (x2 - x3) + (x2 * r3 - x3 * r2)) / det;
        let c =
            (x1 * (y2 * r3 - y3 * r2) - y1 * (x2 * r3 - x3 * r2) + r1 * (x2 * y3 - x3 * y2)) / det;
        (a, b, c)
    };
    let (a, b, c) = solve(u1, u2, u3);
    let (d, e, f) = solve(v1, v2, v3);
    let m = [a, b, c, d, e, f];
    plausible(&m).then_some(m)
}

/// Least-squares affine fit (normal equations, solved per output axis).
fn least_squares(p: &[Correspondence]) -> Option<[f32; 6]> {
    let mut m = [[0f64; 3]; 3];
    let (mut bu, mut bv) = ([0f64; 3], [0f64; 3]);
    for &((x, y), (u, v)) in p {
        let r = [x as f64, y as f64, 1.0];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += r[i] * r[j];
            }
            bu[i] += r[i] * u as f64;
            bv[i] += r[i] * v as f64;
        }
    }
    let det3 = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det3(&m);
    if d.abs() < 1e-6 {
        return None;
    }
    let cramer = |b: &[f64; 3]| -> [f32; 3] {
        std::array::from_fn(|k| {
            let mut mk = m;
            for i in 0..3 {
                mk[i][k] = b[i];
            }
            (det3(&mk) / d) as f32
        })
    };
    let (u, v) = (cramer(&bu), cramer(&bv));
    let a = [u[0], u[1], u[2], v[0], v[1], v[2]];
    plausible(&a).then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp(seed: u32, x: f32, y: f32) -> KeyPoint {
        let mut s = seed.wrapping_mul(2654435761) | 1;
        KeyPoint {
            desc: std::array::from_fn(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                s
            }),
            x: (x * 16.0) as u16,
            y: (y * 16.0) as u16,
        }
    }

    /// Matching as Lowe's ratio test states it, one candidate at a time.
    fn tentative_reference(q: &[KeyPoint], c: &[KeyPoint]) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        for (i, a) in q.iter().enumerate() {
            let (mut best, mut second, mut at) = (u32::MAX, u32::MAX, 0);
            for (j, b) in c.iter().enumerate() {
                let d = a.distance(b);
                if d < best {
                    (second, best, at) = (best, d, j);
                } else if d < second {
                    second = d;
                }
            }
            if best <= MAX_DESC_DISTANCE && (best as f32) < RATIO * second as f32 {
                out.push((i as u16, at as u16));
            }
        }
        out
    }

    #[test]
    fn tentative_equals_the_reference_with_ties() {
        // Descriptors of few set bits: many equal distances, best and
        // second best tied, matches inside and outside the ratio.
        let sparse = |seed: u32, bits: u32| {
            let mut k = kp(seed, 1.0, 1.0);
            let mask = kp(seed ^ 0x5555, 0.0, 0.0).desc;
            for (w, m) in k.desc.iter_mut().zip(mask) {
                *w &= m & kp(seed ^ bits, 0.0, 0.0).desc[0];
            }
            k
        };
        for (nq, nc, bits) in [(50, 1, 3), (70, 40, 7), (128, 128, 11), (9, 300, 13)] {
            let q: Vec<KeyPoint> = (0..nq).map(|i| sparse(i, bits)).collect();
            let mut c: Vec<KeyPoint> = (0..nc).map(|j| sparse(j * 7 + 1000, bits)).collect();
            // Exact copies of some query points, one of them twice.
            for (j, i) in (0..nc.min(nq) as usize).step_by(3).enumerate() {
                c[(j * 5) % nc as usize] = q[i];
            }
            c[nc as usize - 1] = q[0];
            let want = tentative_reference(&q, &c);
            assert_eq!(tentative(&q, &c), want, "{nq} x {nc}");
            assert!(!want.is_empty());
            // Every CPU-feature copy this machine runs, not only the one
            // `tentative` picks.
            let mut plain = vec![];
            tentative_into(&q, &c, &mut plain);
            assert_eq!(plain, want);
            #[cfg(target_arch = "x86_64")]
            for (feature, copy) in [
                (
                    "popcnt",
                    tentative_popcnt as unsafe fn(&[KeyPoint], &[KeyPoint], &mut Vec<(u16, u16)>),
                ),
                ("avx512vpopcntdq", tentative_avx512),
            ] {
                let has = match feature {
                    "popcnt" => std::is_x86_feature_detected!("popcnt"),
                    _ => std::is_x86_feature_detected!("avx512vpopcntdq"),
                };
                if has {
                    let mut got = vec![];
                    // SAFETY: the CPU has the feature.
                    unsafe { copy(&q, &c, &mut got) };
                    assert_eq!(got, want, "{feature}: {nq} x {nc}");
                }
            }
        }
        assert!(tentative(&[kp(1, 0.0, 0.0)], &[]).is_empty());
    }

    #[test]
    fn verify_after_head_equals_verify() {
        // 200 query points, a candidate sharing 64 of them (moved by one
        // affine map) among unrelated ones: the head (first 128) and the
        // rest both hold matches.
        let q: Vec<KeyPoint> = (0..200)
            .map(|i| {
                let h = kp(i + 7000, 0.0, 0.0).desc;
                kp(i, 10.0 + (h[0] % 350) as f32, 10.0 + (h[1] % 250) as f32)
            })
            .collect();
        let c: Vec<KeyPoint> = (0..128)
            .map(|j| match j % 2 {
                0 => {
                    let p = q[j as usize / 2 * 3 + 1]; // 1, 4, .., 190: distinct
                    let (x, y) = p.pos();
                    KeyPoint {
                        x: ((0.9 * x + 5.0) * 16.0) as u16,
                        y: ((0.9 * y + 8.0) * 16.0) as u16,
                        ..p
                    }
                }
                _ => kp(j + 9000, 30.0, 40.0),
            })
            .collect();
        for (q, c) in [(&q[..], &c[..]), (&q[..100], &c[..]), (&q[..], &c[..0])] {
            let v = verify(q, c);
            assert_eq!(verify_after_head(q, c, tentative_head(q, c)), v);
            assert_eq!(tentative_count(q, c), tentative_head(q, c).len() as u32);
        }
        assert!(verify(&q, &c).inliers >= 50, "{:?}", verify(&q, &c));
    }

    #[test]
    fn finds_a_rotated_scaled_copy_and_rejects_noise() {
        // 60 points; the "copy" has them rotated 30°, scaled 0.7, shifted.
        // Scattered points (a regular lattice would map onto itself).
        let q: Vec<KeyPoint> = (0..60)
            .map(|i| {
                let h = kp(i + 1000, 0.0, 0.0).desc;
                kp(i, 20.0 + (h[0] % 300) as f32, 20.0 + (h[1] % 250) as f32)
            })
            .collect();
        let (s, c) = (
            0.7 * 30f32.to_radians().sin(),
            0.7 * 30f32.to_radians().cos(),
        );
        let copy: Vec<KeyPoint> = q
            .iter()
            .map(|p| {
                let (x, y) = p.pos();
                KeyPoint {
                    x: ((c * x - s * y + 150.0) * 16.0) as u16,
                    y: ((s * x + c * y + 10.0) * 16.0) as u16,
                    ..*p
                }
            })
            .collect();
        let v = verify(&q, &copy);
        assert_eq!(v.matches, 60);
        assert!(v.inliers >= 55, "{v:?}");
        assert!((v.affine[0] - c).abs() < 0.02 && (v.affine[3] - s).abs() < 0.02);
        // Same descriptors at shuffled places: matches but no consistent map.
        let shuffled: Vec<KeyPoint> = q
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let o = &q[(i * 7 + 3) % q.len()];
                KeyPoint {
                    x: o.x,
                    y: o.y,
                    ..*p
                }
            })
            .collect();
        let v = verify(&q, &shuffled);
        assert_eq!(v.matches, 60);
        assert!(v.inliers <= 6, "{v:?}");
        // Unrelated descriptors: nothing passes the distance limit.
        let other: Vec<KeyPoint> = (100..160).map(|i| kp(i, 10.0, 10.0)).collect();
        assert_eq!(verify(&q, &other).matches, 0);
    }
}

//! Local keypoints for geometric verification (`search::verify`).
//!
//! The ORB recipe (Rublee et al., "ORB: an efficient alternative to SIFT or
//! SURF", ICCV 2011): FAST-9 corners (Rosten & Drummond, 2006) on a small
//! image pyramid, oriented by the intensity centroid of a disc around each
//! corner, described by 256 binary intensity tests whose sampling pattern is
//! rotated by that orientation ("steered BRIEF"). The pattern here is our own,
//! drawn once from an isotropic Gaussian by a fixed seed, as BRIEF's paper
//! describes; descriptors compare by Hamming distance.
//!
//! Global hashes (PDQ) see the whole frame, so a crop, a rotation by an odd
//! angle, a perspective warp or a paste into another picture changes them
//! completely; local features survive all of these, and a consistent
//! geometric transform between many of them is strong evidence of a copy.

use bytemuck::{Pod, Zeroable};
use image::RgbImage;

/// Keypoints stored per indexed image (fixed width: a column of the index).
pub const INDEX_KEYPOINTS: usize = 128;
/// Keypoints taken from a query image: more than the index keeps, so a crop
/// still shares enough of them with its source.
pub const QUERY_KEYPOINTS: usize = 384;

/// Long side of pyramid level 0; positions are in its pixels.
pub const BASE_SIDE: usize = 384;
const LEVELS: usize = 4;
const LEVEL_SCALE: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// FAST threshold on 0..255 luma.
const FAST_T: i16 = 16;
/// Radius of the orientation disc; the test pattern lies within `PATTERN_R`.
const DISC_R: i32 = 12;
const PATTERN_R: f32 = 11.0;
const MARGIN: usize = DISC_R as usize + 2;
/// Position unit: 1/16 level-0 pixel.
const POS_SCALE: f32 = 16.0;

/// One keypoint: its 256-bit descriptor and position (1/16 px of level 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct KeyPoint {
    pub desc: [u32; 8],
    pub x: u16,
    pub y: u16,
}

impl KeyPoint {
    /// An unused slot of a fixed-width record.
    pub const EMPTY: KeyPoint = KeyPoint {
        desc: [0; 8],
        x: u16::MAX,
        y: u16::MAX,
    };

    pub fn is_empty(&self) -> bool {
        self.x == u16::MAX && self.y == u16::MAX
    }

    /// Position in level-0 pixels.
    pub fn pos(&self) -> (f32, f32) {
        (self.x as f32 / POS_SCALE, self.y as f32 / POS_SCALE)
    }

    pub fn distance(&self, other: &KeyPoint) -> u32 {
        self.desc
            .iter()
            .zip(&other.desc)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }
}

/// The fixed-width keypoint record of one indexed image (unused slots EMPTY).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct IndexKeypoints(pub [KeyPoint; INDEX_KEYPOINTS]);

impl Default for IndexKeypoints {
    fn default() -> Self {
        IndexKeypoints([KeyPoint::EMPTY; INDEX_KEYPOINTS])
    }
}

impl std::fmt::Debug for IndexKeypoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IndexKeypoints({} points)", self.points().len())
    }
}

impl IndexKeypoints {
    pub fn from_points(points: &[KeyPoint]) -> Self {
        let mut k = Self::default();
        for (slot, p) in k.0.iter_mut().zip(points) {
            *slot = *p;
        }
        k
    }

    /// The used slots (extraction fills them from the front).
    pub fn points(&self) -> &[KeyPoint] {
        let n = self
            .0
            .iter()
            .position(|p| p.is_empty())
            .unwrap_or(INDEX_KEYPOINTS);
        &self.0[..n]
    }
}

/// Keypoints of an image for the index.
pub fn index_keypoints(img: &RgbImage) -> IndexKeypoints {
    IndexKeypoints::from_points(&extract(img, INDEX_KEYPOINTS))
}

/// A grey image in f32, row-major.
struct Plane {
    w: usize,
    h: usize,
    px: Vec<f32>,
}

impl Plane {
    fn at(&self, x: usize, y: usize) -> f32 {
        self.px[y * self.w + x]
    }
}

/// Up to `max` keypoints, strongest first within a spatial spread, positions
/// in level-0 pixels (the image scaled so its long side is `BASE_SIDE`, or
/// as is when smaller).
pub fn extract(img: &RgbImage, max: usize) -> Vec<KeyPoint> {
    let luma = super::pdq::luma_from_rgb(img);
    extract_from_luma(&luma, img.width() as usize, img.height() as usize, max)
}

/// `extract` from the image's Rec.601 luma (`pdq::luma_from_rgb`), for
/// callers that already computed it for PDQ.
pub fn extract_from_luma(luma: &[f32], w: usize, h: usize, max: usize) -> Vec<KeyPoint> {
    if w < 2 * MARGIN + 1 || h < 2 * MARGIN + 1 || max == 0 {
        return vec![];
    }
    let s0 = (BASE_SIDE as f32 / w.max(h) as f32).min(1.0);
    let mut level = resize_area(luma, w, h, scaled(w, s0), scaled(h, s0));
    let mut cands: Vec<Candidate> = Vec::new();
    let mut levels: Vec<(Plane, f32)> = Vec::with_capacity(LEVELS);
    let mut scale = 1.0f32; // level pixels per level-0 pixel
    for l in 0..LEVELS {
        if level.w < 2 * MARGIN + 1 || level.h < 2 * MARGIN + 1 {
            break;
        }
        fast_corners(&level, l as u8, &mut cands);
        let next = (l + 1 < LEVELS).then(|| {
            let (nw, nh) = (scaled(level.w, LEVEL_SCALE), scaled(level.h, LEVEL_SCALE));
            resize_area(&level.px, level.w, level.h, nw, nh)
        });
        levels.push((blur(&level), scale));
        match next {
            Some(n) => level = n,
            None => break,
        }
        scale *= LEVEL_SCALE;
    }
    let (w0, h0) = (levels[0].0.w as f32, levels[0].0.h as f32);
    let chosen = spread(cands, max, |c| {
        let s = levels[c.level as usize].1;
        (c.x as f32 / s / w0, c.y as f32 / s / h0)
    });
    let pattern = pattern();
    chosen
        .iter()
        .map(|c| {
            let (plane, s) = &levels[c.level as usize];
            let (x, y) = (c.x as usize, c.y as usize);
            let (sin, cos) = orientation(plane, x, y).sin_cos();
            let mut desc = [0u32; 8];
            for (i, &(ax, ay, bx, by)) in pattern.iter().enumerate() {
                // Nearest pixel; the +64 offset makes truncation a floor
                // without a libm call (|offsets| < 16).
                let sample = |px: f32, py: f32| {
                    let rx = (cos * px - sin * py + 64.5) as isize - 64;
                    let ry = (sin * px + cos * py + 64.5) as isize - 64;
                    plane.at((x as isize + rx) as usize, (y as isize + ry) as usize)
                };
                if sample(ax, ay) < sample(bx, by) {
                    desc[i / 32] |= 1 << (i % 32);
                }
            }
            let to_pos = |v: usize| ((v as f32 / s) * POS_SCALE).round().min(65534.0) as u16;
            KeyPoint {
                desc,
                x: to_pos(x),
                y: to_pos(y),
            }
        })
        .collect()
}

fn scaled(n: usize, s: f32) -> usize {
    ((n as f32 * s).round() as usize).max(1)
}

#[derive(Clone, Copy)]
struct Candidate {
    level: u8,
    x: u16,
    y: u16,
    score: u16,
}

/// FAST-9 on a 16-pixel Bresenham circle of radius 3, 3×3 non-maximum
/// suppression on the score (sum of the excess over the threshold).
///
/// Two stages per row: a branch-free compass test over the whole row (any 9
/// contiguous circle pixels include 2 of the 4 compass ones; the compiler
/// vectorises it), then the full circle only where it passed — in smooth
/// regions that is a small fraction of the pixels.
fn fast_corners(p: &Plane, level: u8, out: &mut Vec<Candidate>) {
    const CIRCLE: [(isize, isize); 16] = [
        (0, -3),
        (1, -3),
        (2, -2),
        (3, -1),
        (3, 0),
        (3, 1),
        (2, 2),
        (1, 3),
        (0, 3),
        (-1, 3),
        (-2, 2),
        (-3, 1),
        (-3, 0),
        (-3, -1),
        (-2, -2),
        (-1, -3),
    ];
    let (w, h) = (p.w, p.h);
    // Luma is non-negative: +0.5 and truncation rounds (no libm call).
    let g: Vec<i16> = p.px.iter().map(|&v| (v + 0.5) as i16).collect();
    let offs: [isize; 16] = CIRCLE.map(|(dx, dy)| dy * w as isize + dx);
    let mut score = vec![0u16; w * h];
    let mut scored: Vec<usize> = Vec::new();
    let (x0, x1) = (MARGIN, w - MARGIN);
    let mut pass = vec![false; x1 - x0];
    for y in MARGIN..h - MARGIN {
        let row = |dy: isize, dx: isize| {
            let start = ((y as isize + dy) * w as isize + x0 as isize + dx) as usize;
            &g[start..start + (x1 - x0)]
        };
        let (c, up, dn, rt, lt) = (row(0, 0), row(-3, 0), row(3, 0), row(0, 3), row(0, -3));
        for (k, f) in pass.iter_mut().enumerate() {
            let (hi, lo) = (c[k] + FAST_T, c[k] - FAST_T);
            let b = (up[k] > hi) as u8 + (dn[k] > hi) as u8 + (rt[k] > hi) as u8 + (lt[k] > hi) as u8;
            let d = (up[k] < lo) as u8 + (dn[k] < lo) as u8 + (rt[k] < lo) as u8 + (lt[k] < lo) as u8;
            *f = (b >= 2) | (d >= 2);
        }
        for (k, _) in pass.iter().enumerate().filter(|(_, &f)| f) {
            let i = y * w + x0 + k;
            let (hi, lo) = (g[i] + FAST_T, g[i] - FAST_T);
            let (mut bm, mut dm) = (0u32, 0u32);
            for (k, &o) in offs.iter().enumerate() {
                let v = g[(i as isize + o) as usize];
                bm |= ((v > hi) as u32) << k;
                dm |= ((v < lo) as u32) << k;
            }
            let (bright, dark) = (arc9(bm), arc9(dm));
            if !bright && !dark {
                continue;
            }
            let (mut bs, mut ds) = (0u32, 0u32);
            for &o in &offs {
                let v = g[(i as isize + o) as usize];
                bs += (v - hi).max(0) as u32;
                ds += (lo - v).max(0) as u32;
            }
            let s = if bright { bs } else { 0 }.max(if dark { ds } else { 0 });
            score[i] = s.min(u16::MAX as u32) as u16;
            scored.push(i);
        }
    }
    // Non-maximum suppression over the scored pixels only (row-major order,
    // as a full scan would visit them).
    for i in scored {
        let s = score[i];
        // Strict on earlier neighbours, non-strict on later: one winner per plateau.
        let mut best = true;
        'n: for dy in -1isize..=1 {
            for dx in -1isize..=1 {
                let j = (i as isize + dy * w as isize + dx) as usize;
                let earlier = dy < 0 || (dy == 0 && dx < 0);
                if (dx, dy) != (0, 0) && (score[j] > s || (earlier && score[j] == s)) {
                    best = false;
                    break 'n;
                }
            }
        }
        if best {
            out.push(Candidate {
                level,
                x: (i % w) as u16,
                y: (i / w) as u16,
                score: s,
            });
        }
    }
}

/// Nine or more contiguous set bits in a circular 16-bit mask.
fn arc9(m: u32) -> bool {
    let mut r = m | (m << 16);
    for _ in 0..8 {
        r &= r >> 1;
    }
    r != 0
}

/// Strongest candidates first, but at most a fair share per cell of an 8×8
/// grid on the first pass, so a crop of any region keeps some of them.
fn spread(
    mut cands: Vec<Candidate>,
    max: usize,
    norm: impl Fn(&Candidate) -> (f32, f32),
) -> Vec<Candidate> {
    const GRID: usize = 8;
    cands.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(a.level.cmp(&b.level))
            .then(a.y.cmp(&b.y))
            .then(a.x.cmp(&b.x))
    });
    let quota = (2 * max).div_ceil(GRID * GRID);
    let mut per_cell = [0usize; GRID * GRID];
    let mut taken = vec![false; cands.len()];
    let mut out = Vec::with_capacity(max);
    for (i, c) in cands.iter().enumerate() {
        if out.len() == max {
            break;
        }
        let (u, v) = norm(c);
        let cell = ((v * GRID as f32) as usize).min(GRID - 1) * GRID
            + ((u * GRID as f32) as usize).min(GRID - 1);
        if per_cell[cell] < quota {
            per_cell[cell] += 1;
            taken[i] = true;
            out.push(*c);
        }
    }
    for (i, c) in cands.iter().enumerate() {
        if out.len() == max {
            break;
        }
        if !taken[i] {
            out.push(*c);
        }
    }
    out
}

/// Angle of the intensity centroid of the disc around (x, y).
fn orientation(p: &Plane, x: usize, y: usize) -> f32 {
    let (mut m10, mut m01) = (0f32, 0f32);
    for dy in -DISC_R..=DISC_R {
        let half = ((DISC_R * DISC_R - dy * dy) as f32).sqrt() as i32;
        let row = (y as i32 + dy) as usize * p.w;
        for dx in -half..=half {
            let v = p.px[row + (x as i32 + dx) as usize];
            m10 += dx as f32 * v;
            m01 += dy as f32 * v;
        }
    }
    m01.atan2(m10)
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

/// Separable [1 4 6 4 1]/16 blur (σ ≈ 1): the tests compare smoothed
/// intensities, so one noisy pixel does not flip a bit.
fn blur(p: &Plane) -> Plane {
    const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let (w, h) = (p.w, p.h);
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        let row = &p.px[y * w..(y + 1) * w];
        let out = &mut tmp[y * w..(y + 1) * w];
        // Interior without bounds clamping (the hot loop); edges clamp.
        for (x, win) in row.windows(5).enumerate() {
            out[x + 2] =
                K[0] * win[0] + K[1] * win[1] + K[2] * win[2] + K[3] * win[3] + K[4] * win[4];
        }
        for x in (0..2.min(w)).chain(w.saturating_sub(2).max(2.min(w))..w) {
            out[x] = (0..5)
                .map(|k| K[k] * row[clamp(x as isize + k as isize - 2, w)])
                .sum();
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for k in 0..5 {
            let src = clamp(y as isize + k as isize - 2, h);
            let (o, s) = (&mut out[y * w..(y + 1) * w], &tmp[src * w..(src + 1) * w]);
            o.iter_mut().zip(s).for_each(|(o, s)| *o += K[k] * s);
        }
    }
    Plane { w, h, px: out }
}

/// Area-average resampling (each output pixel the mean of the source area it
/// covers): the right filter for shrinking, and exact at integer ratios.
fn resize_area(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Plane {
    if (sw, sh) == (dw, dh) {
        return Plane {
            w: sw,
            h: sh,
            px: src.to_vec(),
        };
    }
    let hw = area_weights(sw, dw);
    let vw = area_weights(sh, dh);
    let mut tmp = vec![0f32; dw * sh];
    for y in 0..sh {
        let row = &src[y * sw..(y + 1) * sw];
        for (x, (start, ws)) in hw.iter().enumerate() {
            tmp[y * dw + x] = ws.iter().enumerate().map(|(k, w)| w * row[start + k]).sum();
        }
    }
    let mut out = vec![0f32; dw * dh];
    for (y, (start, ws)) in vw.iter().enumerate() {
        let o = &mut out[y * dw..(y + 1) * dw];
        for (k, wt) in ws.iter().enumerate() {
            let s = &tmp[(start + k) * dw..(start + k + 1) * dw];
            o.iter_mut().zip(s).for_each(|(o, s)| *o += wt * s);
        }
    }
    Plane {
        w: dw,
        h: dh,
        px: out,
    }
}

/// Per output index: first source index and the weights of the sources it
/// covers (summing to 1).
fn area_weights(n: usize, m: usize) -> Vec<(usize, Vec<f32>)> {
    let r = n as f64 / m as f64;
    (0..m)
        .map(|i| {
            let (a, b) = (i as f64 * r, ((i + 1) as f64 * r).min(n as f64));
            let first = a.floor() as usize;
            let last = (b.ceil() as usize).min(n).max(first + 1);
            let ws = (first..last)
                .map(|j| {
                    let cover = (b.min(j as f64 + 1.0) - a.max(j as f64)).max(0.0);
                    (cover / (b - a)) as f32
                })
                .collect();
            (first, ws)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured test card: blobs and bars at pseudo-random places.
    fn card(w: u32, h: u32, seed: u32) -> RgbImage {
        let mut s = seed.wrapping_mul(2654435761).max(1);
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let shapes: Vec<(f32, f32, f32, u8)> = (0..60)
            .map(|_| {
                (
                    (rnd() % w) as f32,
                    (rnd() % h) as f32,
                    (4 + rnd() % 30) as f32,
                    (rnd() % 256) as u8,
                )
            })
            .collect();
        RgbImage::from_fn(w, h, |x, y| {
            let mut v = 128u8;
            for &(cx, cy, r, c) in &shapes {
                if (x as f32 - cx).abs() < r && (y as f32 - cy).abs() < r * 0.6 {
                    v = c;
                }
            }
            image::Rgb([v, v / 2 + 60, 255 - v])
        })
    }

    #[test]
    fn arc_detection() {
        assert!(arc9(0b1_1111_1111));
        assert!(arc9(0b1111_0000_0001_1111)); // wraps around
        assert!(!arc9(0b1111_1111));
        assert!(!arc9(0b0101_0101_0101_0101));
    }

    #[test]
    fn area_weights_sum_to_one() {
        for (n, m) in [(10, 3), (1024, 384), (7, 7), (5, 4)] {
            for (_, ws) in area_weights(n, m) {
                assert!((ws.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn keypoints_fill_and_fit() {
        let img = card(640, 480, 7);
        let k = extract(&img, QUERY_KEYPOINTS);
        assert!(k.len() > 100, "only {} keypoints", k.len());
        for p in &k {
            let (x, y) = p.pos();
            assert!(x < 384.0 && y < 288.0, "{x},{y}");
        }
        let ik = index_keypoints(&img);
        assert_eq!(ik.points().len(), INDEX_KEYPOINTS);
        assert_eq!(ik.points(), &extract(&img, INDEX_KEYPOINTS)[..]);
        // Flat images have no corners; tiny ones are too small to describe.
        assert!(extract(&RgbImage::from_pixel(300, 200, image::Rgb([9, 9, 9])), 50).is_empty());
        assert!(extract(&RgbImage::new(20, 20), 50).is_empty());
    }

    #[test]
    fn descriptors_survive_rotation() {
        // The same card turned 90°: the best match of most keypoints is
        // close in descriptor space (steering undoes the rotation).
        let img = card(400, 400, 3);
        let rot = image::imageops::rotate90(&img);
        let (a, b) = (extract(&img, 200), extract(&rot, 200));
        let close = a
            .iter()
            .filter(|p| b.iter().map(|q| p.distance(q)).min().unwrap_or(256) < 40)
            .count();
        assert!(close * 2 > a.len(), "{close} of {}", a.len());
    }
}

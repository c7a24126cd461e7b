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

/// Up to `max` keypoints, strongest first within a spatial spread, positions
/// in level-0 pixels (the image scaled so its long side is `BASE_SIDE`, or
/// as is when smaller).
pub fn extract(img: &RgbImage, max: usize) -> Vec<KeyPoint> {
    let luma = super::pdq::luma_from_rgb(img);
    extract_from_luma(&luma, img.width() as usize, img.height() as usize, max)
}

/// `extract` from the image's Rec.601 luma (`pdq::luma_from_rgb`), for
/// callers that already computed it for PDQ.
///
/// Performance notes (the hot path of indexing): every stage writes its
/// output once, without zero-filling first, and reuses one scratch buffer for
/// the intermediate passes; all float arithmetic that feeds the output keeps
/// the operation order of the straightforward formulation, so results are
/// bit for bit those of `examples/keypoints_identity.rs`'s reference dumps.
///
/// On x86-64 CPUs with AVX2 the same code runs compiled for AVX2 (twice the
/// vector width of baseline SSE2). Only integer and plain IEEE float
/// operations are involved (Rust never fuses a multiply and an add), so both
/// builds give bit-identical results; a test checks it.
pub fn extract_from_luma(luma: &[f32], w: usize, h: usize, max: usize) -> Vec<KeyPoint> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { extract_avx2(luma, w, h, max) };
    }
    extract_portable(luma, w, h, max)
}

/// `extract_portable` compiled for AVX2: the stages it calls are
/// `inline(always)`, so they are compiled into it for AVX2 too.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn extract_avx2(luma: &[f32], w: usize, h: usize, max: usize) -> Vec<KeyPoint> {
    extract_portable(luma, w, h, max)
}

#[inline(always)]
fn extract_portable(luma: &[f32], w: usize, h: usize, max: usize) -> Vec<KeyPoint> {
    if w < 2 * MARGIN + 1 || h < 2 * MARGIN + 1 || max == 0 {
        return vec![];
    }
    let s0 = (BASE_SIDE as f32 / w.max(h) as f32).min(1.0);
    let mut tmp = Vec::new(); // intermediate of resize and blur passes
    let mut level = resize_area(luma, w, h, scaled(w, s0), scaled(h, s0), &mut tmp);
    let mut cands: Vec<Candidate> = Vec::new();
    let mut levels: Vec<(Plane, f32)> = Vec::with_capacity(LEVELS);
    let mut scale = 1.0f32; // level pixels per level-0 pixel
    for l in 0..LEVELS {
        if level.w < 2 * MARGIN + 1 || level.h < 2 * MARGIN + 1 {
            break;
        }
        fast_corners(&level, l as u8, &mut cands);
        // An `if`, not `bool::then` with a closure: the closure would be
        // compiled out of line, without `extract_avx2`'s AVX2.
        let next = if l + 1 < LEVELS {
            let (nw, nh) = (scaled(level.w, LEVEL_SCALE), scaled(level.h, LEVEL_SCALE));
            Some(resize_area(&level.px, level.w, level.h, nw, nh, &mut tmp))
        } else {
            None
        };
        levels.push((blur(&level, &mut tmp), scale));
        match next {
            Some(n) => level = n,
            None => break,
        }
        scale *= LEVEL_SCALE;
    }
    // A very elongated image can scale to a level 0 too thin to scan.
    if levels.is_empty() {
        return vec![];
    }
    let (w0, h0) = (levels[0].0.w as f32, levels[0].0.h as f32);
    let chosen = spread(cands, max, |c| {
        let s = levels[c.level as usize].1;
        (c.x as f32 / s / w0, c.y as f32 / s / h0)
    });
    let angles = orientations(&chosen, &levels);
    let pat = pattern_points();
    // A plain loop, not a closure mapped over the keypoints: its body then
    // lies in this function and so is compiled for AVX2 in `extract_avx2`.
    let mut out = Vec::with_capacity(chosen.len());
    for (c, angle) in chosen.iter().zip(angles) {
        let (plane, s) = &levels[c.level as usize];
        let (x, y) = (c.x as usize, c.y as usize);
        let (sin, cos) = angle.sin_cos();
        // Steered sample offsets of all 512 pattern points first, in a
        // loop the compiler vectorises; then the 256 comparisons.
        // Nearest pixel: the +64 offset makes truncation a floor
        // (|offsets| <= PATTERN_R). Offsets are linear: level widths are
        // at most BASE_SIDE, far inside i32.
        let pw = plane.w as i32;
        let mut off = [0i32; 512];
        let points = off.iter_mut().zip(&pat.0).zip(&pat.1);
        if angle.is_finite() {
            // |sin|, |cos| <= 1: every value lies in 64.5 ± 2·PATTERN_R.
            for ((o, &px), &py) in points {
                let rx = floor_small(cos * px - sin * py + 64.5) - 64;
                let ry = floor_small(sin * px + cos * py + 64.5) - 64;
                *o = ry * pw + rx;
            }
        } else {
            // NaN input luma: the saturating cast, as ever (NaN -> 0).
            for ((o, &px), &py) in points {
                let rx = (cos * px - sin * py + 64.5) as i32 - 64;
                let ry = (sin * px + cos * py + 64.5) as i32 - 64;
                *o = ry * pw + rx;
            }
        }
        let base = (y * plane.w + x) as isize;
        let at = |o: i32| plane.px[(base + o as isize) as usize];
        let (oa, ob) = off.split_at(256);
        let mut desc = [0u32; 8];
        for (i, d) in desc.iter_mut().enumerate() {
            for b in 0..32 {
                let t = i * 32 + b;
                *d |= ((at(oa[t]) < at(ob[t])) as u32) << b;
            }
        }
        let to_pos = |v: usize| ((v as f32 / s) * POS_SCALE).round().min(65534.0) as u16;
        out.push(KeyPoint {
            desc,
            x: to_pos(x),
            y: to_pos(y),
        });
    }
    out
}

/// `v as i32` for 0 <= v < 2²² (where truncation is the floor), in float
/// operations only: a loop of them vectorises, unlike Rust's saturating
/// float-to-int cast on baseline x86-64.
#[inline]
fn floor_small(v: f32) -> i32 {
    const M: f32 = 8_388_608.0; // 2²³: adding it rounds to an integer
    let r = (v + M) - M; // v rounded to nearest, exactly
    let f = if r > v { r - 1.0 } else { r };
    (f + M).to_bits() as i32 - M.to_bits() as i32
}

/// `v.extend((0..n).map(f))` as a plain loop: unlike the iterator's
/// out-of-line `fold`, it is inlined, so it vectorises for the caller's
/// target features (see `extract_avx2`).
#[inline(always)]
fn extend_with<T: Copy>(v: &mut Vec<T>, n: usize, mut f: impl FnMut(usize) -> T) {
    let start = v.len();
    v.reserve(n);
    for (i, o) in v.spare_capacity_mut()[..n].iter_mut().enumerate() {
        o.write(f(i));
    }
    // SAFETY: the n slots past the length were all written just above
    // (zero-filling them first instead costs a few percent of the total).
    unsafe { v.set_len(start + n) };
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
/// Two stages per row: the arc test on all 16 circle pixels, branch-free
/// over the whole row as 16-bit bright/dark masks (the compiler vectorises
/// it), then the score only where it passed — a small fraction of the
/// pixels, so the per-pixel gather and its unpredictable branch stay rare.
/// Suppression of a row runs as soon as the next one is scored, so scores
/// live in a ring of three rows rather than a zero-filled image-sized array.
#[inline(always)] // see `extract_avx2`
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
    // In the usual range the same value comes from `floor_small`, which
    // vectorises; anything else (NaN included) takes the saturating cast.
    let in_range =
        p.px.iter()
            .fold(true, |ok, &v| ok & (v >= 0.0) & (v < 32767.0));
    let g: Vec<i16> = if in_range {
        let mut g = Vec::new();
        extend_with(&mut g, p.px.len(), |i| floor_small(p.px[i] + 0.5) as i16);
        g
    } else {
        p.px.iter().map(|&v| (v + 0.5) as i16).collect()
    };
    // Circle offsets from the top-left corner of the 7×7 window.
    let offs: [usize; 16] = CIRCLE.map(|(dx, dy)| ((dy + 3) * w as isize + dx + 3) as usize);
    let (x0, x1) = (MARGIN, w - MARGIN);
    let n = x1 - x0;
    // Compass flags (0/1 bytes), padded to whole 8-byte words for the scan.
    let mut pass = vec![0u8; n.next_multiple_of(8)];
    // Scores of rows y-2..=y, row y in ring slot y % 3, and the x of each
    // scored pixel per slot (to clear just those when the slot is reused).
    let mut score = vec![0u16; 3 * w];
    let mut scored: [Vec<usize>; 3] = Default::default();
    for y in MARGIN..=h - MARGIN {
        let r = y % 3;
        for &x in &scored[r] {
            score[r * w + x] = 0;
        }
        scored[r].clear();
        if y < h - MARGIN {
            let row = |dy: isize, dx: isize| {
                let start = ((y as isize + dy) * w as isize + x0 as isize + dx) as usize;
                &g[start..][..n]
            };
            let c = row(0, 0);
            let circle: [&[i16]; 16] = std::array::from_fn(|j| {
                let (dx, dy) = CIRCLE[j];
                row(dy, dx)
            });
            for (k, f) in pass[..n].iter_mut().enumerate() {
                let (hi, lo) = (c[k] + FAST_T, c[k] - FAST_T);
                let (mut b, mut d) = (0u16, 0u16);
                for (j, e) in circle.iter().enumerate() {
                    b |= ((e[k] > hi) as u16) << j;
                    d |= ((e[k] < lo) as u16) << j;
                }
                *f = (arc9_16(b) | arc9_16(d)) as u8;
            }
            // Visit the passing pixels in order, skipping 8 flags at a time.
            for (ci, chunk) in pass.chunks_exact(8).enumerate() {
                let mut m = u64::from_le_bytes(chunk.try_into().unwrap());
                while m != 0 {
                    let x = x0 + ci * 8 + (m.trailing_zeros() / 8) as usize;
                    m &= m - 1; // flags are 0/1: one bit per set byte
                    let i = y * w + x;
                    let win = &g[i - 3 * w - 3..][..6 * w + 7];
                    let (hi, lo) = (g[i] + FAST_T, g[i] - FAST_T);
                    let mut v = [0i16; 16];
                    for (v, &o) in v.iter_mut().zip(&offs) {
                        *v = win[o];
                    }
                    let (mut bm, mut dm) = (0u32, 0u32);
                    for (k, &v) in v.iter().enumerate() {
                        bm |= ((v > hi) as u32) << k;
                        dm |= ((v < lo) as u32) << k;
                    }
                    let (bright, dark) = (arc9(bm), arc9(dm));
                    if !bright && !dark {
                        continue;
                    }
                    let (mut bs, mut ds) = (0u32, 0u32);
                    for &v in &v {
                        bs += (v - hi).max(0) as u32;
                        ds += (lo - v).max(0) as u32;
                    }
                    let s = if bright { bs } else { 0 }.max(if dark { ds } else { 0 });
                    score[r * w + x] = s.min(u16::MAX as u32) as u16;
                    scored[r].push(x);
                }
            }
        }
        if y > MARGIN {
            // Non-maximum suppression of row y-1 over its scored pixels (in
            // x order, as a full scan would visit them). Strict on earlier
            // neighbours, non-strict on later: one winner per plateau.
            let yc = y - 1;
            let row = |yy: usize| &score[(yy % 3) * w..][..w];
            let (up, mid, dn) = (row(yc - 1), row(yc), row(y));
            for &x in &scored[yc % 3] {
                let s = mid[x];
                let earlier = up[x - 1] < s && up[x] < s && up[x + 1] < s && mid[x - 1] < s;
                let later = mid[x + 1] <= s && dn[x - 1] <= s && dn[x] <= s && dn[x + 1] <= s;
                if earlier && later {
                    out.push(Candidate {
                        level,
                        x: x as u16,
                        y: yc as u16,
                        score: s,
                    });
                }
            }
        }
    }
}

/// `arc9` in 16-bit lanes (rotations instead of a doubled mask), so a loop
/// of it over a row vectorises 8 or more pixels wide.
#[inline]
fn arc9_16(m: u16) -> bool {
    // Bit p of r: bits p..p+1, then p..p+3, p..p+7, p..p+8 all set.
    let mut r = m & m.rotate_right(1);
    r &= r.rotate_right(2);
    r &= r.rotate_right(4);
    r &= r.rotate_right(1);
    r != 0
}

/// Nine or more contiguous set bits in a circular 16-bit mask.
#[inline]
fn arc9(m: u32) -> bool {
    // Bit p of r: bits p..p+1, then p..p+3, p..p+7, p..p+8 all set.
    let mut r = m | (m << 16);
    r &= r >> 1;
    r &= r >> 2;
    r &= r >> 4;
    r &= r >> 1;
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
    // Score descending, then level, y, x ascending, packed in one key; the
    // key is unique per candidate, so an unstable sort is deterministic.
    cands.sort_unstable_by_key(|c| {
        ((u16::MAX - c.score) as u64) << 48
            | (c.level as u64) << 32
            | (c.y as u64) << 16
            | c.x as u64
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

/// Half-width of the orientation disc's row dy: `⌊√(R² − dy²)⌋` for
/// |dy| = 0..=R (checked against that formula by a test).
const DISC_HALF: [i32; DISC_R as usize + 1] = [12, 11, 11, 11, 11, 10, 10, 9, 8, 7, 6, 4, 0];

/// Angle of the intensity centroid of the disc around each keypoint.
///
/// Each keypoint's moments are sums of ~440 terms in a fixed order (kept for
/// bit-identical angles), a chain of dependent float additions; running 8
/// keypoints side by side keeps the adder busy instead of waiting on it.
#[inline(always)] // see `extract_avx2`
fn orientations(chosen: &[Candidate], levels: &[(Plane, f32)]) -> Vec<f32> {
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
fn pattern_points() -> &'static ([f32; 512], [f32; 512]) {
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

/// Separable [1 4 6 4 1]/16 blur (σ ≈ 1): the tests compare smoothed
/// intensities, so one noisy pixel does not flip a bit.
///
/// Each pass writes its rows in one sweep over equal-length slices (so the
/// compiler vectorises it); the sums keep the order of the plain formula:
/// `K[0]·p[-2] + … + K[4]·p[2]` across, `0 + K[0]·p[-2] + … + K[4]·p[2]`
/// down (an accumulation started from zero).
#[inline(always)] // see `extract_avx2`
fn blur(p: &Plane, tmp: &mut Vec<f32>) -> Plane {
    const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let (w, h) = (p.w, p.h);
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    tmp.clear();
    for y in 0..h {
        let row = &p.px[y * w..][..w];
        // Edges clamp; the interior needs no clamping (the hot loop).
        let edge = |x: usize| -> f32 {
            (0..5)
                .map(|k| K[k] * row[clamp(x as isize + k as isize - 2, w)])
                .sum()
        };
        if w < 5 {
            tmp.extend((0..w).map(edge));
            continue;
        }
        let n = w - 4;
        let (a, b, c, d, e) = (
            &row[..n],
            &row[1..][..n],
            &row[2..][..n],
            &row[3..][..n],
            &row[4..][..n],
        );
        tmp.extend([edge(0), edge(1)]);
        extend_with(tmp, n, |x| {
            K[0] * a[x] + K[1] * b[x] + K[2] * c[x] + K[3] * d[x] + K[4] * e[x]
        });
        tmp.extend([edge(w - 2), edge(w - 1)]);
    }
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let src = |k: isize| &tmp[clamp(y as isize + k - 2, h) * w..][..w];
        let (a, b, c, d, e) = (src(0), src(1), src(2), src(3), src(4));
        extend_with(&mut out, w, |x| {
            0.0 + K[0] * a[x] + K[1] * b[x] + K[2] * c[x] + K[3] * d[x] + K[4] * e[x]
        });
    }
    Plane { w, h, px: out }
}

/// Area-average resampling (each output pixel the mean of the source area it
/// covers): the right filter for shrinking, and exact at integer ratios.
///
/// Horizontal pass into `tmp`, then vertical. Sums run over each output's
/// taps in source order (across: `w₀·p₀ + w₁·p₁ + …`; down: accumulated from
/// zero), the order of the plain formulation, so values are bit-identical.
#[inline(always)] // see `extract_avx2`
fn resize_area(
    src: &[f32],
    sw: usize,
    sh: usize,
    dw: usize,
    dh: usize,
    tmp: &mut Vec<f32>,
) -> Plane {
    if (sw, sh) == (dw, dh) {
        return Plane {
            w: sw,
            h: sh,
            px: src.to_vec(),
        };
    }
    let hw = AreaWeights::new(sw, dw);
    let vw = AreaWeights::new(sh, dh);
    tmp.clear();
    tmp.reserve(dw * sh);
    resize_rows(src, sw, sh, &hw, tmp);
    let mut out = Vec::with_capacity(dw * dh);
    for i in 0..dh {
        let (first, ws) = vw.taps(i);
        let row = |k: usize| &tmp[(first + k) * dw..][..dw];
        match *ws {
            [w0] => {
                let a = row(0);
                extend_with(&mut out, dw, |x| 0.0 + w0 * a[x]);
            }
            [w0, w1] => {
                let (a, b) = (row(0), row(1));
                extend_with(&mut out, dw, |x| 0.0 + w0 * a[x] + w1 * b[x]);
            }
            [w0, w1, w2] => {
                let (a, b, c) = (row(0), row(1), row(2));
                extend_with(&mut out, dw, |x| 0.0 + w0 * a[x] + w1 * b[x] + w2 * c[x]);
            }
            _ => {
                let start = out.len();
                let a = row(0);
                extend_with(&mut out, dw, |x| 0.0 + ws[0] * a[x]);
                for (k, &wt) in ws.iter().enumerate().skip(1) {
                    let o = &mut out[start..];
                    o.iter_mut().zip(row(k)).for_each(|(o, &s)| *o += wt * s);
                }
            }
        }
    }
    Plane {
        w: dw,
        h: dh,
        px: out,
    }
}

/// Horizontal area pass, appending the `sh` output rows to `tmp`.
///
/// Rows go 8 at a time, interleaved, so each tap loads the 8 rows' values
/// side by side and each output's sum runs for all 8 at once (vectorised),
/// in the same per-row order. Every output sums the same number of taps: the
/// spare ones read an all-zero column with weight −0.0 and so add exactly
/// −0.0, which leaves any sum as it was.
#[inline(always)] // see `extract_avx2`
fn resize_rows(src: &[f32], sw: usize, sh: usize, hw: &AreaWeights, tmp: &mut Vec<f32>) {
    const L: usize = 8;
    let dw = hw.first.len();
    let t = hw.max_taps();
    let (mut idx, mut wts) = (Vec::with_capacity(dw * t), Vec::with_capacity(dw * t));
    for i in 0..dw {
        let (first, ws) = hw.taps(i);
        for k in 0..t {
            idx.push(if k < ws.len() { first + k } else { sw });
            wts.push(if k < ws.len() { ws[k] } else { -0.0 });
        }
    }
    let mut il = vec![[0f32; L]; sw + 1]; // column sw stays zero
    let mut acc = vec![[0f32; L]; dw];
    for y0 in (0..sh).step_by(L) {
        let rows = L.min(sh - y0); // spare lanes hold stale rows, dropped
        for r in 0..rows {
            for (c, &v) in il.iter_mut().zip(&src[(y0 + r) * sw..][..sw]) {
                c[r] = v;
            }
        }
        for (a, (ix, ws)) in acc
            .iter_mut()
            .zip(idx.chunks_exact(t).zip(wts.chunks_exact(t)))
        {
            let c = il[ix[0]];
            let mut s: [f32; L] = std::array::from_fn(|r| ws[0] * c[r]);
            for (&j, &wt) in ix[1..].iter().zip(&ws[1..]) {
                let c = il[j];
                s = std::array::from_fn(|r| s[r] + wt * c[r]);
            }
            *a = s;
        }
        for r in 0..rows {
            tmp.extend(acc.iter().map(|a| a[r]));
        }
    }
}

/// Per output index: first source index and the weights of the sources it
/// covers (summing to 1), stored flat.
struct AreaWeights {
    first: Vec<usize>,
    /// Output i's weights are `w[start[i]..start[i + 1]]`.
    start: Vec<usize>,
    w: Vec<f32>,
}

impl AreaWeights {
    fn new(n: usize, m: usize) -> Self {
        let r = n as f64 / m as f64;
        let mut aw = AreaWeights {
            first: Vec::with_capacity(m),
            start: Vec::with_capacity(m + 1),
            w: Vec::with_capacity(m + n + 1),
        };
        aw.start.push(0);
        for i in 0..m {
            let (a, b) = (i as f64 * r, ((i + 1) as f64 * r).min(n as f64));
            let first = a.floor() as usize;
            let last = (b.ceil() as usize).min(n).max(first + 1);
            aw.w.extend((first..last).map(|j| {
                let cover = (b.min(j as f64 + 1.0) - a.max(j as f64)).max(0.0);
                (cover / (b - a)) as f32
            }));
            aw.first.push(first);
            aw.start.push(aw.w.len());
        }
        aw
    }

    fn taps(&self, i: usize) -> (usize, &[f32]) {
        (self.first[i], &self.w[self.start[i]..self.start[i + 1]])
    }

    fn max_taps(&self) -> usize {
        self.start
            .windows(2)
            .map(|s| s[1] - s[0])
            .max()
            .unwrap_or(0)
    }
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
        for m in 0..=u16::MAX {
            assert_eq!(arc9_16(m), arc9(m as u32), "{m:016b}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_build_is_identical() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut s = 0x2545_f491u32;
        let mut noise = |w: usize, h: usize| -> Vec<f32> {
            (0..w * h)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    (s % 25600) as f32 / 100.0
                })
                .collect()
        };
        let mut planes = vec![(noise(300, 200), 300, 200), (noise(97, 61), 97, 61)];
        for (w, h, seed) in [(640, 480, 7), (333, 517, 2), (384, 100, 9)] {
            let luma = crate::descriptors::pdq::luma_from_rgb(&card(w, h, seed));
            planes.push((luma, w as usize, h as usize));
        }
        for (luma, w, h) in &planes {
            for max in [INDEX_KEYPOINTS, QUERY_KEYPOINTS] {
                let a = extract_portable(luma, *w, *h, max);
                // SAFETY: AVX2 support checked above.
                let b = unsafe { extract_avx2(luma, *w, *h, max) };
                assert!(!a.is_empty() && a == b, "{w}x{h} max={max}");
            }
        }
    }

    #[test]
    fn area_weights_sum_to_one() {
        for (n, m) in [(10, 3), (1024, 384), (7, 7), (5, 4)] {
            let aw = AreaWeights::new(n, m);
            for i in 0..m {
                assert!((aw.taps(i).1.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn disc_half_widths() {
        for dy in 0..=DISC_R {
            let half = ((DISC_R * DISC_R - dy * dy) as f32).sqrt() as i32;
            assert_eq!(DISC_HALF[dy as usize], half);
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
        // A banner whose level 0 (scaled to BASE_SIDE) is too thin to scan:
        // no keypoints, and no panic (it used to index past the level list).
        assert!(extract(&card(2000, 100, 5), 50).is_empty());
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

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
//!
//! Files: this module holds the recipe's parameters, the keypoint types and
//! [`extract`] (the pipeline and the descriptor bits); `pyramid.rs` the
//! resampling and blur, `fast.rs` corner detection and selection, `brief.rs`
//! the orientation and the test pattern.
//!
//! CPU only: no shader computes keypoints (the GPU engine extracts them on
//! the CPU beside its batches, src/gpu/mod.rs), and none compares them.

use bytemuck::{Pod, Zeroable};
use image::RgbImage;

mod brief;
mod fast;
mod pyramid;

use brief::{orientations, pattern_points};
use fast::{fast_corners, spread, Candidate};
use pyramid::{blur, resize_area, scaled, Plane};

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
    /// The 256 test bits.
    pub desc: [u32; 8],
    /// Column, in 1/16 level-0 pixels.
    pub x: u16,
    /// Row, in 1/16 level-0 pixels.
    pub y: u16,
}

impl KeyPoint {
    /// An unused slot of a fixed-width record.
    pub const EMPTY: KeyPoint = KeyPoint {
        desc: [0; 8],
        x: u16::MAX,
        y: u16::MAX,
    };

    /// Whether this is [`KeyPoint::EMPTY`].
    pub fn is_empty(&self) -> bool {
        self.x == u16::MAX && self.y == u16::MAX
    }

    /// Position in level-0 pixels.
    pub fn pos(&self) -> (f32, f32) {
        (self.x as f32 / POS_SCALE, self.y as f32 / POS_SCALE)
    }

    /// Hamming distance of the descriptors.
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
    /// The first `INDEX_KEYPOINTS` of `points`, the rest of the slots EMPTY.
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
pub(super) fn floor_small(v: f32) -> i32 {
    const M: f32 = 8_388_608.0; // 2²³: adding it rounds to an integer
    let r = (v + M) - M; // v rounded to nearest, exactly
    let f = if r > v { r - 1.0 } else { r };
    (f + M).to_bits() as i32 - M.to_bits() as i32
}

/// `v.extend((0..n).map(f))` as a plain loop: unlike the iterator's
/// out-of-line `fold`, it is inlined, so it vectorises for the caller's
/// target features (see `extract_avx2`).
#[inline(always)]
pub(super) fn extend_with<T: Copy>(v: &mut Vec<T>, n: usize, mut f: impl FnMut(usize) -> T) {
    let start = v.len();
    v.reserve(n);
    for (i, o) in v.spare_capacity_mut()[..n].iter_mut().enumerate() {
        o.write(f(i));
    }
    // SAFETY: the n slots past the length were all written just above
    // (zero-filling them first instead costs a few percent of the total).
    unsafe { v.set_len(start + n) };
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

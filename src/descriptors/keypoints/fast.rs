//! FAST-9 corner detection on one pyramid level (Rosten & Drummond, 2006),
//! and the choice of the strongest corners with a spatial spread.

use super::pyramid::Plane;
use super::{extend_with, floor_small, FAST_T, MARGIN};

/// A corner found by [`fast_corners`]: level, position in that level's
/// pixels, and FAST score.
#[derive(Clone, Copy)]
pub(super) struct Candidate {
    pub(super) level: u8,
    pub(super) x: u16,
    pub(super) y: u16,
    pub(super) score: u16,
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
pub(super) fn fast_corners(p: &Plane, level: u8, out: &mut Vec<Candidate>) {
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
    // `&` of two comparisons, not `contains` (`&&`): no branch, so it vectorises.
    #[allow(clippy::manual_range_contains)]
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
pub(super) fn spread(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Region proposals: where inside a query a copy may sit. A training image
//! pasted into a screenshot, a web page or onto another picture keeps its
//! rectangle: four straight, long steps in colour where it meets what
//! surrounds it. Hashes and embeddings of the whole query see mostly the
//! surroundings; described on its own, the rectangle is the copy again.
//!
//! The search is on a small copy of the image (longest side `SIDE`):
//! boundaries between rows (columns) where many neighbouring pixels differ
//! sharply are candidate sides; every rectangle of candidate sides is scored
//! by how much of each side is such a step, and the best few that do not
//! overlap are proposed. The image border counts as no evidence, so a region
//! needs at least three sides inside the image that are edges; a rectangle
//! with all four inside may have one that is not (a picture whose own
//! background meets the page along one side, as a portrait between
//! letterbox bars in a feed does). CPU only, like trimming:
//! both engines describe the proposed crops like any query image.

use image::RgbImage;

/// At most this many regions are proposed per image.
pub const MAX_REGIONS: usize = 2;
/// The longest side of the image the search runs on.
const SIDE: usize = 256;
/// A step of at least this many levels on some channel is an edge.
const EDGE: i32 = 24;
/// A candidate side: an edge run over this share of the image's width (height).
const MIN_RUN: f32 = 0.12;
/// Gaps up to this many pixels do not end a run (JPEG ringing, anti-aliasing).
const GAP: usize = 2;
/// At most this many candidate lines per direction (the longest runs).
const MAX_LINES: usize = 40;
/// Each side inside the image must be an edge over this share of its length...
const SUPPORT: f32 = 0.75;
/// ...and over this much more of it than the less edgy of the two parallel
/// lines [`BESIDE`] boundaries away: a side is a line standing out from at
/// least one of its sides, not a stretch of dense texture (grass, noise,
/// hatching). Without it 55 % of ../shared/corpus/db (photographs, art,
/// clip art) proposed regions; with it 42 % (mostly clip art, framed and
/// padded pictures), while the copies inside screenshots and pastes keep
/// theirs.
const CONTRAST: f32 = 0.3;
const BESIDE: usize = 5;
/// A region spans at least this share of the image's width and height...
const MIN_SIDE: f32 = 0.15;
/// ...and at most this share of its area (else it is the image itself).
const MAX_AREA: f32 = 0.8;
/// The inside must be textured: this share of the pixels of its inner 80 %
/// differ from a neighbour by [`FINE`] levels or more. Line art (an outlined
/// box, a frame drawn in an icon) stays under it and is not a picture: its
/// near-blank crops hash alike.
const MIN_TEXTURE: f32 = 0.07;
/// The step that counts as texture.
const FINE: i32 = 8;
/// Proposals overlapping a better one by more than this (intersection over
/// union) are dropped.
const MAX_IOU: f32 = 0.5;

/// A rectangle of an image, as shares of its width and height (0 to 1, four
/// decimals): the same for the image at any decoded scale.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Rect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl Rect {
    /// The rectangle's pixels in an image of `w` × `h`: (x, y, width,
    /// height), at least one pixel, inside the image.
    pub fn pixels(&self, w: u32, h: u32) -> (u32, u32, u32, u32) {
        let at = |v: f32, n: u32| ((v * n as f32).round() as u32).min(n.saturating_sub(1));
        let (x, y) = (at(self.x, w), at(self.y, h));
        let end =
            |v: f32, n: u32, from: u32| ((v * n as f32).round() as u32).clamp(from + 1, n.max(1));
        (
            x,
            y,
            end(self.x + self.w, w, x) - x,
            end(self.y + self.h, h, y) - y,
        )
    }

    fn of_pixels(x0: u32, y0: u32, x1: u32, y1: u32, w: u32, h: u32) -> Rect {
        let share = |v: u32, n: u32| (v as f32 / n as f32 * 1e4).round() / 1e4;
        Rect {
            x: share(x0, w),
            y: share(y0, h),
            w: share(x1 - x0, w),
            h: share(y1 - y0, h),
        }
    }
}

/// Up to [`MAX_REGIONS`] rectangles of `img` that look like a picture placed
/// inside it, best first; empty for most photographs.
pub fn proposals(img: &RgbImage) -> Vec<Rect> {
    let (w, h) = img.dimensions();
    if w < 64 || h < 64 {
        return vec![];
    }
    let f = (w.max(h) as usize).div_ceil(SIDE).max(1);
    let s = Small::of(img, f);
    let rows = s.edges(true);
    let cols = s.edges(false);
    let ys = lines(&rows, s.h, s.w);
    let xs = lines(&cols, s.w, s.h);
    let row_sums = prefix(&rows, s.h + 1, s.w);
    let col_sums = prefix(&cols, s.w + 1, s.h);
    let texture = s.texture();
    // Every side a rectangle of candidate lines can have, scored once:
    // `top[(y, a, b)]` is boundary ys[y] from xs[a] to xs[b], `left` the
    // same across columns (NaN on the image border: no evidence).
    let (ny, nx) = (ys.len(), xs.len());
    let sides = |sums: &Sums, at: &[usize], span: &[usize], n: usize| -> Vec<f32> {
        let m = span.len();
        let mut out = vec![f32::NAN; at.len() * m * m];
        for (k, &b) in at.iter().enumerate().filter(|(_, &b)| b > 0 && b < n) {
            for a in 0..m {
                for c in a + 1..m {
                    out[(k * m + a) * m + c] = sums.side(b, span[a], span[c]);
                }
            }
        }
        out
    };
    let top = sides(&row_sums, &ys, &xs, s.h);
    let left = sides(&col_sums, &xs, &ys, s.w);
    let mut found: Vec<(f32, [usize; 4])> = Vec::new();
    for i in 0..ny {
        for i1 in i + 1..ny {
            let (y0, y1) = (ys[i], ys[i1]);
            if ((y1 - y0) as f32) < MIN_SIDE * s.h as f32 {
                continue;
            }
            for j in 0..nx {
                for j1 in j + 1..nx {
                    let (x0, x1) = (xs[j], xs[j1]);
                    if ((x1 - x0) as f32) < MIN_SIDE * s.w as f32 {
                        continue;
                    }
                    let area = ((x1 - x0) * (y1 - y0)) as f32;
                    if area > MAX_AREA * (s.w * s.h) as f32 {
                        continue;
                    }
                    let four = [
                        top[(i * nx + j) * nx + j1],
                        top[(i1 * nx + j) * nx + j1],
                        left[(j * ny + i) * ny + i1],
                        left[(j1 * ny + i) * ny + i1],
                    ];
                    let inside = four.iter().filter(|v| !v.is_nan()).count();
                    // One weak side is allowed when all four lie inside
                    // the image: a picture whose own background meets the
                    // page along one side (a portrait between letterbox
                    // bars in a feed) still shows the other three.
                    let weak = four.iter().filter(|&&v| v < 0.0).count();
                    if inside < 3 || weak > usize::from(inside == 4) {
                        continue;
                    }
                    let (ix, iy) = ((x1 - x0) / 10, (y1 - y0) / 10);
                    if texture.share(x0 + ix, y0 + iy, x1 - ix, y1 - iy) < MIN_TEXTURE {
                        continue;
                    }
                    // Four sides inside the image are more evidence than
                    // three; a weak side (or the border) adds nothing.
                    let score = four.iter().filter(|&&v| v >= 0.0).sum::<f32>() / 4.0;
                    found.push((score, [x0, y0, x1, y1]));
                }
            }
        }
    }
    // Best score first; ties: the larger region, then position (deterministic).
    found.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(area(&b.1).cmp(&area(&a.1)))
            .then(a.1.cmp(&b.1))
    });
    let mut picked: Vec<[usize; 4]> = Vec::new();
    for (_, r) in found {
        if picked.len() == MAX_REGIONS {
            break;
        }
        if picked.iter().all(|p| iou(p, &r) <= MAX_IOU) {
            picked.push(r);
        }
    }
    picked
        .into_iter()
        .map(|[x0, y0, x1, y1]| {
            let px = |v: usize, n: u32| ((v * f) as u32).min(n);
            Rect::of_pixels(px(x0, w), px(y0, h), px(x1, w), px(y1, h), w, h)
        })
        .collect()
}

/// The pixels of `r` in `img`, with uniform bars inside it (a letterboxed
/// picture in a feed) trimmed away as [`super::trim`] trims a whole image.
pub fn crop(img: &RgbImage, r: Rect) -> RgbImage {
    let (x, y, w, h) = r.pixels(img.width(), img.height());
    let c = image::imageops::crop_imm(img, x, y, w, h).to_image();
    super::trim::trimmed(&c).unwrap_or(c)
}

fn area(r: &[usize; 4]) -> usize {
    (r[2] - r[0]) * (r[3] - r[1])
}

fn iou(a: &[usize; 4], b: &[usize; 4]) -> f32 {
    let iw = a[2].min(b[2]).saturating_sub(a[0].max(b[0]));
    let ih = a[3].min(b[3]).saturating_sub(a[1].max(b[1]));
    let i = (iw * ih) as f32;
    i / ((area(a) + area(b)) as f32 - i)
}

/// The image box-averaged by an integer factor.
struct Small {
    w: usize,
    h: usize,
    px: Vec<[i32; 3]>,
}

impl Small {
    fn of(img: &RgbImage, f: usize) -> Small {
        let (w, h) = (img.width() as usize / f, img.height() as usize / f);
        let mut px = vec![[0i32; 3]; w * h];
        for (yy, row) in img
            .as_raw()
            .chunks_exact(3 * img.width() as usize)
            .enumerate()
        {
            let y = yy / f;
            if y >= h {
                break;
            }
            for (x, block) in row.chunks_exact(3 * f).take(w).enumerate() {
                let p = &mut px[y * w + x];
                for q in block.chunks_exact(3) {
                    for c in 0..3 {
                        p[c] += q[c] as i32;
                    }
                }
            }
        }
        // Division by f² as a multiply (Granlund & Montgomery, 1994):
        // m = ⌊2³²/n⌋ + 1 gives ⌊v·m/2³²⌋ = ⌊v/n⌋ for every v < 2³²/n, and
        // v ≤ 255·n here; an `idiv` per value was a third of the proposal.
        let m = (1u64 << 32) / (f * f) as u64 + 1;
        for p in &mut px {
            for v in p.iter_mut() {
                *v = ((*v as u64 * m) >> 32) as i32;
            }
        }
        Small { w, h, px }
    }

    fn at(&self, x: usize, y: usize) -> [i32; 3] {
        self.px[y * self.w + x]
    }

    /// Which pixels differ from their right or lower neighbour by [`FINE`]
    /// levels on some channel, as a summed-area table.
    fn texture(&self) -> Integral {
        let (w, h) = (self.w, self.h);
        let mut sums = vec![0u32; (w + 1) * (h + 1)];
        for y in 0..h {
            let mut acc = 0u32;
            for x in 0..w {
                let p = self.at(x, y);
                let r = self.at((x + 1).min(w - 1), y);
                let d = self.at(x, (y + 1).min(h - 1));
                let fine =
                    (0..3).any(|c| (p[c] - r[c]).abs() >= FINE || (p[c] - d[c]).abs() >= FINE);
                acc += fine as u32;
                sums[(y + 1) * (w + 1) + x + 1] = sums[y * (w + 1) + x + 1] + acc;
            }
        }
        Integral { w, sums }
    }

    /// Edge flags of the boundaries between rows (`across_rows`: `h + 1`
    /// boundaries of `w` flags, boundary `y` above row `y`) or between
    /// columns (`w + 1` boundaries of `h` flags). A boundary is an edge where
    /// the step over it, or over it and a neighbour (a step the averaging
    /// split in two), reaches [`EDGE`]; the outermost boundaries never are.
    fn edges(&self, across_rows: bool) -> Vec<bool> {
        let (n, len) = if across_rows {
            (self.h, self.w)
        } else {
            (self.w, self.h)
        };
        // Pixel offsets of one boundary step and of one step along it.
        let (sb, si) = if across_rows {
            (self.w, 1)
        } else {
            (1, self.w)
        };
        let px = &self.px;
        let edge = |a: usize, b: usize| {
            let (p, q) = (px[a], px[b]);
            (p[0] - q[0])
                .abs()
                .max((p[1] - q[1]).abs())
                .max((p[2] - q[2]).abs())
                >= EDGE
        };
        let mut out = vec![false; (n + 1) * len];
        for b in 1..n {
            for i in 0..len {
                let (lo, hi) = ((b - 1) * sb + i * si, b * sb + i * si);
                out[b * len + i] = edge(lo, hi)
                    || (b >= 2 && edge(lo - sb, hi))
                    || (b + 1 < n && edge(lo, hi + sb));
            }
        }
        out
    }
}

/// Candidate sides: boundaries whose longest run of outstanding edges (an
/// edge where the boundary [`BESIDE`] away on one side has none; gaps up to
/// [`GAP`]) covers [`MIN_RUN`] of `len`, the strongest of each neighbourhood
/// of ±2, at most [`MAX_LINES`] of them (longest first), plus both outer
/// borders; sorted by position. Counting only outstanding edges keeps the
/// dense texture inside a picture from crowding out its border.
fn lines(edges: &[bool], n: usize, len: usize) -> Vec<usize> {
    let at = |b: usize, i: usize| edges[b * len + i];
    let runs: Vec<usize> = (0..=n)
        .map(|b| {
            let (lo, hi) = (b.saturating_sub(BESIDE), (b + BESIDE).min(n));
            let flags: Vec<bool> = (0..len)
                .map(|i| at(b, i) && (!at(lo, i) || !at(hi, i)))
                .collect();
            longest_run(&flags)
        })
        .collect();
    let min = (MIN_RUN * len as f32).ceil() as usize;
    let mut strong: Vec<(usize, usize)> = (1..n)
        .filter(|&b| runs[b] >= min)
        .filter(|&b| {
            let lo = b.saturating_sub(2);
            let hi = (b + 2).min(n);
            // Plateaus keep their first boundary.
            (lo..=hi).all(|o| runs[o] < runs[b] || (runs[o] == runs[b] && o >= b))
        })
        .map(|b| (runs[b], b))
        .collect();
    strong.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    strong.truncate(MAX_LINES);
    // A step spreads over a few boundaries of equal run (the averaging and
    // the two-boundary test): the side is the middle one.
    let mut out: Vec<usize> = strong
        .into_iter()
        .map(|(r, b)| {
            let width = (b..n.min(b + 4)).take_while(|&o| runs[o] == r).count();
            b + (width - 1) / 2
        })
        .collect();
    out.push(0);
    out.push(n);
    out.sort_unstable();
    out
}

fn longest_run(flags: &[bool]) -> usize {
    let (mut best, mut start, mut last) = (0usize, None::<usize>, 0usize);
    for (i, &f) in flags.iter().enumerate() {
        if !f {
            continue;
        }
        match start {
            Some(s) if i - last <= GAP + 1 => best = best.max(i + 1 - s),
            _ => {
                start = Some(i);
                best = best.max(1);
            }
        }
        last = i;
    }
    best
}

/// Prefix sums of edge flags along each boundary: over a ±1 band of
/// boundaries (a side may sit one boundary off the step it follows), and of
/// the boundary alone (what lies beside a side).
struct Sums {
    len: usize,
    band: Vec<u32>,
    raw: Vec<u32>,
}

fn prefix(edges: &[bool], n: usize, len: usize) -> Sums {
    let mut band = vec![0u32; n * (len + 1)];
    let mut raw = vec![0u32; n * (len + 1)];
    for b in 0..n {
        for i in 0..len {
            let near = edges[b * len + i]
                || (b > 0 && edges[(b - 1) * len + i])
                || (b + 1 < n && edges[(b + 1) * len + i]);
            let at = b * (len + 1) + i;
            band[at + 1] = band[at] + near as u32;
            raw[at + 1] = raw[at] + edges[b * len + i] as u32;
        }
    }
    Sums { len, band, raw }
}

impl Sums {
    /// The share of boundary `b` between `from` and `to` that is an edge,
    /// within a boundary (`band`) or exactly there.
    fn share(&self, b: usize, from: usize, to: usize, band: bool) -> f32 {
        let sums = if band { &self.band } else { &self.raw };
        let row = &sums[b * (self.len + 1)..(b + 1) * (self.len + 1)];
        (row[to] - row[from]) as f32 / (to - from).max(1) as f32
    }

    /// The support of a side on boundary `b` from `from` to `to`: its edge
    /// share, or -1 when that is under [`SUPPORT`] or does not stand out by
    /// [`CONTRAST`] from the boundary [`BESIDE`] away on its quieter side.
    fn side(&self, b: usize, from: usize, to: usize) -> f32 {
        let n = self.band.len() / (self.len + 1);
        let v = self.share(b, from, to, true);
        let beside = self
            .share(b.saturating_sub(BESIDE), from, to, false)
            .min(self.share((b + BESIDE).min(n - 1), from, to, false));
        if v < SUPPORT || v - beside < CONTRAST {
            -1.0
        } else {
            v
        }
    }
}

/// A summed-area table of textured pixels ([`Small::texture`]).
struct Integral {
    w: usize,
    sums: Vec<u32>,
}

impl Integral {
    /// The share of edge pixels in columns `x0..x1`, rows `y0..y1`.
    fn share(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> f32 {
        if x1 <= x0 || y1 <= y0 {
            return 0.0;
        }
        let at = |x: usize, y: usize| self.sums[y * (self.w + 1) + x] as i64;
        let n = at(x1, y1) - at(x0, y1) - at(x1, y0) + at(x0, y0);
        n as f32 / ((x1 - x0) * (y1 - y0)) as f32
    }
}

/// The proposed regions of each image in `images`, all their crops described
/// in one call of `describe` (an engine's batch: the GPU engine describes a
/// batch's regions in one dispatch, as the CPU reference describes each crop).
pub fn describe_all<E>(
    images: &[RgbImage],
    describe: impl FnOnce(&[RgbImage]) -> Result<Vec<super::QueryDescriptors>, E>,
) -> Result<Vec<Vec<super::Region>>, E> {
    use rayon::prelude::*;
    let found: Vec<Vec<Rect>> = images.par_iter().map(proposals).collect();
    let crops: Vec<RgbImage> = images
        .par_iter()
        .zip(&found)
        .flat_map_iter(|(img, rs)| rs.iter().map(|&r| crop(img, r)))
        .collect();
    let mut out: Vec<Vec<super::Region>> = found.iter().map(|_| Vec::new()).collect();
    if crops.is_empty() {
        return Ok(out);
    }
    let mut described = describe(&crops)?.into_iter();
    for (slot, rs) in out.iter_mut().zip(&found) {
        for &rect in rs {
            let q = described.next().expect("one description per crop");
            slot.push(super::Region { rect, q });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// Picture-like content: a few colour waves plus pixel noise.
    fn picture(w: u32, h: u32, seed: u32) -> RgbImage {
        let mut s = seed.wrapping_mul(2654435761) | 1;
        RgbImage::from_fn(w, h, |x, y| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let n = (s % 41) as f32 - 20.0;
            let (fx, fy) = (x as f32, y as f32);
            let k = 1.0 + (seed % 5) as f32;
            let v = |a: f32, b: f32, o: f32| {
                (110.0 + 70.0 * (a * fx / 17.0 * k + b * fy / 23.0 + o).sin() + n).clamp(0.0, 255.0)
                    as u8
            };
            Rgb([v(1.0, 0.3, 0.0), v(0.4, 1.1, 1.0), v(0.7, -0.6, 2.0)])
        })
    }

    /// Pastes `pic` at (x, y); its box in pixels.
    fn paste(page: &mut RgbImage, pic: &RgbImage, x: u32, y: u32) -> (u32, u32, u32, u32) {
        image::imageops::replace(page, pic, x as i64, y as i64);
        (x, y, pic.width(), pic.height())
    }

    /// `r` in `img`'s pixels is within `tol` pixels of `b` on every side
    /// (the search runs on a copy scaled down 2-3x here: two of its pixels).
    fn near(img: &RgbImage, r: Rect, b: (u32, u32, u32, u32), tol: u32) -> bool {
        let a = r.pixels(img.width(), img.height());
        a.0.abs_diff(b.0) <= tol
            && a.1.abs_diff(b.1) <= tol
            && (a.0 + a.2).abs_diff(b.0 + b.2) <= tol
            && (a.1 + a.3).abs_diff(b.1 + b.3) <= tol
    }

    #[test]
    fn shares_and_pixels_agree() {
        let r = Rect::of_pixels(30, 40, 130, 240, 400, 300);
        assert_eq!((r.x, r.y), (0.075, 0.1333));
        assert_eq!(r.pixels(400, 300), (30, 40, 100, 200));
        // At another decoded scale the same share of the image.
        assert_eq!(r.pixels(200, 150), (15, 20, 50, 100));
        // Never empty, never outside.
        let edge = Rect {
            x: 0.9999,
            y: 1.0,
            w: 0.0,
            h: 0.5,
        };
        let (x, y, w, h) = edge.pixels(10, 10);
        assert!(
            w >= 1 && h >= 1 && x + w <= 10 && y + h <= 10,
            "{x} {y} {w} {h}"
        );
    }

    #[test]
    fn finds_a_picture_inside_a_flat_page() {
        // A feed page: light background, lines of "text", the picture.
        let mut page = RgbImage::from_pixel(400, 640, Rgb([236, 236, 240]));
        for y in (30..120).step_by(18) {
            for x in 24..300 {
                for t in 0..4 {
                    page.put_pixel(x, y + t, Rgb([60, 60, 70]));
                }
            }
        }
        let want = paste(&mut page, &picture(300, 220, 3), 50, 200);
        let got = proposals(&page);
        assert!(!got.is_empty(), "nothing proposed");
        assert!(near(&page, got[0], want, 6), "{got:?} vs {want:?}");
    }

    #[test]
    fn finds_a_picture_pasted_onto_another() {
        // A smooth blue photograph under a textured picture.
        let mut photo = RgbImage::from_fn(640, 480, |x, y| {
            Rgb([
                30 + (x / 16) as u8,
                60 + (y / 8) as u8,
                200 + (x / 64) as u8,
            ])
        });
        let want = paste(&mut photo, &picture(230, 200, 7), 300, 120);
        let got = proposals(&photo);
        assert!(
            got.iter().any(|&r| near(&photo, r, want, 6)),
            "{got:?} vs {want:?}"
        );
    }

    #[test]
    fn plain_pictures_propose_nothing() {
        assert_eq!(proposals(&picture(500, 400, 11)), vec![]);
        // Dense texture everywhere: every boundary is edgy, none stands out.
        let hatch = RgbImage::from_fn(400, 300, |x, y| {
            Rgb([
                (x * 7 % 251) as u8,
                (y * 13 % 241) as u8,
                ((x ^ y) * 5 % 239) as u8,
            ])
        });
        assert_eq!(proposals(&hatch), vec![]);
        assert_eq!(
            proposals(&RgbImage::from_pixel(300, 300, Rgb([9, 9, 9]))),
            vec![]
        );
        assert_eq!(
            proposals(&picture(40, 40, 1)),
            vec![],
            "too small to search"
        );
    }

    /// Line art: a box outlined on white hashes like any other near-blank
    /// crop, so it is not proposed (the texture rule).
    #[test]
    fn outlined_boxes_are_not_pictures() {
        let mut art = RgbImage::from_pixel(400, 400, Rgb([255; 3]));
        for i in 0..4u32 {
            for t in 100..300 {
                for p in [(t, 100 + i), (t, 299 - i), (100 + i, t), (299 - i, t)] {
                    art.put_pixel(p.0, p.1, Rgb([0; 3]));
                }
            }
        }
        assert_eq!(proposals(&art), vec![]);
    }

    /// A portrait between letterbox bars in a feed, its white top against
    /// the white page: three sides are edges, the top only along the bars.
    #[test]
    fn finds_a_box_with_one_open_side() {
        let mut boxed = RgbImage::from_pixel(300, 260, Rgb([0; 3]));
        let mut portrait = picture(140, 260, 9);
        for y in 0..50 {
            for x in 0..140 {
                portrait.put_pixel(x, y, Rgb([250; 3]));
            }
        }
        paste(&mut boxed, &portrait, 80, 0);
        let mut page = RgbImage::from_pixel(420, 700, Rgb([250; 3]));
        let want = paste(&mut page, &boxed, 60, 300);
        let got = proposals(&page);
        assert!(
            got.iter().any(|&r| near(&page, r, want, 6)),
            "{got:?} vs {want:?}"
        );
    }

    /// A letterboxed picture in a feed (black bars inside the rectangle) is
    /// cropped to the picture.
    #[test]
    fn crops_drop_the_bars_inside_a_region() {
        let mut boxed = RgbImage::from_pixel(300, 260, Rgb([0; 3]));
        paste(&mut boxed, &picture(300, 180, 5), 0, 40);
        let mut page = RgbImage::from_pixel(420, 700, Rgb([250; 3]));
        paste(&mut page, &boxed, 60, 300);
        let got = proposals(&page);
        assert!(!got.is_empty(), "nothing proposed");
        let c = crop(&page, got[0]);
        let (w, h) = c.dimensions();
        assert!(
            w.abs_diff(300) <= 6 && h.abs_diff(180) <= 6,
            "{got:?}: {w}x{h}"
        );
    }
}

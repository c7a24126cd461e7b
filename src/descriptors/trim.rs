//! Border and caption-bar trimming. Padding, letterboxing and meme captions
//! move every pixel of a copy relative to its source, which wrecks PDQ; hashing
//! a second, trimmed view recovers it. Trimming alone is a trap (most images
//! have near-uniform margins, and noise or colour changes make an image and its
//! copy trim differently), so callers keep both descriptors and the best
//! distance wins.
//!
//! CPU only, no shader of its own: the GPU engine trims on the CPU and hashes
//! the trimmed views with the PDQ shaders like any image (src/gpu/mod.rs).

use image::RgbImage;

/// A colour counts as "background" within this many levels per channel.
const TOLERANCE: i32 = 24;
/// A line (row or column) is bar-like when this share of its pixels is background.
const BAR_SHARE: f32 = 0.70;
/// Within a caption bar, text lines are not bar-like: accept a band whose
/// lines are at least this share bar-like overall.
const BAND_SHARE: f32 = 0.5;
/// Never trim more than this share of a dimension from one side.
const MAX_SIDE: f32 = 0.45;
/// Ignore trims thinner than this share of the dimension (JPEG edge noise).
const MIN_TRIM: f32 = 0.03;

/// Crop rectangle `(x, y, width, height)` of the content, or None when no
/// side has a uniform border or caption bar worth removing.
pub fn content_box(img: &RgbImage) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = img.dimensions();
    if w < 16 || h < 16 {
        return None;
    }
    let (raw, wu, hu) = (img.as_raw(), w as usize, h as usize);
    let row = |y: usize| &raw[3 * y * wu..3 * (y + 1) * wu];
    let col = |x: usize| -> Vec<u8> {
        raw[3 * x..]
            .chunks(3 * wu)
            .flat_map(|r| [r[0], r[1], r[2]])
            .collect()
    };
    // Rows are contiguous: count each one directly.
    let rows_from = |at: fn(usize, usize) -> usize| {
        move |bg, lines: std::ops::Range<usize>, out: &mut Vec<usize>| {
            out.extend(lines.map(|i| count_near(row(at(i, hu)), bg)));
        }
    };
    // Columns: one row-major sweep over the band of columns walked next
    // (reading whole rows is cache-friendly; a column is a strided walk).
    let cols_from = |left: bool| {
        move |bg, lines: std::ops::Range<usize>, out: &mut Vec<usize>| {
            let (i0, k) = (lines.start, lines.len());
            let x0 = if left { i0 } else { wu - i0 - k };
            let mut counts = vec![0usize; k];
            for y in 0..hu {
                add_near(&row(y)[3 * x0..3 * (x0 + k)], bg, &mut counts);
            }
            if !left {
                counts.reverse();
            }
            out.extend(counts);
        }
    };
    let top = side(h, row(0).to_vec(), rows_from(|i, _| i));
    let bottom = side(h, row(hu - 1).to_vec(), rows_from(|i, n| n - 1 - i));
    let left = side(w, col(0), cols_from(true));
    let right = side(w, col(wu - 1), cols_from(false));
    let (nw, nh) = (
        w.saturating_sub(left + right),
        h.saturating_sub(top + bottom),
    );
    if top + bottom + left + right == 0 || nw < w / 3 || nh < h / 3 || nw < 16 || nh < 16 {
        return None;
    }
    Some((left, top, nw, nh))
}

/// The content of `img` with borders and caption bars removed, if any.
pub fn trimmed(img: &RgbImage) -> Option<RgbImage> {
    let (x, y, w, h) = content_box(img)?;
    Some(image::imageops::crop_imm(img, x, y, w, h).to_image())
}

/// How many lines to trim from one side: the background colour is the most
/// common colour of the outermost line (`first`, RGB bytes); lines are walked
/// inward while the band so far stays mostly bar-like, and the trim ends after
/// the last bar-like line. `counts(bg, lines, out)` appends, for each line of
/// the range (counted from this side), how many of its pixels are near `bg`.
/// They are asked for in batches of doubling size: most walks stop at the
/// first line, long ones cost at most twice what they use.
fn side(
    n: u32,
    first: Vec<u8>,
    counts: impl Fn([u8; 3], std::ops::Range<usize>, &mut Vec<usize>),
) -> u32 {
    let len = (first.len() / 3) as f32;
    let bg = dominant(&first);
    let limit = (n as f32 * MAX_SIDE) as usize;
    let (mut bars, mut end) = (0u32, 0u32);
    let mut near = Vec::new();
    let mut batch = 1;
    'walk: while near.len() < limit {
        let from = near.len();
        counts(bg, from..(from + batch).min(limit), &mut near);
        batch *= 2;
        for (i, &c) in near.iter().enumerate().skip(from) {
            if c as f32 / len >= BAR_SHARE {
                bars += 1;
                end = i as u32 + 1;
            } else if (bars as f32) < BAND_SHARE * (i + 1) as f32 {
                break 'walk;
            }
        }
    }
    if (end as f32) < MIN_TRIM * n as f32 {
        0
    } else {
        end
    }
}

fn near(p: &[u8], bg: [u8; 3]) -> bool {
    (0..3).all(|c| p[c].abs_diff(bg[c]) as i32 <= TOLERANCE)
}

/// Adds 1 to `counts[j]` for each pixel `j` of an RGB byte line within
/// `TOLERANCE` of `bg` on every channel.
fn add_near(line: &[u8], bg: [u8; 3], counts: &mut [usize]) {
    let pattern = repeat8(bg);
    let mut chunks = line.chunks_exact(24);
    let mut cs = counts.chunks_exact_mut(8);
    for (c, n) in (&mut chunks).zip(&mut cs) {
        for (n, f) in n.iter_mut().zip(near8(c, &pattern)) {
            *n += f as usize;
        }
    }
    for (p, n) in chunks.remainder().chunks_exact(3).zip(cs.into_remainder()) {
        *n += near(p, bg) as usize;
    }
}

/// Pixels of an RGB byte line within `TOLERANCE` of `bg` on every channel.
fn count_near(line: &[u8], bg: [u8; 3]) -> usize {
    let pattern = repeat8(bg);
    let mut chunks = line.chunks_exact(24);
    let n: usize = (&mut chunks)
        .map(|c| {
            near8(c, &pattern)
                .iter()
                .map(|&f| f as usize)
                .sum::<usize>()
        })
        .sum();
    n + chunks
        .remainder()
        .chunks_exact(3)
        .filter(|p| near(p, bg))
        .count()
}

/// `bg` repeated over 8 pixels (24 bytes), for [`near8`].
fn repeat8(bg: [u8; 3]) -> [u8; 24] {
    std::array::from_fn(|i| bg[i % 3])
}

/// [`near`] for 8 pixels (24 bytes) at once, as 0/1: the 24 byte tests
/// against the repeated background vectorise, where a per-pixel loop over
/// stride-3 data stays scalar.
#[inline(always)]
fn near8(c: &[u8], pattern: &[u8; 24]) -> [u8; 8] {
    let c: &[u8; 24] = c.try_into().expect("a 24-byte chunk");
    let m: [u8; 24] =
        std::array::from_fn(|i| (c[i].abs_diff(pattern[i]) as i32 <= TOLERANCE) as u8);
    std::array::from_fn(|k| m[3 * k] & m[3 * k + 1] & m[3 * k + 2])
}

/// Most common colour after quantising to 32 levels per channel (ties: the
/// lowest bin, so the answer never depends on iteration order); returns the
/// mean of the pixels in that bin.
fn dominant(line: &[u8]) -> [u8; 3] {
    let bin =
        |p: &[u8]| ((p[0] as u16 >> 3) << 10) | ((p[1] as u16 >> 3) << 5) | (p[2] as u16 >> 3);
    let mut keys: Vec<u16> = line.chunks_exact(3).map(bin).collect();
    keys.sort_unstable();
    let (mut best, mut best_n) = (0u16, 0usize);
    for run in keys.chunk_by(|a, b| a == b) {
        if run.len() > best_n {
            (best, best_n) = (run[0], run.len());
        }
    }
    if best_n == 0 {
        return [0; 3];
    }
    let mut s = [0u32; 3];
    for p in line.chunks_exact(3).filter(|p| bin(p) == best) {
        for c in 0..3 {
            s[c] += p[c] as u32;
        }
    }
    let n = best_n as u32;
    [(s[0] / n) as u8, (s[1] / n) as u8, (s[2] / n) as u8]
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn textured(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([
                (x * 7 % 251) as u8,
                (y * 13 % 241) as u8,
                ((x ^ y) * 5 % 239) as u8,
            ])
        })
    }

    fn pad(img: &RgbImage, l: u32, t: u32, r: u32, b: u32, c: [u8; 3]) -> RgbImage {
        let mut out = RgbImage::from_pixel(img.width() + l + r, img.height() + t + b, Rgb(c));
        image::imageops::replace(&mut out, img, l as i64, t as i64);
        out
    }

    #[test]
    fn finds_padding_letterbox_and_caption() {
        let core = textured(200, 150);
        assert_eq!(content_box(&core), None, "no border: nothing trimmed");
        assert_eq!(
            content_box(&pad(&core, 30, 0, 30, 0, [255, 255, 255])),
            Some((30, 0, 200, 150))
        );
        assert_eq!(
            content_box(&pad(&core, 0, 40, 0, 40, [0, 0, 0])),
            Some((0, 40, 200, 150))
        );
        // A caption bar with "text" (dark blocks covering a quarter of some lines).
        let mut meme = pad(&core, 0, 50, 0, 0, [250, 250, 245]);
        for y in 15..35 {
            for x in (20..180).step_by(4) {
                meme.put_pixel(x, y, Rgb([0, 0, 0]));
            }
        }
        assert_eq!(content_box(&meme), Some((0, 50, 200, 150)));
        assert_eq!(trimmed(&meme).unwrap().dimensions(), (200, 150));
    }

    /// Two colours equally common: the lower bin wins, every time (a hash
    /// map's iteration order once decided, so runs differed).
    #[test]
    fn dominant_colour_ties_are_deterministic() {
        let mut line = [200u8, 200, 200].repeat(10);
        line.extend([10u8, 20, 30].repeat(10));
        assert_eq!(dominant(&line), [10, 20, 30]);
        line.reverse(); // pixels now [30, 20, 10] and [200; 3]
        assert_eq!(dominant(&line), [30, 20, 10]);
        // Bin means: two shades inside one bin average.
        assert_eq!(dominant(&[8, 8, 8, 10, 10, 10, 200, 0, 0]), [9, 9, 9]);
    }

    /// The vectorised count equals the per-pixel test, tail included.
    #[test]
    fn near_count_matches_per_pixel_test() {
        let line: Vec<u8> = (0..3 * 37).map(|i| ((i * 53) % 256) as u8).collect();
        for bg in [[0u8, 0, 0], [120, 130, 140], [255, 255, 255], [40, 200, 90]] {
            let want = line
                .chunks_exact(3)
                .filter(|p| (0..3).all(|c| (p[c] as i32 - bg[c] as i32).abs() <= TOLERANCE))
                .count();
            assert_eq!(count_near(&line, bg), want, "{bg:?}");
            let mut counts = vec![0usize; 37];
            add_near(&line, bg, &mut counts);
            add_near(&line, bg, &mut counts);
            assert_eq!(counts.iter().sum::<usize>(), 2 * want, "{bg:?}");
            assert!(counts
                .iter()
                .zip(line.chunks_exact(3))
                .all(|(&c, p)| c == 2 * near(p, bg) as usize));
        }
    }

    #[test]
    fn flat_or_tiny_images_are_left_alone() {
        assert_eq!(
            content_box(&RgbImage::from_pixel(100, 100, Rgb([9, 9, 9]))),
            None
        );
        assert_eq!(content_box(&RgbImage::new(8, 8)), None);
        // A 2-pixel border is JPEG-edge noise, not padding.
        assert_eq!(
            content_box(&pad(&textured(200, 150), 2, 2, 2, 2, [255, 255, 255])),
            None
        );
    }
}

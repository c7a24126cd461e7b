//! Border and caption-bar trimming. Padding, letterboxing and meme captions
//! move every pixel of a copy relative to its source, which wrecks PDQ; hashing
//! a second, trimmed view recovers it. Trimming alone is a trap (most images
//! have near-uniform margins, and noise or colour changes make an image and its
//! copy trim differently), so callers keep both descriptors and the best
//! distance wins.

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
    let row = |y: u32| -> Vec<[u8; 3]> { (0..w).map(|x| img.get_pixel(x, y).0).collect() };
    let col = |x: u32| -> Vec<[u8; 3]> { (0..h).map(|y| img.get_pixel(x, y).0).collect() };
    let top = side(h, |i| row(i));
    let bottom = side(h, |i| row(h - 1 - i));
    let left = side(w, |i| col(i));
    let right = side(w, |i| col(w - 1 - i));
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
/// common colour of the outermost line; lines are walked inward while the band
/// so far stays mostly bar-like, and the trim ends after the last bar-like line.
fn side(n: u32, line: impl Fn(u32) -> Vec<[u8; 3]>) -> u32 {
    let first = line(0);
    let bg = dominant(&first);
    let limit = (n as f32 * MAX_SIDE) as u32;
    let (mut bars, mut end) = (0u32, 0u32);
    for i in 0..limit {
        let l = if i == 0 { first.clone() } else { line(i) };
        let share = l.iter().filter(|p| near(p, &bg)).count() as f32 / l.len() as f32;
        if share >= BAR_SHARE {
            bars += 1;
            end = i + 1;
        } else if (bars as f32) < BAND_SHARE * (i + 1) as f32 {
            break;
        }
    }
    if (end as f32) < MIN_TRIM * n as f32 {
        0
    } else {
        end
    }
}

fn near(p: &[u8; 3], q: &[u8; 3]) -> bool {
    (0..3).all(|c| (p[c] as i32 - q[c] as i32).abs() <= TOLERANCE)
}

/// Most common colour after quantising to 32 levels per channel; returns the
/// mean of the pixels in that bin.
fn dominant(line: &[[u8; 3]]) -> [u8; 3] {
    let mut bins = std::collections::HashMap::<u16, (u32, [u32; 3])>::new();
    for p in line {
        let k = ((p[0] as u16 >> 3) << 10) | ((p[1] as u16 >> 3) << 5) | (p[2] as u16 >> 3);
        let e = bins.entry(k).or_insert((0, [0; 3]));
        e.0 += 1;
        for c in 0..3 {
            e.1[c] += p[c] as u32;
        }
    }
    let (n, s) = bins
        .into_values()
        .max_by_key(|(n, _)| *n)
        .unwrap_or((1, [0; 3]));
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

//! Thumbnails and difference images for the HTML reports, as JPEG data: URIs
//! so a report is one self-contained file.
//!
//! Images are decoded through `ingest::decode` with the same size and pixel
//! limits as indexing, JPEGs at reduced scale (the short side kept just above
//! the thumbnail size), one image per task: callers run tasks on rayon in
//! small batches, so memory stays at a few decoded images per core.

use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};

use crate::ingest::{decode, DecodeMode, Limits};

/// Longest side of a thumbnail in pixels.
pub const THUMB_SIDE: u32 = 160;
const JPEG_QUALITY: u8 = 78;

/// A thumbnail and what the report says about its file.
pub struct Thumb {
    /// The image scaled down to at most [`THUMB_SIDE`] on its longest side.
    pub img: RgbImage,
    /// Width of the image as stored (upright), before any scaling.
    pub width: u32,
    /// Height of the image as stored (upright).
    pub height: u32,
    /// File size in bytes.
    pub bytes: u64,
}

/// Decodes a file (or a tar shard member, `SHARD.tar/MEMBER`) for display:
/// upright (EXIF applied), scaled down so its longest side is at most
/// `THUMB_SIDE`. `Err` is the reason, for the report.
pub fn load(path: &str, limits: &Limits) -> Result<Thumb, String> {
    // Refuses a FIFO put there since indexing: it would block the read.
    let bytes = crate::ingest::source::read(&super::names::text_path(path), limits)
        .map_err(|f| f.reason)?;
    // A scaled JPEG decode only needs to stay above the thumbnail size.
    let lim = Limits {
        fast_min_side: THUMB_SIDE,
        ..*limits
    };
    let d = decode::decode(&bytes, DecodeMode::Fast, &lim)?;
    Ok(Thumb {
        img: fit(&d.rgb, THUMB_SIDE),
        width: d.width,
        height: d.height,
        bytes: bytes.len() as u64,
    })
}

/// Scales `img` down (never up) so that its longest side is at most `side`.
pub fn fit(img: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w <= side && h <= side {
        return img.clone();
    }
    let s = side as f64 / w.max(h) as f64;
    let (nw, nh) = (
        ((w as f64 * s).round() as u32).max(1),
        ((h as f64 * s).round() as u32).max(1),
    );
    imageops::thumbnail(img, nw, nh)
}

/// Applies the dihedral transform named by a check `orientation` (the query
/// variant that matched), so that the transformed query lines up with the
/// training image. Mapping as in `descriptors::pdq::DIHEDRAL_NAMES`.
pub fn orient(img: &RgbImage, orientation: &str) -> RgbImage {
    match orientation {
        "rot90" => imageops::rotate270(img), // PDQ's rot90 is counter-clockwise
        "rot180" => imageops::rotate180(img),
        "rot270" => imageops::rotate90(img),
        "flip-x" => imageops::flip_vertical(img),
        "flip-y" => imageops::flip_horizontal(img),
        // transpose (x, y) → (y, x) = mirror left/right after a clockwise turn
        "flip-diag" => imageops::flip_horizontal(&imageops::rotate90(img)),
        // anti-transpose (x, y) → (h-1-y, w-1-x)
        "flip-antidiag" => imageops::flip_vertical(&imageops::rotate90(img)),
        _ => img.clone(),
    }
}

/// Aligned absolute difference: the query turned back by `orientation`,
/// resized to the training thumbnail's size, |Δ| per pixel as grey (black =
/// identical), amplified ×2 so faint edits show. Also the mean |Δ| in [0, 1].
pub fn difference(query: &RgbImage, training: &RgbImage, orientation: &str) -> (GrayImage, f64) {
    let (w, h) = training.dimensions();
    let q = imageops::resize(&orient(query, orientation), w, h, FilterType::Triangle);
    let mut sum = 0u64;
    let diff = GrayImage::from_fn(w, h, |x, y| {
        let (a, b) = (q.get_pixel(x, y), training.get_pixel(x, y));
        let d = (0..3)
            .map(|c| (a[c] as i32 - b[c] as i32).unsigned_abs())
            .sum::<u32>()
            / 3;
        sum += d as u64;
        image::Luma([(d * 2).min(255) as u8])
    });
    let mean = sum as f64 / (255.0 * (w as u64 * h as u64).max(1) as f64);
    (diff, mean)
}

/// JPEG bytes of an RGB or grey image as a `data:` URI.
pub fn data_uri<I: image::GenericImageView>(img: &I) -> String
where
    I::Pixel: image::PixelWithColorType,
{
    let mut buf = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, JPEG_QUALITY);
    // Encoding an in-memory 8-bit RGB/grey buffer cannot fail short of a bug.
    enc.encode_image(img).expect("JPEG encoding of a thumbnail");
    format!("data:image/jpeg;base64,{}", base64(&buf))
}

/// Standard base64 (RFC 4648, padded): a dozen lines instead of a dependency.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (i, o) in cases {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    /// `orient` undoes exactly the transform whose PDQ variant matched: the
    /// variant hashes of an image equal the hashes of `orient(image, name)`.
    #[test]
    fn orient_agrees_with_pdq_dihedral_variants() {
        let img = RgbImage::from_fn(96, 64, |x, y| {
            image::Rgb([
                (x * 5 % 256) as u8,
                (y * 7 % 256) as u8,
                ((x * y) % 251) as u8,
            ])
        });
        let (variants, _) = crate::descriptors::pdq::pdq_dihedral_from_rgb(&img);
        for (v, name) in crate::search::result::ORIENTATIONS.iter().enumerate() {
            let direct = crate::descriptors::pdq::pdq_from_rgb(&orient(&img, name)).hash;
            let d = direct.hamming(&variants[v]);
            assert!(
                d <= 16,
                "{name}: variant differs by {d} bits from the oriented image"
            );
        }
    }

    #[test]
    fn difference_is_black_only_when_aligned() {
        let img = RgbImage::from_fn(80, 50, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
        });
        // A copy turned clockwise matches as PDQ's "rot90" (counter-clockwise turn of the query).
        let turned = imageops::rotate90(&img);
        let (d, aligned) = difference(&turned, &img, "rot90");
        assert!(aligned < 0.02, "{aligned}");
        assert_eq!(d.dimensions(), img.dimensions());
        let (_, wrong) = difference(&turned, &img, "rot270");
        assert!(wrong > 0.1, "{wrong}");
    }
}

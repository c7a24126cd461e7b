//! Decoding within limits: every failure is a `reason` string for the skip
//! report, never a panic. Output is upright (EXIF applied) RGB with alpha
//! flattened onto white.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, RgbImage};

use super::{exif, turbo, Failure};

/// How images are decoded: exactly, or fast via scaled JPEG decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeMode {
    /// Full-resolution decode, accurate IDCT: hashes comparable with the
    /// reference tools (Meta's PDQ, imagehash) on the original pixels.
    Exact,
    /// JPEGs decoded at 1/2, 1/4 or 1/8 scale in the DCT domain, keeping the
    /// short side at least `Limits::fast_min_side`. Other formats decode at full size.
    Fast,
}

/// Short side the fast path keeps at least, by default. PDQ's own
/// anti-aliasing is weak (box window ceil(n/128)), so its bits depend on the
/// input resolution: at ≥ 512 px the scaled decode stays within 8 bits of
/// the full-resolution hash on 99 % of images (measured on the evaluation
/// corpus); at 128 px it is ~3× faster and finds copies as well when index
/// and queries are decoded alike, but drifts from reference hashes.
pub const FAST_MIN_SIDE: u32 = 512;

/// Guards against decompression bombs and absurd files.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Skip files larger than this many bytes.
    pub max_bytes: u64,
    /// Skip images with more pixels than this (decompression bombs).
    pub max_pixels: u64,
    /// Fast mode: smallest short side a scaled JPEG decode may produce.
    pub fast_min_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 256 << 20,
            max_pixels: 128_000_000,
            fast_min_side: FAST_MIN_SIDE,
        }
    }
}

/// A decoded image: upright RGB, alpha flattened onto white.
pub struct Decoded {
    /// The pixels (possibly a scaled-down JPEG decode).
    pub rgb: RgbImage,
    /// Size of the image as stored (before scaled decoding), upright.
    pub width: u32,
    /// Height of the image as stored, upright.
    pub height: u32,
}

fn is_jpeg(data: &[u8]) -> bool {
    data.len() >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF
}

/// Most elongated image described: the long side at most this many times
/// the short one. Real images stay well inside it (web banners 1:8 to 1:20,
/// panoramas up to ~1:12, long scrolling screenshots and web-comic episodes
/// 1:20 to 1:50); beyond 1:100 are strips, lines and decompression tricks
/// (a 1×100 000 000 PNG compresses to 200 KB), whose resizes cost memory in
/// proportion to the ratio and whose 64×64 hashes say nothing. Checked from
/// the header, before any pixel is decoded.
pub const MAX_ASPECT: u64 = 100;

/// Header checks before decoding: pixel count and aspect ratio.
fn check_pixels(w: u32, h: u32, limits: &Limits) -> Result<(), Failure> {
    if w == 0 || h == 0 {
        return Err("image with zero size".into());
    }
    let (long, short) = (w.max(h) as u64, w.min(h) as u64);
    if long > MAX_ASPECT * short {
        return Err(Failure::limit(format!(
            "image too elongated: {w}x{h} is beyond the 1:{MAX_ASPECT} aspect ratio limit"
        )));
    }
    let px = w as u64 * h as u64;
    if px > limits.max_pixels {
        return Err(Failure::limit(format!(
            "image too large: {w}x{h} = {:.0} Mpx exceeds the {:.0} Mpx limit (decompression bomb?)",
            px as f64 / 1e6,
            limits.max_pixels as f64 / 1e6
        )));
    }
    Ok(())
}

/// Largest power-of-two reduction (≤ 8) that keeps the short side ≥ `min_side`.
pub fn fast_denom(w: u32, h: u32, min_side: u32) -> u32 {
    let short = w.min(h);
    let mut d = 8;
    while d > 1 && short / d < min_side {
        d /= 2;
    }
    d
}

/// Decodes file bytes. `Err` holds the reason to skip it and whose fault it was.
pub fn decode(data: &[u8], mode: DecodeMode, limits: &Limits) -> Result<Decoded, Failure> {
    if data.is_empty() {
        return Err("empty file".into());
    }
    if data.len() as u64 > limits.max_bytes {
        return Err(Failure::limit(format!(
            "file larger than the {} MiB limit",
            limits.max_bytes >> 20
        )));
    }
    if is_jpeg(data) {
        if let Some(d) = decode_jpeg_turbo(data, mode, limits)? {
            return Ok(d);
        }
        if mode == DecodeMode::Fast && !turbo::AVAILABLE {
            if let Some(d) = decode_jpeg_scaled_fallback(data, limits)? {
                return Ok(d);
            }
        }
    }
    decode_generic(data, limits)
}

#[cfg(has_turbojpeg)]
fn decode_jpeg_turbo(
    data: &[u8],
    mode: DecodeMode,
    limits: &Limits,
) -> Result<Option<Decoded>, Failure> {
    let pick = |h: &turbo::Header| -> Result<u32, Failure> {
        check_pixels(h.width, h.height, limits)?;
        Ok(match mode {
            DecodeMode::Exact => 1,
            DecodeMode::Fast => fast_denom(h.width, h.height, limits.fast_min_side),
        })
    };
    let Some((img, header)) = turbo::decode(data, pick, true)? else {
        return Ok(None);
    };
    Ok(Some(orient(
        img,
        header.width,
        header.height,
        exif::jpeg_orientation(data),
    )))
}

#[cfg(not(has_turbojpeg))]
fn decode_jpeg_turbo(_: &[u8], _: DecodeMode, _: &Limits) -> Result<Option<Decoded>, Failure> {
    Ok(None)
}

/// Pure-Rust scaled decode (jpeg-decoder's reduced IDCT) when libjpeg-turbo is absent.
fn decode_jpeg_scaled_fallback(data: &[u8], limits: &Limits) -> Result<Option<Decoded>, Failure> {
    let mut dec = jpeg_decoder::Decoder::new(data);
    dec.read_info().map_err(|e| format!("corrupt JPEG: {e}"))?;
    let info = dec.info().ok_or("corrupt JPEG: no header")?;
    let (w, h) = (info.width as u32, info.height as u32);
    check_pixels(w, h, limits)?;
    let d = fast_denom(w, h, limits.fast_min_side);
    let target = |x: u32| x.div_ceil(d).min(u16::MAX as u32) as u16;
    let (sw, sh) = dec
        .scale(target(w), target(h))
        .map_err(|e| format!("corrupt JPEG: {e}"))?;
    let px = dec
        .decode()
        .map_err(|e| format!("corrupt or truncated JPEG: {e}"))?;
    let info = dec.info().ok_or("corrupt JPEG: no header")?;
    let rgb: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => px,
        jpeg_decoder::PixelFormat::L8 => px.iter().flat_map(|&l| [l, l, l]).collect(),
        // CMYK and 16-bit greys: let the general decoder handle them.
        _ => return Ok(None),
    };
    let img = RgbImage::from_raw(sw as u32, sh as u32, rgb).ok_or("JPEG buffer size mismatch")?;
    Ok(Some(orient(img, w, h, exif::jpeg_orientation(data))))
}

fn orient(img: RgbImage, w: u32, h: u32, orientation: Option<u8>) -> Decoded {
    let o = orientation.unwrap_or(1);
    let (w, h) = if (5..=8).contains(&o) { (h, w) } else { (w, h) };
    Decoded {
        rgb: exif::apply_orientation(img, o),
        width: w,
        height: h,
    }
}

/// Any format `image` reads: PNG, WebP, GIF (first frame), BMP, TIFF, and
/// JPEGs the fast paths declined.
fn decode_generic(data: &[u8], limits: &Limits) -> Result<Decoded, Failure> {
    let mut reader = image::ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    if reader.format().is_none() {
        return Err("not an image (unrecognised format)".into());
    }
    let mut lim = image::Limits::default();
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(lim);
    let mut decoder = reader.into_decoder().map_err(describe_image_error)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err("image with zero size".into());
    }
    check_pixels(w, h, limits)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(describe_image_error)?;
    img.apply_orientation(orientation);
    let (w, h) = (img.width(), img.height());
    Ok(Decoded {
        rgb: flatten_on_white(img),
        width: w,
        height: h,
    })
}

fn describe_image_error(e: image::ImageError) -> Failure {
    match e {
        image::ImageError::Limits(l) => Failure::limit(format!(
            "image exceeds memory limits (decompression bomb?): {l}"
        )),
        image::ImageError::Unsupported(u) => Failure::content(format!("unsupported image: {u}")),
        image::ImageError::Decoding(d) => {
            Failure::content(format!("corrupt or truncated image: {d}"))
        }
        image::ImageError::IoError(e) => Failure::content(format!("cannot decode: {e}")),
        other => Failure::content(format!("cannot decode: {other}")),
    }
}

/// Transparent pixels become white, as an image viewer on a white page shows them.
pub fn flatten_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = p[3] as u32;
        for c in 0..3 {
            o[c] = ((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

impl DecodeMode {
    /// How an index records its decode setting, e.g. "exact" or "fast:512".
    pub fn label(&self, limits: &Limits) -> String {
        match self {
            DecodeMode::Exact => "exact".into(),
            DecodeMode::Fast => format!("fast:{}", limits.fast_min_side),
        }
    }

    /// Inverse of `label`: the mode and fast_min_side.
    pub fn parse_label(s: &str) -> Option<(DecodeMode, u32)> {
        match s {
            "exact" => Some((DecodeMode::Exact, FAST_MIN_SIDE)),
            _ => s
                .strip_prefix("fast:")?
                .parse()
                .ok()
                .map(|n| (DecodeMode::Fast, n)),
        }
    }
}

//! What Python hands over, as the library wants it: each input (a path, a
//! file's bytes, raw pixels) read and decoded, in order, as the CLI reads
//! files. The Python layer (`lookalike/__init__.py`) has already turned
//! PIL images and numpy arrays into raw pixels and checked their types.

use std::path::PathBuf;

use image::{DynamicImage, RgbImage, RgbaImage};
use lookalike::ingest::decode::{decode, flatten_on_white, MAX_ASPECT};
use lookalike::ingest::names::path_text;
use lookalike::ingest::{process_batch, DecodeMode, FileEntry, Limits, Outcome, Skipped};
use lookalike::pipeline::collect_queries;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use rayon::prelude::*;

/// One input as the Python layer tags it.
pub enum Item {
    /// `("path", path)`: an image file, or a folder of them.
    Path(PathBuf),
    /// `("bytes", name, data)`: an image file's bytes.
    Bytes(String, Vec<u8>),
    /// `("pixels", name, width, height, channels, data)`: RGB or RGBA rows.
    Pixels {
        name: String,
        width: u32,
        height: u32,
        channels: u32,
        data: Vec<u8>,
    },
}

/// Reads the tagged tuples (copying bytes, so no Python object is touched
/// once the GIL is released).
pub fn extract(items: &[Bound<'_, PyTuple>]) -> PyResult<Vec<Item>> {
    items.iter().map(extract_one).collect()
}

fn extract_one(t: &Bound<'_, PyTuple>) -> PyResult<Item> {
    let tag: String = t.get_item(0)?.extract()?;
    let bytes = |i: usize| -> PyResult<Vec<u8>> {
        Ok(t.get_item(i)?.cast::<PyBytes>()?.as_bytes().to_vec())
    };
    match (tag.as_str(), t.len()) {
        ("path", 2) => Ok(Item::Path(t.get_item(1)?.extract()?)),
        ("bytes", 3) => Ok(Item::Bytes(t.get_item(1)?.extract()?, bytes(2)?)),
        ("pixels", 6) => Ok(Item::Pixels {
            name: t.get_item(1)?.extract()?,
            width: t.get_item(2)?.extract()?,
            height: t.get_item(3)?.extract()?,
            channels: t.get_item(4)?.extract()?,
            data: bytes(5)?,
        }),
        _ => Err(PyTypeError::new_err(format!(
            "internal: unknown input tag {tag:?} with {} fields",
            t.len()
        ))),
    }
}

/// Pixels as an upright RGB image, alpha flattened onto white as the
/// decoder does for files. `ValueError` for a buffer that does not match
/// its shape; the library's own words for sizes it refuses.
pub fn pixels_to_rgb(
    width: u32,
    height: u32,
    channels: u32,
    data: Vec<u8>,
) -> Result<RgbImage, String> {
    if width == 0 || height == 0 {
        return Err("image with zero size".into());
    }
    let (long, short) = (width.max(height) as u64, width.min(height) as u64);
    if long > MAX_ASPECT * short {
        return Err(format!(
            "image too elongated: {width}x{height} is beyond the 1:{MAX_ASPECT} aspect ratio limit"
        ));
    }
    let bad = || format!("pixel buffer is not {width}x{height}x{channels}");
    match channels {
        3 => RgbImage::from_raw(width, height, data).ok_or_else(bad),
        4 => RgbaImage::from_raw(width, height, data)
            .map(|i| flatten_on_white(DynamicImage::ImageRgba8(i)))
            .ok_or_else(bad),
        n => Err(format!("{n} channels: expected 3 (RGB) or 4 (RGBA)")),
    }
}

/// Checks a pixel item's buffer length before any work, as a `ValueError`.
pub fn validate(items: &[Item]) -> PyResult<()> {
    for it in items {
        if let Item::Pixels {
            name,
            width,
            height,
            channels,
            data,
        } = it
        {
            let want = *width as u64 * *height as u64 * *channels as u64;
            if data.len() as u64 != want || !matches!(channels, 3 | 4) {
                return Err(PyValueError::new_err(format!(
                    "{name}: {} bytes of pixels is not {width}x{height}x{channels} \
                     (expected H×W×3 RGB or H×W×4 RGBA, uint8)",
                    data.len()
                )));
            }
        }
    }
    Ok(())
}

/// One image to read: a file found on disk, or bytes or pixels in memory.
/// `named`: the caller named it (not found by walking a folder).
pub struct Unit {
    source: Source,
    named: bool,
}

enum Source {
    File(FileEntry),
    Bytes(String, Vec<u8>),
    Pixels(String, u32, u32, u32, Vec<u8>),
}

/// A unit that could not be read: what the report's `skipped` lists, and
/// whether the caller named it (then it is an error unless skipping).
pub struct Bad {
    /// Path or name, and the reason.
    pub skipped: Skipped,
    /// The caller named this input (see [`Unit`]).
    pub named: bool,
}

/// What could not be read, for the report's `skipped`; an input the caller
/// named is an error instead (`"name: reason"`) unless `skip_bad`.
pub struct Skips {
    skip_bad: bool,
    /// The entries kept for `skipped`, in order.
    pub list: Vec<Skipped>,
}

impl Skips {
    /// None yet.
    pub fn new(skip_bad: bool) -> Skips {
        Skips {
            skip_bad,
            list: vec![],
        }
    }

    /// Keeps `b`, or the error it is.
    pub fn keep(&mut self, b: Bad) -> PyResult<()> {
        if b.named && !self.skip_bad {
            return Err(crate::LookalikeError::new_err(format!(
                "{}: {}",
                b.skipped.path, b.skipped.reason
            )));
        }
        self.list.push(b.skipped);
        Ok(())
    }
}

/// Lists the images of `items` in order: a folder's files in the walk's
/// (name) order, as `check DIR` lists them. Entries that could not be
/// listed (a path that does not exist, an unreadable folder entry) come
/// back as [`Bad`].
pub fn expand(items: Vec<Item>) -> (Vec<Unit>, Vec<Bad>) {
    let mut units = vec![];
    let mut bad = vec![];
    for it in items {
        match it {
            Item::Path(p) => {
                let named = !p.is_dir();
                let (files, skipped) = collect_queries(&p);
                if files.is_empty() && p.is_dir() {
                    // As `check DIR`: a folder without an image is an error,
                    // so a mistyped folder never reads as "nothing matched".
                    bad.push(Bad {
                        named: true,
                        skipped: Skipped {
                            path: path_text(&p),
                            reason: "no image files in it (JPEG, PNG, WebP, GIF, BMP, TIFF)".into(),
                        },
                    });
                }
                units.extend(files.into_iter().map(|f| Unit {
                    source: Source::File(f),
                    named,
                }));
                // A path that does not exist is not a folder either: named.
                bad.extend(skipped.into_iter().map(|skipped| Bad { named, skipped }));
            }
            Item::Bytes(name, data) => units.push(Unit {
                source: Source::Bytes(name, data),
                named: true,
            }),
            Item::Pixels {
                name,
                width,
                height,
                channels,
                data,
            } => units.push(Unit {
                source: Source::Pixels(name, width, height, channels, data),
                named: true,
            }),
        }
    }
    (units, bad)
}

/// One unit read and decoded: its name (a file's path as the CLI prints
/// it), the xxh3-128 of its bytes (0 for pixels: no bytes, so never
/// `same_bytes`) and upright RGB pixels; or why not.
pub type Read = Result<(String, u128, RgbImage), Bad>;

/// Reads and decodes `units` (one batch) in parallel: files exactly as
/// `check` reads them (`process_batch`), bytes as `serve` decodes an
/// upload, pixels as they are.
pub fn read(units: Vec<Unit>, mode: DecodeMode, limits: &Limits) -> Vec<Read> {
    let mut out: Vec<Option<Read>> = (0..units.len()).map(|_| None).collect();
    let mut files = vec![];
    let mut rest = vec![];
    for (i, u) in units.into_iter().enumerate() {
        match u.source {
            Source::File(f) => files.push((i, u.named, f)),
            s => rest.push((i, u.named, s)),
        }
    }
    let (slots, entries): (Vec<(usize, bool)>, Vec<FileEntry>) =
        files.into_iter().map(|(i, n, f)| ((i, n), f)).unzip();
    let processed = process_batch(entries, mode, limits, |_| None, |d| d.rgb.clone());
    for ((i, named), p) in slots.into_iter().zip(processed) {
        let path = path_text(&p.entry.path);
        out[i] = Some(match p.outcome {
            Outcome::Done(rgb) | Outcome::Duplicate(rgb) => Ok((path, p.content_hash, rgb)),
            Outcome::Skipped(f) => Err(bad(path, f.reason, named)),
        });
    }
    let others: Vec<(usize, Read)> = rest
        .into_par_iter()
        .map(|(i, named, s)| (i, read_memory(s, mode, limits, named)))
        .collect();
    for (i, r) in others {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every unit is read"))
        .collect()
}

fn read_memory(s: Source, mode: DecodeMode, limits: &Limits, named: bool) -> Read {
    match s {
        Source::Bytes(name, data) => {
            let hash = xxhash_rust::xxh3::xxh3_128(&data);
            match decode(&data, mode, limits) {
                Ok(d) => Ok((name, hash, d.rgb)),
                Err(f) => Err(bad(name, f.reason, named)),
            }
        }
        Source::Pixels(name, w, h, c, data) => match pixels_to_rgb(w, h, c, data) {
            Ok(rgb) => Ok((name, 0, rgb)),
            Err(why) => Err(bad(name, why, named)),
        },
        Source::File(_) => unreachable!("files are read by process_batch"),
    }
}

fn bad(path: String, reason: String, named: bool) -> Bad {
    Bad {
        skipped: Skipped { path, reason },
        named,
    }
}

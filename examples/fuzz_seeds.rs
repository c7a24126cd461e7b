//! Writes the generated part of the fuzz seed corpus (fuzz/seeds/, see
//! fuzz/README.md): small images in every format the decoder reads, JPEGs
//! with EXIF orientations and the header corruptions of issue 17, and the
//! safetensors seeds and the tar shards (WebDataset layout, long names,
//! a link and a folder entry, a shard cut short).
//!
//! ```text
//! cargo run --example fuzz_seeds -- fuzz/seeds
//! cargo run --example fuzz_seeds -- --index-seeds TEMPLATE_INDEX OUT_DIR
//! ```
//!
//! The second form writes the index target's seeds for a template index
//! (scripts/fuzz.sh makes one): each file of it, numbered as the target
//! numbers them.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--index-seeds") && args.len() == 3 {
        return index_seeds(Path::new(&args[1]), Path::new(&args[2]));
    }
    let out = args.first().cloned().unwrap_or_else(|| "fuzz/seeds".into());
    let out = Path::new(&out);
    let dec = out.join("decode");
    std::fs::create_dir_all(&dec)?;
    let rgb = RgbImage::from_fn(24, 16, |x, y| Rgb([(x * 10) as u8, (y * 15) as u8, 128]));
    let rgba = RgbaImage::from_fn(12, 20, |x, y| {
        Rgba([200, (x * 20) as u8, 40, (y * 12) as u8])
    });
    let save = |name: &str, img: &DynamicImage, fmt: ImageFormat| -> std::io::Result<Vec<u8>> {
        let mut b = Cursor::new(vec![]);
        img.write_to(&mut b, fmt).map_err(std::io::Error::other)?;
        std::fs::write(dec.join(name), b.get_ref())?;
        Ok(b.into_inner())
    };
    let jpeg = save(
        "rgb.jpg",
        &DynamicImage::ImageRgb8(rgb.clone()),
        ImageFormat::Jpeg,
    )?;
    let gray = DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(rgb.clone()).to_luma8());
    save("gray.jpg", &gray, ImageFormat::Jpeg)?;
    save(
        "rgb.png",
        &DynamicImage::ImageRgb8(rgb.clone()),
        ImageFormat::Png,
    )?;
    save(
        "rgba.png",
        &DynamicImage::ImageRgba8(rgba.clone()),
        ImageFormat::Png,
    )?;
    let deep = DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(rgb.clone()).to_rgb16());
    save("rgb16.png", &deep, ImageFormat::Png)?;
    save("gray.png", &gray, ImageFormat::Png)?;
    save(
        "rgba.gif",
        &DynamicImage::ImageRgba8(rgba.clone()),
        ImageFormat::Gif,
    )?;
    save(
        "rgb.bmp",
        &DynamicImage::ImageRgb8(rgb.clone()),
        ImageFormat::Bmp,
    )?;
    save(
        "rgb.tiff",
        &DynamicImage::ImageRgb8(rgb.clone()),
        ImageFormat::Tiff,
    )?;
    save(
        "rgba.webp",
        &DynamicImage::ImageRgba8(rgba),
        ImageFormat::WebP,
    )?;

    // EXIF orientation 6 (rotate 90°): an APP1 segment after SOI.
    std::fs::write(dec.join("exif6.jpg"), with_orientation(&jpeg, 6))?;
    // Issue 17's poison: SOI, then a bogus SOF0 of length 1 where the first
    // segment was; and a SOF with height 0.
    let mut poison = jpeg[..2].to_vec();
    poison.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x01]);
    poison.extend_from_slice(&jpeg[6..]);
    std::fs::write(dec.join("poison.jpg"), poison)?;
    if let Some(p) = find_sof(&jpeg) {
        let mut zero_h = jpeg.clone();
        zero_h[p + 5] = 0;
        zero_h[p + 6] = 0;
        std::fs::write(dec.join("sof_height0.jpg"), zero_h)?;
    }

    let st = out.join("safetensors");
    std::fs::create_dir_all(&st)?;
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/efficientnet_lite0/model.safetensors");
    let bytes = std::fs::read(&model)?;
    let n = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    // Header only: the target appends the zeros it declares.
    std::fs::write(st.join("efficientnet_header.json"), &bytes[8..8 + n])?;
    let tmp = std::env::temp_dir().join("lookalike_fuzz_seed.safetensors");
    let w: Vec<f32> = (0..8 * 3 * 3 * 3).map(|i| i as f32 * 0.01).collect();
    lookalike::cnn::safetensors::write_f32(&tmp, &[("conv1.weight", vec![8, 3, 3, 3], &w)])?;
    std::fs::copy(&tmp, st.join("small.safetensors"))?;
    std::fs::remove_file(&tmp)?;

    let tars = out.join("tar");
    std::fs::create_dir_all(&tars)?;
    let shard = webdataset_shard(&jpeg)?;
    std::fs::write(tars.join("webdataset.tar"), &shard)?;
    // Cut inside the second member's data, and at an entry boundary.
    std::fs::write(tars.join("cut.tar"), &shard[..shard.len() / 2])?;
    std::fs::write(tars.join("no_end_marker.tar"), &shard[..shard.len() - 1024])?;
    println!("seeds written under {}", out.display());
    Ok(())
}

/// A shard as img2dataset writes them (`key.jpg`, `key.txt`, `key.json`),
/// plus a GNU long-name member, a folder entry and a symlink named `.jpg`.
fn webdataset_shard(jpeg: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, data)
    };
    add("00000.jpg", jpeg)?;
    add("00000.txt", b"a caption")?;
    add("00000.json", br#"{"key": "00000", "status": "success"}"#)?;
    let long = format!("{}/00001.jpg", "deep".repeat(40));
    add(&long, jpeg)?;
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o755);
    b.append_data(&mut dir, "sub/", std::io::empty())?;
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    b.append_link(&mut link, "sub/link.jpg", "../00000.jpg")?;
    b.into_inner()
}

/// Writes `out/NN` for each file of the template index at `template`.
fn index_seeds(template: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let scratch = std::env::temp_dir().join(format!("lookalike-seeds-{}", std::process::id()));
    let t = lookalike::fuzzing::IndexTemplate::new(template, &scratch)?;
    std::fs::create_dir_all(out)?;
    for (i, (seed, name)) in t.seeds().iter().zip(t.names()).enumerate() {
        std::fs::write(out.join(format!("{i:02}")), seed)?;
        println!("{i:02} {}", name.display());
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// `jpeg` with an EXIF APP1 segment carrying `orientation`, right after SOI.
fn with_orientation(jpeg: &[u8], orientation: u8) -> Vec<u8> {
    // TIFF, little-endian: header, IFD with one entry (0x0112 SHORT 1).
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&[1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, orientation, 0, 0, 0]);
    tiff.extend_from_slice(&[0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let len = (app1.len() + 2) as u16;
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Offset of the first SOF0/SOF2 marker.
fn find_sof(jpeg: &[u8]) -> Option<usize> {
    jpeg.windows(2)
        .position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC2))
}

//! Agreement with the reference implementations (values in
//! tests/data/descriptors/reference*.csv, made by scripts/reference_hashes.py
//! with `pdqhash` 0.2.8 and `imagehash` 4.3.2; images from
//! scripts/make_test_images.py), and the dihedral PDQ variants against
//! hashing actually rotated/flipped images.
//!
//! Everything is asserted bit-exact because that is what the implementation
//! achieves, including the degenerate images (flat_grey.png and grad_h.png
//! have PDQ quality 0, so their PDQ bits are decided by f32 rounding noise, and
//! their pHash by coefficients that are exactly zero). A change in arithmetic
//! order shows up here first.

use image::{imageops, RgbImage};
use lookalike::descriptors::pdq::{pdq_dihedral_from_rgb, pdq_from_rgb, DIHEDRAL_NAMES};
use lookalike::descriptors::phash::phash_from_rgb;
use lookalike::descriptors::Hash256;
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/descriptors")
}

struct Row {
    file: String,
    pdq: Hash256,
    quality: u8,
    phash: u64,
}

fn reference_rows() -> Vec<Row> {
    let csv = std::fs::read_to_string(data_dir().join("reference.csv")).expect("reference.csv");
    let rows: Vec<Row> = csv
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.trim().split(',').collect();
            assert_eq!(f.len(), 4, "bad CSV line {l:?}");
            Row {
                file: f[0].to_string(),
                pdq: Hash256::from_hex(f[1]).expect("pdq hex"),
                quality: f[2].parse().expect("quality"),
                phash: u64::from_str_radix(f[3], 16).expect("phash hex"),
            }
        })
        .collect();
    assert!(
        rows.len() >= 10,
        "expected the full test set, got {} rows",
        rows.len()
    );
    rows
}

#[test]
fn matches_reference_hashes() {
    let mut failures = Vec::new();
    for r in reference_rows() {
        let img = image::open(data_dir().join(&r.file))
            .expect("decode")
            .to_rgb8();
        let p = pdq_from_rgb(&img);
        let d = p.hash.hamming(&r.pdq);
        let ph = phash_from_rgb(&img);
        let pd = (ph ^ r.phash).count_ones();
        println!(
            "{:20} pdq dist {:3}  quality {:3} vs {:3}  phash {:016x} vs {:016x} ({} bits)",
            r.file, d, p.quality, r.quality, ph, r.phash, pd
        );
        if d != 0 {
            failures.push(format!("{}: PDQ distance {d}", r.file));
        }
        if p.quality != r.quality {
            failures.push(format!(
                "{}: quality {} vs {}",
                r.file, p.quality, r.quality
            ));
        }
        if pd != 0 {
            failures.push(format!("{}: pHash distance {pd}", r.file));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The eight variants against `pdqhash.compute_dihedral` (reference_dihedral.csv).
#[test]
fn dihedral_matches_reference() {
    let csv = std::fs::read_to_string(data_dir().join("reference_dihedral.csv"))
        .expect("reference_dihedral.csv");
    let mut n = 0;
    for l in csv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = l.trim().split(',').collect();
        assert_eq!(f.len(), 10, "bad CSV line {l:?}");
        let img = image::open(data_dir().join(f[0]))
            .expect("decode")
            .to_rgb8();
        let (hashes, quality) = pdq_dihedral_from_rgb(&img);
        assert_eq!(quality, f[1].parse::<u8>().unwrap(), "{}: quality", f[0]);
        for v in 0..8 {
            let want = Hash256::from_hex(f[2 + v]).expect("hex");
            assert_eq!(
                hashes[v].hamming(&want),
                0,
                "{} {}: {} vs {}",
                f[0],
                DIHEDRAL_NAMES[v],
                hashes[v].to_hex(),
                f[2 + v]
            );
        }
        n += 1;
    }
    assert!(n >= 10, "expected the full test set, got {n} rows");
}

/// A smooth, photo-like test image (sum of oriented sinusoids), asymmetric so
/// that every dihedral variant is a different image.
fn synthetic(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
        let f = 0.5
            + 0.2 * (7.0 * u + 3.0 * v * v).sin()
            + 0.15 * (11.0 * v - 5.0 * u).cos()
            + 0.1 * (23.0 * u * v + 1.0).sin()
            + 0.05 * (u - 0.7 * v);
        let g = (f.clamp(0.0, 1.0) * 255.0) as u8;
        image::Rgb([
            g,
            (255.0 * u) as u8 / 2 + g / 2,
            g.saturating_sub((60.0 * v) as u8),
        ])
    })
}

fn transpose(img: &RgbImage) -> RgbImage {
    RgbImage::from_fn(img.height(), img.width(), |x, y| *img.get_pixel(y, x))
}

fn anti_transpose(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    RgbImage::from_fn(h, w, |x, y| *img.get_pixel(w - 1 - y, h - 1 - x))
}

/// The transformed images, in DIHEDRAL_NAMES order.
fn transformed(img: &RgbImage) -> [RgbImage; 8] {
    [
        img.clone(),
        imageops::rotate270(img), // PDQ's rot90 is counter-clockwise
        imageops::rotate180(img),
        imageops::rotate90(img),
        imageops::flip_vertical(img), // flipX: mirror about the horizontal axis
        imageops::flip_horizontal(img), // flipY: mirror about the vertical axis
        transpose(img),
        anti_transpose(img),
    ]
}

fn dihedral_distances(w: u32, h: u32) -> [u32; 8] {
    let img = synthetic(w, h);
    let (hashes, quality) = pdq_dihedral_from_rgb(&img);
    assert!(
        quality >= 50,
        "test image should be hashable, quality {quality}"
    );
    let t = transformed(&img);
    std::array::from_fn(|v| hashes[v].hamming(&pdq_from_rgb(&t[v]).hash))
}

/// Where the downsampling is mirror-symmetric (64×64: no filtering for the
/// direct hash; 320×320: odd box window 3 and decimation grid 5i+2), the
/// variants computed from the one DCT equal the hashes of the transformed
/// images up to f32 summation-order rounding.
#[test]
fn dihedral_variants_equal_transformed_hashes() {
    for (w, h) in [(64, 64), (320, 320)] {
        let d = dihedral_distances(w, h);
        println!("{w}x{h}: {:?}", d);
        for v in 0..8 {
            assert!(d[v] <= 2, "{w}x{h} {}: {} bits", DIHEDRAL_NAMES[v], d[v]);
        }
    }
    // A wrong mapping (e.g. rot90 taken clockwise) is far off, so the test can fail.
    let img = synthetic(320, 320);
    let (hashes, _) = pdq_dihedral_from_rgb(&img);
    assert!(hashes[1].hamming(&pdq_from_rgb(&imageops::rotate90(&img)).hash) > 32);
}

/// On general sizes the even-width box filter and the decimation grid are not
/// mirror-symmetric, so variants drift from direct hashes (the reference
/// behaves the same). Bounded loosely, to catch gross errors only.
#[test]
fn dihedral_variants_close_on_general_sizes() {
    for (w, h) in [(200, 150), (512, 384)] {
        let d = dihedral_distances(w, h);
        println!("{w}x{h}: {:?}", d);
        for v in 0..8 {
            assert!(d[v] <= 40, "{w}x{h} {}: {} bits", DIHEDRAL_NAMES[v], d[v]);
        }
    }
}

//! Test fixtures made on the fly: synthetic images that hash distinctly.
#![allow(dead_code)]

pub mod cnn;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{Rgb, RgbImage};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lookalike"));
    c.env_remove("LOOKALIKE_INDEX").env("NO_COLOR", "1");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run lookalike")
}

pub const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample");

/// The sample training images indexed into a fresh temp folder: (its guard, index path).
pub fn index_sample() -> (tempfile::TempDir, String) {
    let t = tempfile::tempdir().unwrap();
    let idx = t.path().join("idx").display().to_string();
    let o = run(&[
        "index",
        &format!("{SAMPLE}/training"),
        "--index",
        &idx,
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (t, idx)
}

/// A hash-only index of `n` synthetic images in a fresh temp folder:
/// (guard, training folder, index path).
pub fn small_index(n: usize) -> (tempfile::TempDir, PathBuf, String) {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("train");
    make_corpus(&data, n, 0);
    let idx = t.path().join("idx").display().to_string();
    let o = run(&[
        "index",
        data.to_str().unwrap(),
        "-i",
        &idx,
        "-q",
        "--hash-only",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (t, data, idx)
}

/// `index DATA --index INDEX --json -q` plus `extra`, which must succeed:
/// its JSON summary.
pub fn index_json_with(data: &Path, index: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "index",
        data.to_str().unwrap(),
        "--index",
        index.to_str().unwrap(),
        "--json",
        "-q",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "index failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("index --json is JSON")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A deterministic "photo-like" image: smooth colour fields, blobs and lines
/// placed by a seeded generator, so every seed gives a different PDQ hash.
// 6.28 rather than TAU: the fixtures (and tests tuned on them) depend on these exact images.
#[allow(clippy::approx_constant)]
pub fn synthetic(seed: u64, w: u32, h: u32) -> RgbImage {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let blobs: Vec<(f64, f64, f64, [f64; 3])> = (0..12)
        .map(|_| {
            (
                rnd(),
                rnd(),
                0.05 + 0.25 * rnd(),
                [rnd() * 255.0, rnd() * 255.0, rnd() * 255.0],
            )
        })
        .collect();
    let (fx, fy, ph) = (1.0 + 6.0 * rnd(), 1.0 + 6.0 * rnd(), 6.28 * rnd());
    RgbImage::from_fn(w, h, |x, y| {
        let (u, v) = (x as f64 / w as f64, y as f64 / h as f64);
        let base = 127.0 + 60.0 * ((fx * u * 6.28 + ph).sin() * (fy * v * 6.28).cos());
        let mut c = [base, 255.0 - base, base * 0.5 + 40.0];
        for (bx, by, r, col) in &blobs {
            let d2 = (u - bx).powi(2) + (v - by).powi(2);
            let wgt = (-d2 / (r * r)).exp();
            for k in 0..3 {
                c[k] = c[k] * (1.0 - wgt) + col[k] * wgt;
            }
        }
        Rgb([
            c[0].clamp(0.0, 255.0) as u8,
            c[1].clamp(0.0, 255.0) as u8,
            c[2].clamp(0.0, 255.0) as u8,
        ])
    })
}

pub fn save_jpeg(img: &RgbImage, path: &Path, quality: u8) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc =
        image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(f), quality);
    enc.encode_image(img).unwrap();
}

/// Writes `n` distinct JPEG images named img_000.jpg... into `dir`.
pub fn make_corpus(dir: &Path, n: usize, first_seed: u64) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let p = dir.join(format!("img_{:03}.jpg", i as u64 + first_seed));
            save_jpeg(
                &synthetic(
                    i as u64 + first_seed,
                    200 + (i as u32 % 5) * 40,
                    180 + (i as u32 % 3) * 50,
                ),
                &p,
                90,
            );
            p
        })
        .collect()
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A tiny PNG whose header claims `w`×`h` pixels: a decompression bomb as far
/// as any decoder that trusts the header is concerned.
pub fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
    out.extend_from_slice(&((idat.len() - 4) as u32).to_be_bytes());
    out.extend_from_slice(idat);
    out.extend_from_slice(&crc32(idat).to_be_bytes());
    out
}

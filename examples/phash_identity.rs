//! Dumps pHashes (and checksums of the 32×32 resample and of the 8×8 DCT
//! bits) so that a change to `descriptors::phash` can be proved bit-identical:
//! run before and after, `diff` the outputs.
//! `cargo run --release --example phash_identity -- DIR...` (images decoded
//! Fast/128, Fast/512 and Exact, then ~50 synthetic images), or
//! `... -- --time DIR [SIDE]`: single-threaded pHash time per image (best of 5)
//! on the Fast/SIDE (default 128) decodes.
use image::RgbImage;
use lookalike::descriptors::phash::{dct8_from_32, phash_from_rgb, pil_lanczos_32, pil_luma};
use lookalike::ingest::{decode::decode, DecodeMode, Limits};
use std::hint::black_box;
use xxhash_rust::xxh3::xxh3_64;

#[path = "common/mod.rs"]
mod common;
use common::{best, files_in};

/// `phash resample-checksum dct-checksum`: the two checksums catch changes
/// in the intermediates that happen not to flip a hash bit.
fn line(img: &RgbImage) -> String {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let gray: Vec<u8> = img.pixels().map(|p| pil_luma(p[0], p[1], p[2])).collect();
    let px = pil_lanczos_32(&gray, w, h);
    let dct: Vec<u8> = dct8_from_32(&px)
        .iter()
        .flat_map(|v| v.to_bits().to_le_bytes())
        .collect();
    format!(
        "{:016x} {:016x} {:016x}",
        phash_from_rgb(img),
        xxh3_64(&px),
        xxh3_64(&dct)
    )
}

fn synthetic() -> Vec<(String, RgbImage)> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let sizes = [
        (1, 1),
        (2, 3),
        (3, 2),
        (7, 7),
        (31, 33),
        (32, 32),
        (32, 100),
        (100, 32),
        (33, 1000),
        (1000, 7),
        (64, 64),
        (190, 190),
        (191, 127),
        (500, 500),
    ];
    let mut out = Vec::new();
    for &(w, h) in &sizes {
        let mut add = |name: &str, f: &mut dyn FnMut(u32, u32) -> [u8; 3]| {
            let img = RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
            out.push((format!("{name}_{w}x{h}"), img));
        };
        add("flat", &mut |_, _| [97, 143, 12]);
        add("checker", &mut |x, y| {
            if (x + y) % 2 == 0 {
                [255, 255, 255]
            } else {
                [0, 0, 0]
            }
        });
        add("grad_h", &mut |x, _| {
            let v = (x * 255 / w.max(2).saturating_sub(1)) as u8;
            [v, v / 2, 255 - v]
        });
        add("grad_v", &mut |_, y| {
            let v = (y * 255 / h.max(2).saturating_sub(1)) as u8;
            [v, v, v]
        });
        add("noise", &mut |_, _| {
            let r = rnd();
            [r as u8, (r >> 8) as u8, (r >> 16) as u8]
        });
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--time") {
        let dir = args.get(1).expect("DIR");
        let side = args.get(2).map_or(128, |s| s.parse().expect("SIDE"));
        let lim = Limits {
            fast_min_side: side,
            ..Limits::default()
        };
        let imgs: Vec<RgbImage> = files_in(dir)
            .iter()
            .filter_map(|p| decode(&std::fs::read(p).ok()?, DecodeMode::Fast, &lim).ok())
            .map(|d| d.rgb)
            .collect();
        let px: usize = imgs.iter().map(|i| i.len() / 3).sum();
        let n = imgs.len() as f64;
        for _ in 0..3 {
            let t = best(|| {
                imgs.iter().for_each(|i| {
                    black_box(phash_from_rgb(i));
                })
            });
            println!(
                "{} images, mean {:.0} px: pHash {:.4} ms/image",
                imgs.len(),
                px as f64 / n,
                t / n * 1e3
            );
        }
        return;
    }
    for dir in &args {
        for p in files_in(dir) {
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            for (mode, side) in [
                (DecodeMode::Fast, 128),
                (DecodeMode::Fast, 512),
                (DecodeMode::Exact, 0),
            ] {
                let lim = Limits {
                    fast_min_side: side.max(1),
                    ..Limits::default()
                };
                match decode(&bytes, mode, &lim) {
                    Ok(d) => println!(
                        "{} {mode:?} {side} {}x{} {}",
                        p.display(),
                        d.rgb.width(),
                        d.rgb.height(),
                        line(&d.rgb)
                    ),
                    Err(e) => println!("{} {mode:?} {side} error {e}", p.display()),
                }
            }
        }
    }
    for (name, img) in synthetic() {
        println!("synthetic {name} {}", line(&img));
    }
}

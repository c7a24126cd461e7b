//! Dumps every keypoint `extract_from_luma` finds on the corpus (and on
//! synthetic planes of awkward sizes) and times it, so a faster version can
//! be checked to give bit-identical output: run before and after a change and
//! diff the dumps.
//! `cargo run --release --example keypoints_identity -- DUMP_FILE DIR...`
use lookalike::descriptors::{keypoints, pdq};
use lookalike::ingest::{decode::decode, DecodeMode, Limits};
use std::fmt::Write as _;
use std::hint::black_box;

#[path = "common/mod.rs"]
mod common;
use common::{best, files_in};

fn dump(out: &mut String, name: &str, luma: &[f32], w: usize, h: usize) {
    for max in [keypoints::INDEX_KEYPOINTS, keypoints::QUERY_KEYPOINTS] {
        // The reference panics on some degenerate shapes: record that too.
        let Ok(k) = std::panic::catch_unwind(|| keypoints::extract_from_luma(luma, w, h, max))
        else {
            writeln!(out, "{name} {w}x{h} max={max} PANIC").unwrap();
            continue;
        };
        writeln!(out, "{name} {w}x{h} max={max} n={}", k.len()).unwrap();
        for p in &k {
            for d in p.desc {
                write!(out, "{d:08x}").unwrap();
            }
            writeln!(out, " {} {}", p.x, p.y).unwrap();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dump_path = args.next().expect("DUMP_FILE DIR...");
    let mut out = String::new();
    let lim = Limits::default();
    for dir in args {
        let files = files_in(&dir);
        let mut imgs = Vec::new();
        for f in &files {
            let Ok(d) = decode(&std::fs::read(f).unwrap(), DecodeMode::Fast, &lim) else {
                continue;
            };
            let (w, h) = (d.rgb.width() as usize, d.rgb.height() as usize);
            imgs.push((
                f.file_name().unwrap().to_string_lossy().into_owned(),
                pdq::luma_from_rgb(&d.rgb),
                w,
                h,
            ));
        }
        for (name, l, w, h) in &imgs {
            dump(&mut out, name, l, *w, *h);
        }
        for max in [keypoints::INDEX_KEYPOINTS, keypoints::QUERY_KEYPOINTS] {
            let t = best(|| {
                for (_, l, w, h) in &imgs {
                    black_box(keypoints::extract_from_luma(l, *w, *h, max));
                }
            });
            println!(
                "{dir}: {} images, max={max}: {:.3} ms per image",
                imgs.len(),
                t / imgs.len() as f64 * 1e3
            );
        }
        // Crops of the first images at awkward sizes: odd, tiny, at the
        // margin limits, upscale-free small planes, tall and wide.
        for (name, l, w, h) in imgs.iter().take(4) {
            for &(cw, ch) in &[
                (29, 29),
                (30, 31),
                (31, 200),
                (200, 31),
                (41, 43),
                (42, 60),
                (57, 57),
                (58, 83),
                (83, 58),
                (100, 100),
                (127, 255),
                (255, 127),
                (383, 384),
                (384, 383),
                (385, 290),
                (389, 391),
                (401, 17),
                (17, 401),
                (523, 389),
                (1, 1),
                (0, 0),
            ] {
                if cw > *w || ch > *h {
                    continue;
                }
                let crop: Vec<f32> = (0..ch)
                    .flat_map(|y| l[y * w..y * w + cw].iter().copied())
                    .collect();
                dump(&mut out, &format!("crop-{name}"), &crop, cw, ch);
            }
        }
    }
    // Synthetic noise and gradients (xorshift, fixed seed).
    let mut s = 0x1234_5678u32;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    };
    for &(w, h) in &[
        (29, 29),
        (30, 45),
        (64, 64),
        (97, 61),
        (300, 300),
        (777, 333),
        (1000, 1500),
        (2000, 100),
    ] {
        let noise: Vec<f32> = (0..w * h).map(|_| (rnd() % 25600) as f32 / 100.0).collect();
        dump(&mut out, "noise", &noise, w, h);
        let blocks: Vec<f32> = (0..w * h)
            .map(|i| {
                if ((i % w) / 7 + (i / w) / 5) % 3 == 0 {
                    200.0
                } else {
                    20.5
                }
            })
            .collect();
        dump(&mut out, "blocks", &blocks, w, h);
    }
    std::fs::write(&dump_path, out).unwrap();
}

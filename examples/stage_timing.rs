//! Times each indexing stage on a folder (single thread, best of 5): decode,
//! luma, PDQ, pHash, trim box, keypoints, and the whole `describe`.
//! `cargo run --release --example stage_timing -- DIR [THUMB_SIDE]` (the fast
//! decode's smallest short side, as `--thumb-side`; default 512)
use lookalike::descriptors::{self, keypoints, pdq, phash, trim};
use lookalike::ingest::{decode::decode, DecodeMode, Limits};
use std::hint::black_box;

#[path = "common/mod.rs"]
mod common;
use common::{best, files_in};

fn main() {
    let dir = std::env::args().nth(1).expect("DIR");
    let side: u32 = std::env::args()
        .nth(2)
        .map_or(512, |s| s.parse().expect("THUMB_SIDE"));
    let files = files_in(&dir);
    let data: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    for mode in [DecodeMode::Fast, DecodeMode::Exact] {
        let lim = Limits {
            fast_min_side: side,
            ..Limits::default()
        };
        let td = best(|| {
            for d in &data {
                let _ = black_box(decode(d, mode, &lim));
            }
        });
        let imgs: Vec<_> = data
            .iter()
            .filter_map(|d| decode(d, mode, &lim).ok())
            .collect();
        let lumas: Vec<Vec<f32>> = imgs.iter().map(|i| pdq::luma_from_rgb(&i.rgb)).collect();
        let dims =
            |i: &lookalike::ingest::Decoded| (i.rgb.width() as usize, i.rgb.height() as usize);
        let tl = best(|| {
            imgs.iter()
                .for_each(|i| drop(black_box(pdq::luma_from_rgb(&i.rgb))))
        });
        let tp = best(|| {
            for (i, l) in imgs.iter().zip(&lumas) {
                let (w, h) = dims(i);
                black_box(pdq::pdq_from_luma(l, w, h));
            }
        });
        let th = best(|| {
            imgs.iter().for_each(|i| {
                black_box(phash::phash_from_rgb(&i.rgb));
            })
        });
        let tt = best(|| {
            imgs.iter().for_each(|i| {
                black_box(trim::content_box(&i.rgb));
            })
        });
        let tk = best(|| {
            for (i, l) in imgs.iter().zip(&lumas) {
                let (w, h) = dims(i);
                black_box(keypoints::extract_from_luma(
                    l,
                    w,
                    h,
                    keypoints::INDEX_KEYPOINTS,
                ));
            }
        });
        let tall = best(|| {
            imgs.iter().for_each(|i| {
                black_box(descriptors::describe(&i.rgb));
            })
        });
        let px: usize = imgs.iter().map(|i| i.rgb.len() / 3).sum();
        let n = imgs.len() as f64;
        let ms = |t: f64| t / n * 1e3;
        println!(
            "{mode:?}: {} images, mean {:.0} px; per image: decode {:.2} ms, luma {:.2} ms, PDQ (from luma) {:.2} ms, pHash {:.2} ms, trim box {:.2} ms, keypoints (from luma) {:.2} ms; describe (all) {:.2} ms",
            imgs.len(),
            px as f64 / n,
            ms(td),
            ms(tl),
            ms(tp),
            ms(th),
            ms(tt),
            ms(tk),
            ms(tall)
        );
    }
}

//! Times each indexing stage on a folder (single thread): decode, luma, PDQ,
//! trimmed-view PDQ, pHash, keypoints, and the whole `describe`.
//! `cargo run --release --example stage_timing -- DIR`
use lookalike::ingest::{decode::decode, DecodeMode, Limits};
use std::io::Write;
use std::time::Instant;
fn main() {
    let dir = std::env::args().nth(1).expect("DIR");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let data: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    for mode in [DecodeMode::Fast, DecodeMode::Exact] {
        let t = Instant::now();
        let imgs: Vec<_> = data
            .iter()
            .filter_map(|d| decode(d, mode, &Limits::default()).ok())
            .collect();
        let td = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in &imgs {
            std::hint::black_box(lookalike::descriptors::pdq::pdq_from_rgb(&i.rgb));
        }
        let tp = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in &imgs {
            std::hint::black_box(lookalike::descriptors::phash::phash_from_rgb(&i.rgb));
        }
        let th = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let lumas: Vec<Vec<f32>> = imgs
            .iter()
            .map(|i| lookalike::descriptors::pdq::luma_from_rgb(&i.rgb))
            .collect();
        let tl = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in &imgs {
            std::hint::black_box(lookalike::descriptors::trim::content_box(&i.rgb));
        }
        let tt = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for (i, l) in imgs.iter().zip(&lumas) {
            std::hint::black_box(lookalike::descriptors::keypoints::extract_from_luma(
                l,
                i.rgb.width() as usize,
                i.rgb.height() as usize,
                lookalike::descriptors::keypoints::INDEX_KEYPOINTS,
            ));
        }
        let tk = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in &imgs {
            std::hint::black_box(lookalike::descriptors::describe(&i.rgb));
        }
        let tall = t.elapsed().as_secs_f64();
        let px: usize = imgs.iter().map(|i| i.rgb.len() / 3).sum();
        let n = imgs.len() as f64;
        let _ = writeln!(std::io::stdout(), "{mode:?}: {} images, mean {:.0} px; per image: decode {:.2} ms, PDQ {:.2} ms, pHash {:.2} ms, luma {:.2} ms, trim box {:.2} ms, keypoints {:.2} ms; describe (all) {:.2} ms", imgs.len(), px as f64 / n, td / n * 1e3, tp / n * 1e3, th / n * 1e3, tl / n * 1e3, tt / n * 1e3, tk / n * 1e3, tall / n * 1e3);
    }
}

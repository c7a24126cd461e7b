//! Times each indexing stage on a folder (single thread): read, decode, PDQ, pHash.
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
        let px: usize = imgs.iter().map(|i| i.rgb.len() / 3).sum();
        let n = imgs.len() as f64;
        let _ = writeln!(std::io::stdout(), "{mode:?}: {} images, mean {:.0} px; per image: decode {:.2} ms, PDQ {:.2} ms, pHash {:.2} ms", imgs.len(), px as f64 / n, td / n * 1e3, tp / n * 1e3, th / n * 1e3);
    }
}

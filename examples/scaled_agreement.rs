//! How far PDQ and pHash of a DCT-domain scaled decode drift from the
//! full-resolution (exact) hashes, per scale, with and without the scaled
//! filter emulation (`pdq::scaled`).
//! `cargo run --release --example scaled_agreement -- DIR`
use lookalike::descriptors::{pdq, phash};
use lookalike::ingest::{decode::decode, DecodeMode, Limits};

#[path = "common/mod.rs"]
mod common;

fn main() {
    let dir = std::env::args().nth(1).expect("DIR");
    let files = common::files_in(&dir);
    for denom in [2u32, 4, 8] {
        let (mut plain, mut emul, mut ph) = (vec![], vec![], vec![]);
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let Ok(exact) = decode(&data, DecodeMode::Exact, &Limits::default()) else {
                continue;
            };
            let short = exact.width.min(exact.height);
            let lim = Limits {
                fast_min_side: (short / denom).max(1),
                ..Limits::default()
            };
            let small = decode(&data, DecodeMode::Fast, &lim).unwrap();
            let reference = pdq::pdq_from_rgb(&exact.rgb).hash;
            let (w, h) = (small.rgb.width() as usize, small.rgb.height() as usize);
            let luma = pdq::luma_from_rgb(&small.rgb);
            plain.push(pdq::pdq_from_luma(&luma, w, h).hash.hamming(&reference));
            let e =
                pdq::pdq_from_scaled_luma(&luma, w, h, small.width as usize, small.height as usize);
            emul.push(e.hash.hamming(&reference));
            ph.push(
                (phash::phash_from_rgb(&small.rgb) ^ phash::phash_from_rgb(&exact.rgb))
                    .count_ones(),
            );
        }
        let summary = |v: &mut Vec<u32>| {
            v.sort();
            let n = v.len();
            let within8 = v.iter().filter(|&&d| d <= 8).count() as f64 / n as f64 * 100.0;
            let mean = v.iter().sum::<u32>() as f64 / n as f64;
            format!(
                "within 8 bits {within8:5.1} %, mean {mean:5.2}, p99 {}, max {}",
                v[(n * 99 / 100).min(n - 1)],
                v[n - 1]
            )
        };
        println!("1/{denom}: {} images", plain.len());
        println!("  PDQ plain filter  {}", summary(&mut plain));
        println!("  PDQ emulated      {}", summary(&mut emul));
        let exact_ph = ph.iter().filter(|&&d| d == 0).count();
        println!(
            "  pHash             identical {exact_ph}, {}",
            summary(&mut ph)
        );
    }
}

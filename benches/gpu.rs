//! GPU engine vs CPU engine: descriptor throughput on pre-decoded thumbnails
//! and Hamming comparisons per second. `cargo bench --bench gpu` (plain main).
//! Env: BENCH_IMAGES (default 64), BENCH_DB (default 200000), BENCH_QUERIES (default 64).
//! A comparison = one 256-bit query variant against one db hash (8 per query × row).

use std::time::Instant;

use lookalike::descriptors::{describe_query, Hash256};
use lookalike::gpu::{DeviceChoice, GpuEngine};
use lookalike::search::hamming::column_topk;
use rayon::prelude::*;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn thumb(seed: u32, w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = (x * 7 + y * 13 + seed * 31) ^ (x * y / 97 + seed);
        image::Rgb([
            (v & 255) as u8,
            ((v >> 3) & 255) as u8,
            ((x + y + seed) & 255) as u8,
        ])
    })
}

fn main() {
    let n_img = env("BENCH_IMAGES", 64);
    let n_db = env("BENCH_DB", 200_000);
    let n_q = env("BENCH_QUERIES", 64);
    let e = match GpuEngine::new(DeviceChoice::Gpu) {
        Ok(Some(e)) => e,
        Ok(None) => unreachable!(),
        Err(err) => {
            eprintln!("no wgpu adapter: {err:#}");
            std::process::exit(1);
        }
    };
    println!("adapter: {}", e.describe());
    println!("cpu threads: {}", rayon::current_num_threads());
    let imgs: Vec<_> = (0..n_img as u32).map(|i| thumb(i, 512, 384)).collect();

    let _ = e.describe_batch(&imgs[..2.min(n_img)]).unwrap(); // warm-up (pipeline compile)
    let t = Instant::now();
    let g = e.describe_batch(&imgs).expect("GPU describe");
    let gpu_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let c: Vec<_> = imgs.par_iter().map(describe_query).collect();
    let cpu_s = t.elapsed().as_secs_f64();
    let same = g.iter().zip(&c).filter(|(a, b)| a == b).count();
    println!("describe 512x384 ({n_img} images, 8 PDQ variants + quality + pHash):");
    println!("  gpu engine: {:8.1} images/s", n_img as f64 / gpu_s);
    println!(
        "  cpu engine: {:8.1} images/s (rayon)",
        n_img as f64 / cpu_s
    );
    println!("  identical:  {same}/{n_img}");

    let mut s = 0x2545F4914F6CDD1Du64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let db: Vec<Hash256> = (0..n_db)
        .map(|_| Hash256 {
            words: std::array::from_fn(|_| rnd()),
        })
        .collect();
    let live = vec![true; n_db];
    let qs: Vec<[Hash256; 8]> = (0..n_q)
        .map(|_| {
            std::array::from_fn(|_| Hash256 {
                words: std::array::from_fn(|_| rnd()),
            })
        })
        .collect();
    let _ = e.hamming_topk(&db[..1000.min(n_db)], &live[..1000.min(n_db)], &qs[..1], 10);
    let cmp = (n_db * n_q * 8) as f64;
    let t = Instant::now();
    let g = e
        .hamming_topk(&db, &live, &qs, 10)
        .expect("10 <= KMAX on a working device");
    let gpu_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let c = column_topk(&db, &live, &qs, 10);
    let cpu_s = t.elapsed().as_secs_f64();
    println!("hamming top-10 ({n_q} queries x 8 variants x {n_db} rows):");
    println!(
        "  gpu kernel: {:8.3e} comparisons/s ({:.3} s)",
        cmp / gpu_s,
        gpu_s
    );
    println!(
        "  cpu scan:   {:8.3e} comparisons/s ({:.3} s)",
        cmp / cpu_s,
        cpu_s
    );
    println!("  identical:  {}", g == c);
}

//! Times each stage of checking one image, as `lookalike serve` does per
//! request (single image, best of 5, per image): decode, the query hashes
//! (luma, 8 PDQ orientations, the trimmed view, pHash), query keypoints, and
//! the whole check with and without verification.
//! `cargo run --release --example query_timing -- INDEX DIR [MAX_IMAGES]`
use lookalike::descriptors::{self, keypoints, pdq, phash, trim, Extras};
use lookalike::index::Index;
use lookalike::ingest::decode::decode;
use lookalike::pipeline::check::{check_decoded, CheckOptions};
use std::hint::black_box;

#[path = "common/mod.rs"]
mod common;
use common::{best, files_in};

fn main() {
    let mut args = std::env::args().skip(1);
    let index = Index::open(args.next().expect("INDEX").as_ref()).expect("index");
    let dir = args.next().expect("DIR");
    let max: usize = args.next().map_or(20, |s| s.parse().expect("MAX_IMAGES"));
    let mut opts = CheckOptions::for_index(&index);
    opts.embed = false; // hash-only
    let files: Vec<_> = files_in(&dir).into_iter().take(max).collect();
    let data: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let td = best(|| {
        for d in &data {
            let _ = black_box(decode(d, opts.mode, &opts.limits));
        }
    });
    let imgs: Vec<image::RgbImage> = data
        .iter()
        .filter_map(|d| decode(d, opts.mode, &opts.limits).ok().map(|d| d.rgb))
        .collect();
    let lumas: Vec<Vec<f32>> = imgs.iter().map(pdq::luma_from_rgb).collect();
    let dims = |i: &image::RgbImage| (i.width() as usize, i.height() as usize);
    let each = |f: &dyn Fn(&image::RgbImage, &[f32])| {
        best(|| {
            for (i, l) in imgs.iter().zip(&lumas) {
                f(i, l)
            }
        })
    };
    let t_luma = each(&|i, _| drop(black_box(pdq::luma_from_rgb(i))));
    let t_pdq8 = each(&|i, l| {
        let (w, h) = dims(i);
        black_box(pdq::pdq_dihedral_from_luma(l, w, h));
    });
    let t_pdq1 = each(&|i, l| {
        let (w, h) = dims(i);
        black_box(pdq::pdq_from_luma(l, w, h));
    });
    let t_trim = each(&|i, _| {
        black_box(trim::content_box(i));
    });
    let t_phash = each(&|i, _| {
        black_box(phash::phash_from_rgb(i));
    });
    let kp = |max: usize| {
        each(&|i, l| {
            let (w, h) = dims(i);
            black_box(keypoints::extract_from_luma(l, w, h, max));
        })
    };
    let (t_kq, t_ki) = (
        kp(keypoints::QUERY_KEYPOINTS),
        kp(keypoints::INDEX_KEYPOINTS),
    );
    let describe =
        |extras: Extras| each(&|i, _| drop(black_box(descriptors::describe_query_with(i, extras))));
    let t_hashes = describe(Extras {
        embedding: false,
        keypoints: false,
        regions: false,
    });
    let t_desc = describe(Extras::HASHES_AND_KEYPOINTS);
    let check = |verify: bool| {
        let mut o = opts.clone();
        o.verify = verify;
        each(&|i, _| {
            let one = [("q".to_string(), 0u128, i.clone())];
            black_box(check_decoded(&index, &one, &o).unwrap());
        })
    };
    let (t_check, t_noverify) = (check(true), check(false));
    let n = imgs.len() as f64;
    let px: usize = imgs.iter().map(|i| i.len() / 3).sum();
    let ms = |t: f64| format!("{:.2}", t / n * 1e3);
    println!(
        "{} images (mean {:.0} px), index {} records; ms per image:",
        imgs.len(),
        px as f64 / n,
        index.live_count()
    );
    println!("  decode {}", ms(td));
    println!(
        "  luma {}, PDQ x8 {} (x1 {}), trim box {}, pHash {}; describe hashes only {}",
        ms(t_luma),
        ms(t_pdq8),
        ms(t_pdq1),
        ms(t_trim),
        ms(t_phash),
        ms(t_hashes)
    );
    println!(
        "  keypoints (from luma) query {} / index {}; describe with keypoints {}",
        ms(t_kq),
        ms(t_ki),
        ms(t_desc)
    );
    println!(
        "  check_decoded: verify {}, no verify {}",
        ms(t_check),
        ms(t_noverify)
    );
}

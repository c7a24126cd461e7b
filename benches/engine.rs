//! End-to-end figures for the CPU engine (plain `main`, no harness):
//!
//! 1. indexing throughput (images/s) on a folder of JPEGs — by default a
//!    generated folder of 600 photo-sized images; set LOOKALIKE_BENCH_DIR to
//!    measure a real corpus (e.g. ../shared/corpus/db), and
//!    LOOKALIKE_BENCH_COPIES=K to index K distinct-byte copies of it (a
//!    steadier figure than a few hundred images give); best of 2 runs;
//! 2. single-query latency after decode on a synthetic index of
//!    LOOKALIKE_BENCH_N random PDQ hashes (default 1 000 000), top-10 over all
//!    8 orientations, and batch throughput (queries/s);
//! 3. `check` of the folder against its own index with and without the
//!    verification stage (keypoints + RANSAC): images/s, decode included.
//!
//! Run: `cargo bench --bench engine` (see benches/README.md);
//! `LOOKALIKE_BENCH_ONLY=query` runs part 2 only, `=index` parts 1 and 3.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lookalike::descriptors::{Descriptors, Extras, Hash256, QueryDescriptors};
use lookalike::index::{Index, IndexWriter};
use lookalike::ingest::{DecodeMode, Limits};
use lookalike::pipeline::{build, BuildOptions};
use lookalike::search::hamming::Kernel;
use lookalike::search::{search, SearchParams};
use rayon::prelude::*;

/// `LOOKALIKE_HAMMING_KERNEL` (generic | avx2 | avx512) picks the CPU scan's
/// copy to time; default the fastest this CPU has.
fn hamming_kernel() -> Kernel {
    let name = std::env::var("LOOKALIKE_HAMMING_KERNEL").unwrap_or_default();
    Kernel::from_name(&name).unwrap_or_default()
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn gen_corpus(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    (0..n).into_par_iter().for_each(|i| {
        let mut s = i as u64 * 7919 + 1;
        let (w, h) = (1024u32, 768u32);
        let c: Vec<f32> = (0..9)
            .map(|_| (xorshift(&mut s) % 1000) as f32 / 1000.0)
            .collect();
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
            let f = |k: usize| {
                (127.0
                    + 120.0
                        * ((c[k] * 20.0 * u + c[k + 1] * 17.0 * v).sin()
                            * (c[k + 2] * 9.0 * u * v).cos())) as u8
            };
            image::Rgb([f(0), f(3), f(6)])
        });
        let f = std::fs::File::create(dir.join(format!("{i:05}.jpg"))).unwrap();
        image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(f), 85)
            .encode_image(&img)
            .unwrap();
    });
}

/// Writes `k` copies of every JPEG in `src` into `dst`, copy `i` with `i`
/// extra bytes after the end-of-image marker: decoders ignore them, content
/// hashes differ, so each copy is decoded and described (no duplicates).
fn copy_jpegs(src: &Path, dst: &Path, k: usize) -> usize {
    std::fs::create_dir_all(dst).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if !p.extension().is_some_and(|x| x.eq_ignore_ascii_case("jpg")) {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        for i in 0..k {
            let mut b = bytes.clone();
            b.extend(std::iter::repeat_n(0u8, i));
            let name = format!("{}_{i}.jpg", p.file_stem().unwrap().to_string_lossy());
            std::fs::write(dst.join(name), b).unwrap();
            n += 1;
        }
    }
    n
}

fn bench_indexing(dir: &Path, tmp: &Path) {
    let setups = [
        ("fast, short side >= 512", DecodeMode::Fast, 512, true),
        ("fast, short side >= 128", DecodeMode::Fast, 128, true),
        ("fast 128, no keypoints", DecodeMode::Fast, 128, false),
        ("exact (full decode)", DecodeMode::Exact, 512, true),
    ];
    for (label, mode, side, keypoints) in setups {
        let idx = tmp.join(format!("idx-{mode:?}-{side}-{keypoints}"));
        let opts = BuildOptions {
            mode,
            limits: Limits {
                fast_min_side: side,
                ..Limits::default()
            },
            prune: false,
            extras: Extras {
                embedding: false,
                keypoints,
                regions: false,
            },
            ..BuildOptions::new()
        };
        // Best of 2 fresh builds: the first also warms the file cache.
        let (s, secs) = (0..2)
            .map(|_| {
                let _ = std::fs::remove_dir_all(&idx);
                let mut w = IndexWriter::open(&idx).unwrap();
                let t = Instant::now();
                let s = build(&mut w, dir, &opts, &indicatif::ProgressBar::hidden()).unwrap();
                (s, t.elapsed().as_secs_f64())
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        println!(
            "index {label:<26} {:>6} images in {:>6.2} s = {:>7.0} images/s  ({} threads)",
            s.described,
            secs,
            s.described as f64 / secs,
            rayon::current_num_threads()
        );
    }
}

/// `check` of the indexed folder against its own (fast, 512) index: PDQ
/// only, verified without and with region search (the default).
fn bench_check(dir: &Path, idx_dir: &Path) {
    use lookalike::pipeline::check::{check, collect_queries, CheckOptions};
    let idx = Index::open(idx_dir).unwrap();
    for (verify, regions) in [(false, false), (true, false), (true, true)] {
        let (files, skipped) = collect_queries(dir);
        let n = files.len();
        let opts = CheckOptions {
            verify,
            regions,
            kernel: hamming_kernel(),
            ..CheckOptions::new(DecodeMode::Fast, Limits::default())
        };
        let t = Instant::now();
        let r = check(
            &idx,
            files,
            skipped,
            &opts,
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "check {n} images against {} ({}): {:.2} s = {:.0} images/s, {} matched",
            idx.live_count(),
            match (verify, regions) {
                (false, _) => "PDQ only, --no-verify --no-regions",
                (true, false) => "with verification, --no-regions",
                (true, true) => "with verification and regions",
            },
            secs,
            n as f64 / secs,
            r.matched
        );
    }
}

/// Per-query search times in ms, sorted.
fn latencies(idx: &Index, qs: &[QueryDescriptors], p: &SearchParams) -> Vec<f64> {
    let mut lat: Vec<f64> = qs
        .iter()
        .map(|q| {
            let t = Instant::now();
            std::hint::black_box(search(idx, q, p));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    lat
}

fn bench_query(tmp: &Path, n: usize) {
    let idx_dir = tmp.join("synthetic-index");
    let _ = std::fs::remove_dir_all(&idx_dir);
    let mut w = IndexWriter::open(&idx_dir).unwrap();
    w.flush_records = usize::MAX;
    let mut s = 42u64;
    for i in 0..n {
        let pdq = Hash256 {
            words: [
                xorshift(&mut s),
                xorshift(&mut s),
                xorshift(&mut s),
                xorshift(&mut s),
            ],
        };
        // Half the corpus has a trimmed view that differs (margins, captions).
        let pdq_trim = if i % 2 == 0 {
            pdq
        } else {
            Hash256 {
                words: [
                    xorshift(&mut s),
                    xorshift(&mut s),
                    xorshift(&mut s),
                    xorshift(&mut s),
                ],
            }
        };
        let d = Descriptors {
            pdq,
            quality: 100,
            phash: xorshift(&mut s),
            pdq_trim,
            keypoints: Default::default(),
            embedding: Default::default(),
        };
        w.add(
            format!("/synthetic/{i:09}.jpg").as_bytes(),
            1,
            1,
            i as u128,
            0,
            &d,
        );
    }
    w.commit().unwrap();
    drop(w);
    let t = Instant::now();
    let idx = Index::open(&idx_dir).unwrap();
    println!(
        "open + validate {n} records: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let queries: Vec<QueryDescriptors> = (0..64)
        .map(|_| QueryDescriptors {
            pdq: std::array::from_fn(|_| Hash256 {
                words: [
                    xorshift(&mut s),
                    xorshift(&mut s),
                    xorshift(&mut s),
                    xorshift(&mut s),
                ],
            }),
            quality: 100,
            phash: 0,
            pdq_trim: None,
            keypoints: vec![],
            embedding: None,
            regions: vec![],
        })
        .collect();
    let p = SearchParams {
        top_k: 10,
        max_distance: 256,
        parallel: true,
        kernel: hamming_kernel(),
        // This bench measures the scan (benches/scale.rs the PDQ table).
        pdq_index: false,
        pdq_table_min_rows: usize::MAX,
    };
    // A query whose own trimmed view differs compares 16 hashes instead of 8.
    let trimmed_q: Vec<QueryDescriptors> = queries
        .iter()
        .map(|q| QueryDescriptors {
            pdq_trim: Some(std::array::from_fn(|_| Hash256 {
                words: [
                    xorshift(&mut s),
                    xorshift(&mut s),
                    xorshift(&mut s),
                    xorshift(&mut s),
                ],
            })),
            ..q.clone()
        })
        .collect();
    println!(
        "hamming kernel: {} (LOOKALIKE_HAMMING_KERNEL picks another)",
        p.kernel.resolve().name()
    );
    let _ = search(&idx, &queries[0], &p); // warm the page cache
    let lat = latencies(&idx, &queries, &p);
    let lat_t = latencies(&idx, &trimmed_q, &p);
    println!(
        "query top-10, 8 orientations, {n} entries: median {:.2} ms, p95 {:.2} ms  ({:.2e} 256-bit comparisons/s)",
        lat[lat.len() / 2],
        lat[lat.len() * 95 / 100],
        8.0 * n as f64 / (lat[lat.len() / 2] / 1e3)
    );
    println!(
        "query with a trimmed view too (16 query hashes): median {:.2} ms",
        lat_t[lat_t.len() / 2]
    );
    let serial = SearchParams {
        parallel: false,
        ..p
    };
    let t = Instant::now();
    queries.par_iter().for_each(|q| {
        std::hint::black_box(search(&idx, q, &serial));
    });
    let secs = t.elapsed().as_secs_f64();
    println!(
        "batch check: {:.0} queries/s over {n} entries ({:.2e} comparisons/s)",
        queries.len() as f64 / secs,
        queries.len() as f64 * 8.0 * n as f64 / secs
    );
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` probes; nothing to test here
    }
    let tmp = tempfile::tempdir().unwrap();
    let n = std::env::var("LOOKALIKE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // LOOKALIKE_BENCH_ONLY=query skips the corpus, indexing and check parts.
    if std::env::var("LOOKALIKE_BENCH_ONLY").as_deref() == Ok("query") {
        bench_query(tmp.path(), n);
        return;
    }
    let dir: PathBuf = match std::env::var_os("LOOKALIKE_BENCH_DIR") {
        Some(d) => d.into(),
        None => {
            let d = tmp.path().join("corpus");
            gen_corpus(&d, 600);
            println!("generated 600 JPEGs of 1024x768 in {}", d.display());
            d
        }
    };
    println!(
        "turbojpeg scaled decode: {}",
        lookalike::ingest::turbo::AVAILABLE
    );
    // LOOKALIKE_BENCH_COPIES=K indexes K distinct-byte copies of the folder's
    // JPEGs, so fixed costs (process, commit) fade as they do on a big corpus.
    let copies = std::env::var("LOOKALIKE_BENCH_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let corpus = if copies > 1 {
        let d = tmp.path().join("copies");
        let n = copy_jpegs(&dir, &d, copies);
        println!(
            "indexing {n} JPEGs: {copies} copies of each in {}",
            dir.display()
        );
        d
    } else {
        dir.clone()
    };
    bench_indexing(&corpus, tmp.path());
    // Part 3 checks the folder against its own (fast, 512) index: part 1's,
    // unless that holds copies (every query would have K exact matches).
    let own = tmp.path().join("idx-Fast-512-true");
    let own = if copies > 1 {
        let d = tmp.path().join("idx-check");
        let opts = BuildOptions {
            prune: false,
            ..BuildOptions::new()
        };
        let mut w = IndexWriter::open(&d).unwrap();
        build(&mut w, &dir, &opts, &indicatif::ProgressBar::hidden()).unwrap();
        d
    } else {
        own
    };
    bench_check(&dir, &own);
    if std::env::var("LOOKALIKE_BENCH_ONLY").as_deref() != Ok("index") {
        bench_query(tmp.path(), n);
    }
}

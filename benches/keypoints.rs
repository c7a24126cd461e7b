//! Keypoint retrieval at scale: the keypoint shortlist through the
//! segments' keypoint tables (`index::keypoint_table`, what `check` uses)
//! against the exhaustive scan, on the same index, in the same run.
//!
//!     cargo bench --bench keypoints -- --db ../shared/corpus/db \
//!         --queries ../shared/corpus/queries --truth ../shared/corpus/ground_truth.csv \
//!         [--distractors 100000] [--dir PATH] [--scan-queries 100]
//!
//! The index holds the `--db` images (keypoints described as `index` does)
//! and `--distractors` synthetic records whose 128 keypoints are drawn from
//! the db's own descriptors with 8–24 random bits flipped each: the
//! descriptors' real distribution (the tables' buckets as skewed as on real
//! data) without any one image's content. Each query of `--truth` whose
//! expected image is in `--db` is described as `check` does; its shortlist
//! (the 8 records with the most tentative keypoint matches) is computed
//! both ways. Reports the share of queries whose expected image is in the
//! shortlist (scan and table), their agreement, per-query time p50/p99, the
//! table's bytes per record and the compaction (table build) time. The scan
//! runs on the first `--scan-queries` queries only at large sizes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lookalike::descriptors::keypoints::{KeyPoint, INDEX_KEYPOINTS};
use lookalike::descriptors::{describe_query_with, describe_with, Extras, Hash256, IndexKeypoints};
use lookalike::index::{Index, IndexWriter, RecordRef};
use lookalike::search::calibrate::Calibration;
use lookalike::search::fusion::{self, FuseParams, KeypointSearch};
use rayon::prelude::*;

struct Args {
    db: PathBuf,
    queries: PathBuf,
    truth: PathBuf,
    distractors: usize,
    dir: Option<PathBuf>,
    scan_queries: usize,
}

fn args() -> Args {
    let v: Vec<String> = std::env::args().collect();
    let get = |k: &str| v.iter().position(|a| a == k).and_then(|i| v.get(i + 1));
    let path = |k: &str, d: &str| PathBuf::from(get(k).map_or(d, |s| s.as_str()));
    let num = |k: &str, d: usize| get(k).map_or(d, |s| s.replace('_', "").parse().expect(k));
    Args {
        db: path("--db", "../shared/corpus/db"),
        queries: path("--queries", "../shared/corpus/queries"),
        truth: path("--truth", "../shared/corpus/ground_truth.csv"),
        distractors: num("--distractors", 100_000),
        dir: get("--dir").map(PathBuf::from),
        scan_queries: num("--scan-queries", 100),
    }
}

fn rgb(path: &Path) -> Option<image::RgbImage> {
    image::open(path).ok().map(|i| i.to_rgb8())
}

fn pct(v: &mut [f64], p: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    let a = args();
    let extras = Extras {
        embedding: false,
        keypoints: true,
        regions: false,
    };
    let mut names: Vec<String> = std::fs::read_dir(&a.db)
        .expect("--db folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let t = Instant::now();
    let db: Vec<(String, IndexKeypoints)> = names
        .par_iter()
        .filter_map(|n| {
            let img = rgb(&a.db.join(n))?;
            Some((n.clone(), describe_with(&img, extras).keypoints))
        })
        .collect();
    println!(
        "described {} db images in {:.1} s",
        db.len(),
        t.elapsed().as_secs_f64()
    );
    let pool: Vec<KeyPoint> = db.iter().flat_map(|d| d.1.points().to_vec()).collect();

    let base = a
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keypoints-bench"));
    let _ = std::fs::remove_dir_all(&base);
    let dir = base.join("idx");
    let t = Instant::now();
    let mut w = IndexWriter::open(&dir).expect("open writer");
    w.flush_records = 250_000;
    w.flush_interval = std::time::Duration::from_secs(u64::MAX / 4);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut d = lookalike::descriptors::Descriptors {
        quality: 100,
        ..Default::default()
    };
    let total = db.len() + a.distractors;
    for i in 0..total {
        d.pdq = Hash256 {
            words: std::array::from_fn(|_| rng.next()),
        };
        d.pdq_trim = d.pdq;
        let path = if i < db.len() {
            d.keypoints = db[i].1;
            db[i].0.clone()
        } else {
            let points: Vec<KeyPoint> = (0..INDEX_KEYPOINTS)
                .map(|_| {
                    let mut k = pool[(rng.next() % pool.len() as u64) as usize];
                    for _ in 0..8 + rng.next() % 17 {
                        let b = rng.next() % 256;
                        k.desc[b as usize / 32] ^= 1 << (b % 32);
                    }
                    k.x = (rng.next() % 6000) as u16;
                    k.y = (rng.next() % 6000) as u16;
                    k
                })
                .collect();
            d.keypoints = IndexKeypoints::from_points(&points);
            format!("distractor/{i:09}.jpg")
        };
        w.add(path.as_bytes(), 1, i as i64, i as u128 + 1, 0, &d);
        w.maybe_commit().expect("commit");
    }
    w.commit().expect("commit");
    drop(w);
    let written = t.elapsed().as_secs_f64();
    let t = Instant::now();
    lookalike::pipeline::compact(&dir, None).expect("compact");
    let merged = t.elapsed().as_secs_f64();
    let index = Index::open(&dir).expect("open");
    let seg = &index.segments()[0];
    let table = seg.keypoint_table().expect("a keypoint table");
    println!(
        "index: {total} records ({} distractors) written in {written:.1} s, compacted (one segment, \
         keypoint table included) in {merged:.1} s; keypoint table {:.0} bytes/record \
         (keypoints.col {:.0}), bucket bits {}",
        a.distractors,
        table.bytes() as f64 / total as f64,
        (INDEX_KEYPOINTS * std::mem::size_of::<KeyPoint>()) as f64,
        table.bits
    );

    let latest = index.latest();
    let truth = std::fs::read_to_string(&a.truth).expect("--truth");
    let queries: Vec<(String, RecordRef)> = truth
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            let (q, e) = (f.next()?, f.next()?);
            Some((q.to_string(), *latest.get(e.as_bytes())?))
        })
        .collect();
    let described: Vec<_> = queries
        .par_iter()
        .filter_map(|(q, r)| Some((describe_query_with(&rgb(&a.queries.join(q))?, extras), *r)))
        .collect();
    let p = FuseParams {
        top_k: 10,
        parallel: false,
        verify: true,
        ann_min_rows: fusion::ANN_MIN_ROWS,
        keypoint_scan: false,
        calibration: Calibration::for_model(None),
    };
    let run = |how: KeypointSearch, n: usize| -> (Vec<Vec<RecordRef>>, Vec<f64>) {
        described
            .iter()
            .take(n)
            .map(|(q, _)| {
                let t = Instant::now();
                let ev = fusion::evidence(&index, q, &[], how, 10, &p);
                let ms = t.elapsed().as_secs_f64() * 1e3;
                (ev.shortlist.iter().map(|s| s.1).collect(), ms)
            })
            .unzip()
    };
    let n_scan = if total <= 20_000 {
        described.len()
    } else {
        a.scan_queries.min(described.len())
    };
    let (table_lists, mut table_ms) =
        run(KeypointSearch::Tables { scan_rest: false }, described.len());
    let (scan_lists, mut scan_ms) = run(KeypointSearch::Scan, n_scan);
    let found = |lists: &[Vec<RecordRef>], n: usize| {
        let hit = (0..n)
            .filter(|&i| lists[i].contains(&described[i].1))
            .count();
        100.0 * hit as f64 / n.max(1) as f64
    };
    let same = (0..n_scan)
        .filter(|&i| {
            let mut x = table_lists[i].clone();
            let mut y = scan_lists[i].clone();
            x.sort_unstable();
            y.sort_unstable();
            x == y
        })
        .count();
    println!(
        "{} queries with an expected db image; expected image in the keypoint shortlist: \
         table {:.1} % (all), table {:.1} % / scan {:.1} % (first {n_scan}); identical shortlists {:.1} %",
        described.len(),
        found(&table_lists, described.len()),
        found(&table_lists, n_scan),
        found(&scan_lists, n_scan),
        100.0 * same as f64 / n_scan.max(1) as f64
    );
    println!(
        "shortlist per query, one thread: table p50 {:.2} ms p99 {:.2} ms; scan p50 {:.2} ms p99 {:.2} ms",
        pct(&mut table_ms, 50),
        pct(&mut table_ms, 99),
        pct(&mut scan_ms, 50),
        pct(&mut scan_ms, 99)
    );
}

//! Embedding search at scale: the HNSW graph (`index::graph`, built by
//! hnsw_rs over the int8 codes of `index::projection`) against an exact scan
//! of the same f16 rows — fit and build time, query latency, recall@10.
//! `cargo bench --bench ann` (plain main).
//! Env: BENCH_ANN_N (rows, default 100 000), BENCH_ANN_DIM (default 1280,
//! the shipped model; 512 for SSCD), BENCH_ANN_QUERIES (default 200).
//!
//! The rows are synthetic clustered unit vectors (2 000 centres plus noise),
//! as embeddings of a corpus cluster by content, with variance falling off
//! along the dimensions (σ²_d ∝ (d+1)^-1.2) as a CNN's does: the leading 256
//! of 1 280 hold about as much of it (88 %) as the shipped model's principal
//! axes do on ../shared/corpus/db (90 %). Two query sets: near copies
//! (an indexed row plus noise, what `check` looks for) and fresh points of
//! the same distribution (the hard case for a graph: no close neighbour).

use std::time::Instant;

use lookalike::descriptors::embedding::{similarity, Embedding};
use lookalike::index::graph::{self, Graph};
use lookalike::index::{projection, whitening};
use lookalike::search::ann;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    }
    fn unit(&mut self, around: &[f32], noise: f32) -> Vec<f32> {
        let mut v: Vec<f32> = around
            .iter()
            .enumerate()
            .map(|(d, &x)| x + noise * self.next() * spread(d))
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }
}

/// Standard deviation of dimension `d` (see the module comment).
fn spread(d: usize) -> f32 {
    ((d + 1) as f32).powf(-0.6)
}

fn exact_top(embs: &[Embedding], q: &[f32], k: usize) -> Vec<u32> {
    let mut all: Vec<(f32, u32)> = embs
        .iter()
        .enumerate()
        .map(|(i, e)| (similarity(q, e), i as u32))
        .collect();
    all.select_nth_unstable_by(k, |a, b| b.0.total_cmp(&a.0));
    all.truncate(k);
    all.into_iter().map(|x| x.1).collect()
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2] * 1e3
}

fn main() {
    let (n, dim, nq) = (
        env("BENCH_ANN_N", 100_000),
        env("BENCH_ANN_DIM", 1280),
        env("BENCH_ANN_QUERIES", 200),
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let centres: Vec<Vec<f32>> = (0..2000)
        .map(|_| (0..dim).map(|d| rng.next() * spread(d)).collect())
        .collect();
    let rows: Vec<Vec<f32>> = (0..n)
        .map(|i| rng.unit(&centres[i % centres.len()], 0.5))
        .collect();
    let embs: Vec<Embedding> = rows.iter().map(|v| Embedding::from_f32(v)).collect();
    println!(
        "rows: {n} x {dim} (f16), cpu threads: {}",
        rayon::current_num_threads()
    );

    let t = Instant::now();
    let axes = projection::fit(&embs).expect("projection");
    let codes = projection::encode_all(&axes, &embs);
    let fit_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let w = 4 + axes.out;
    let words = graph::build(&codes, w).expect("graph");
    let build_s = t.elapsed().as_secs_f64();
    println!(
        "projection: {} -> {} axes, fit + encode {fit_s:.2} s",
        axes.inp, axes.out
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(graph::FILE);
    graph::write(&path, &words).unwrap();
    // The whitening a segment of these rows gets, and what scoring one
    // candidate through it costs against the raw cosine (`check` scores a
    // few dozen candidates per query and region).
    let t = Instant::now();
    whitening::write(dir.path(), &embs).unwrap();
    let white_fit = t.elapsed().as_secs_f64();
    let wh = whitening::Whitening::find(dir.path())
        .unwrap()
        .expect("whitening");
    let q = rng.unit(&centres[0], 0.5);
    let qw = wh.apply(q.iter().copied()).unwrap();
    let m = n.min(20_000);
    let t = Instant::now();
    let raw: f32 = embs[..m].iter().map(|e| similarity(&q, e)).sum();
    let raw_us = t.elapsed().as_secs_f64() * 1e6 / m as f64;
    let t = Instant::now();
    let white: f32 = embs[..m]
        .iter()
        .filter_map(|e| wh.apply_row(e))
        .map(|r| r.iter().zip(&qw).map(|(a, b)| a * b).sum::<f32>())
        .sum();
    let white_us = t.elapsed().as_secs_f64() * 1e6 / m as f64;
    println!(
        "whitening: {} axes, fit {white_fit:.2} s; one candidate scored whitened {white_us:.1} µs, raw {raw_us:.2} µs (sums {white:.1}, {raw:.1})",
        wh.axes
    );
    let t = Instant::now();
    let g = Graph::open(&path, n).expect("graph opens");
    println!(
        "graph build: {build_s:.1} s ({:.0} rows/s; with the fit {:.0} rows/s), {:.1} MB on disk, {} levels; open + validate {:.1} ms",
        n as f64 / build_s,
        n as f64 / (build_s + fit_s),
        (words.len() * 4) as f64 / 1e6,
        g.levels(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let near: Vec<Vec<f32>> = (0..nq)
        .map(|i| rng.unit(&rows[(i * 7919) % n], 0.3))
        .collect();
    let fresh: Vec<Vec<f32>> = (0..nq)
        .map(|i| rng.unit(&centres[(i * 31) % centres.len()], 0.5))
        .collect();
    for (name, qs) in [("near copies", &near), ("fresh points", &fresh)] {
        let (mut hit, mut total, mut t_ann, mut t_exact) = (0, 0, vec![], vec![]);
        for q in qs {
            let t = Instant::now();
            let want = exact_top(&embs, q, 10);
            t_exact.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let qp = axes.project(q);
            let approx = |r: u32| projection::dot_query(&qp, &codes[r as usize * w..][..w]);
            let exact = |r: u32| similarity(q, &embs[r as usize]);
            let got = ann::search(&g, approx, exact, 10, ann::ef_for(10), |_| true);
            t_ann.push(t.elapsed().as_secs_f64());
            hit += want
                .iter()
                .filter(|w| got.iter().any(|x| x.1 == **w))
                .count();
            total += want.len();
        }
        println!(
            "{name:12}: recall@10 {:.4}  hnsw (ef {}) median {:.3} ms/query, exact scan (1 thread) {:.2} ms/query",
            hit as f64 / total as f64,
            ann::ef_for(10),
            median_ms(t_ann),
            median_ms(t_exact)
        );
    }
}

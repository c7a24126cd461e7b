//! PDQ search at scale: a synthetic index built through the real writer
//! (`IndexWriter`: commits every `--commit-every` entries, then `compact`
//! merges them into one segment with its PDQ table), then radius-31 and
//! top-10 queries through the table against the exact scan of the same
//! index, in the same run. Every query's answers are checked equal.
//!
//!     cargo bench --bench scale -- --entries 10000000 [--queries 200]
//!         [--commit-every 250000] [--dir PATH] [--keep] [--query-only]
//!
//! `--query-only` skips the build and queries the index a run with the same
//! arguments and `--keep` left in `--dir`: the query phase's peak RSS in a
//! process that never held the build.
//!
//! Entries are random 256-bit hashes, one in ten with a differing trimmed
//! view; each query (8 random orientation hashes) has `--planted` (5) near
//! copies at distances 0..=40 of a random orientation, upright or trimmed.
//! Reports build rate, bytes per entry, open time, peak RSS (VmHWM, reset
//! through /proc/self/clear_refs before the query phase, with the anonymous
//! part, i.e. beyond mapped pages) and query p50/p99.
//!
//! `--embed-dim D` (e.g. 512, SSCD's width) gives every entry an embedding
//! too: clustered unit vectors whose variance falls off along the dimensions
//! (σ²_d ∝ (d+1)^-1.2, as `benches/ann.rs`), each query's embedding planted
//! as a near copy at its planted rows. The embedding phase reports the
//! graph search (projection codes, HNSW, exact rescoring: what `check` runs
//! on segments of ≥ 4 096 rows) against the exact scan of the same index:
//! p50/p99 and recall@10.
//!
//! `--profile compact` builds the index as `index --profile compact` does
//! (codes, no f16 embeddings; merges rebuild rows from their codes): bytes
//! per entry of that profile, and its graph search against its own exact
//! scan (both on the codes).

use std::path::PathBuf;
use std::time::Instant;

use lookalike::descriptors::{Descriptors, Embedding, Hash256, QueryDescriptors};
use lookalike::index::{Index, IndexWriter, Profile};
use lookalike::search::fusion::nearest_embeddings;
use lookalike::search::{search, SearchParams};

struct Args {
    entries: usize,
    queries: usize,
    planted: usize,
    commit_every: usize,
    dir: Option<PathBuf>,
    keep: bool,
    embed_dim: usize,
    query_only: bool,
    compact: bool,
}

fn args() -> Args {
    let mut a = Args {
        entries: 1_000_000,
        queries: 200,
        planted: 5,
        commit_every: 250_000,
        dir: None,
        keep: false,
        embed_dim: 0,
        query_only: false,
        compact: false,
    };
    let v: Vec<String> = std::env::args().collect();
    let num = |i: usize| -> usize {
        v.get(i + 1)
            .and_then(|s| s.replace('_', "").parse().ok())
            .unwrap_or_else(|| panic!("{} needs a number", v[i]))
    };
    for i in 0..v.len() {
        match v[i].as_str() {
            "--entries" => a.entries = num(i),
            "--queries" => a.queries = num(i),
            "--planted" => a.planted = num(i),
            "--commit-every" => a.commit_every = num(i).max(1),
            "--dir" => a.dir = v.get(i + 1).map(PathBuf::from),
            "--keep" => a.keep = true,
            "--query-only" => a.query_only = true,
            "--embed-dim" => a.embed_dim = num(i).min(1280),
            "--profile" => a.compact = v.get(i + 1).map(String::as_str) == Some("compact"),
            _ => {}
        }
    }
    a
}

struct Rng(u64);
impl Rng {
    fn u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn hash(&mut self) -> Hash256 {
        Hash256 {
            words: [self.u64(), self.u64(), self.u64(), self.u64()],
        }
    }
    fn near(&mut self, h: &Hash256, d: u32) -> Hash256 {
        let mut out = *h;
        let mut n = 0;
        while n < d {
            let b = (self.u64() % 256) as usize;
            if out.bit(b) == h.bit(b) {
                out.words[b / 64] ^= 1 << (b % 64);
                n += 1;
            }
        }
        out
    }
}

/// (VmHWM, RssAnon) in MiB from /proc/self/status.
fn rss() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| -> f64 {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kb("VmHWM:"), kb("RssAnon:"))
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A unit vector around `centre` (or fresh, for an empty one) whose
/// dimension d varies by `noise`·(d+1)^-0.6.
fn embedding(rng: &mut Rng, dim: usize, centre: &[f32], noise: f32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim)
        .map(|d| {
            let r = (rng.u64() >> 11) as f32 / (1u64 << 53) as f32 - 0.5;
            centre.get(d).copied().unwrap_or(0.0) + noise * r * ((d + 1) as f32).powf(-0.6)
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn pct(v: &mut [f64], p: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn main() {
    let a = args();
    let base = a
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scale-bench"));
    if !a.query_only {
        let _ = std::fs::remove_dir_all(&base);
    }
    let dir = base.join("idx");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let centres: Vec<Vec<f32>> = (0..if a.embed_dim > 0 { 2000 } else { 0 })
        .map(|_| embedding(&mut rng, a.embed_dim, &[], 1.0))
        .collect();
    let queries: Vec<QueryDescriptors> = (0..a.queries)
        .map(|i| QueryDescriptors {
            pdq: std::array::from_fn(|_| rng.hash()),
            quality: 100,
            phash: 0,
            pdq_trim: None,
            keypoints: vec![],
            embedding: (a.embed_dim > 0)
                .then(|| embedding(&mut rng, a.embed_dim, &centres[i * 7 % 2000], 0.5)),
            regions: vec![],
        })
        .collect();
    // Rows of the planted copies: spread evenly over the index.
    let planted = a.queries * a.planted;
    let stride = (a.entries / planted.max(1)).max(1);
    println!(
        "scale bench: {} entries ({} planted near copies), {} queries, commit every {}",
        a.entries, planted, a.queries, a.commit_every
    );

    if !a.query_only {
        let t = Instant::now();
        let mut w = IndexWriter::open(&dir).expect("open writer");
        if a.embed_dim > 0 {
            w.set_embedding_label(Some(format!("synthetic-{}d@bench", a.embed_dim)));
        }
        if a.compact {
            w.set_profile(Profile::Compact);
        }
        w.flush_records = a.commit_every;
        w.flush_interval = std::time::Duration::from_secs(u64::MAX / 4);
        let mut d = Descriptors {
            quality: 100,
            ..Descriptors::default()
        };
        for i in 0..a.entries {
            let p = i / stride;
            if i % stride == 0 && p < planted {
                let q = &queries[p % a.queries];
                let dist = (rng.u64() % 41) as u32;
                let h = q.pdq[(rng.u64() % 8) as usize];
                let near = rng.near(&h, dist);
                (d.pdq, d.pdq_trim) = match rng.u64() % 3 {
                    0 => (rng.hash(), near),
                    _ => (near, near),
                };
                if let Some(e) = &q.embedding {
                    let v = embedding(&mut rng, a.embed_dim, e, 0.2);
                    d.embedding = Embedding::from_f32(&v);
                }
            } else {
                d.pdq = rng.hash();
                d.pdq_trim = if i % 10 == 0 { rng.hash() } else { d.pdq };
                if a.embed_dim > 0 {
                    let c = &centres[(rng.u64() % 2000) as usize];
                    d.embedding = Embedding::from_f32(&embedding(&mut rng, a.embed_dim, c, 0.5));
                }
            }
            d.phash = rng.u64();
            let path = format!("/data/shard{:04}/img{i:09}.jpg", i / 100_000);
            w.add(
                path.as_bytes(),
                1000 + i as u64,
                i as i64,
                i as u128 + 1,
                0,
                &d,
            );
            w.maybe_commit().expect("commit");
        }
        w.commit().expect("commit");
        let segs = w.segment_count();
        drop(w);
        let written = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let c = lookalike::pipeline::compact(&dir, None).expect("compact");
        let merged = t.elapsed().as_secs_f64();
        let (hwm_build, _) = rss();
        let bytes = dir_bytes(&dir);
        println!(
            "build: {segs} segments written in {written:.1} s ({:.0} entries/s), compacted to {} in {merged:.1} s; \
             overall {:.0} entries/s",
            a.entries as f64 / written,
            c.segments_after,
            a.entries as f64 / (written + merged)
        );
        let seg = dir.join(
            std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with("seg-"))
                .unwrap()
                .file_name(),
        );
        let col = |f: &str| {
            std::fs::metadata(seg.join(f)).map(|m| m.len()).unwrap_or(0) as f64 / a.entries as f64
        };
        println!(
            "size: {:.1} MB = {:.1} bytes/entry (pdq {:.1}, pdq_trim {:.1}, files {:.1}, paths {:.1}, phash {:.1}, pdq_mih_v2 {:.1}); peak RSS while building {:.0} MiB",
            bytes as f64 / 1e6,
            bytes as f64 / a.entries as f64,
            col("pdq.col"),
            col("pdq_trim.col"),
            col("files.col"),
            col("paths.col"),
            col("phash.col"),
            col("pdq_mih_v2.col"),
            hwm_build
        );
        if a.embed_dim > 0 {
            println!(
                "embedding columns, bytes/entry: embedding {:.1}, codes {:.1}, projection {:.1}, hnsw {:.1}",
                col("embedding.col"),
                col("codes.col"),
                col("projection.col"),
                col("hnsw.col")
            );
        }
    }

    // Query phase: reset the peak, open, query.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    let index = Index::open(&dir).expect("open");
    println!(
        "open: {:.2} s (maps and checksums every column, validates the PDQ table)",
        t.elapsed().as_secs_f64()
    );
    let run = |name: &str, top_k: usize, max_distance: u32| {
        let p = |pdq_index| SearchParams {
            top_k,
            max_distance,
            pdq_index,
            ..SearchParams::default()
        };
        let (mut tab, mut scan) = (vec![], vec![]);
        let mut found = 0;
        for q in &queries {
            let t = Instant::now();
            let a = search(&index, q, &p(true));
            tab.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let b = search(&index, q, &p(false));
            scan.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(a, b, "the table's answers equal the scan's");
            found += a.len();
        }
        let (t50, t99, s50, s99) = (
            pct(&mut tab, 50),
            pct(&mut tab, 99),
            pct(&mut scan, 50),
            pct(&mut scan, 99),
        );
        println!(
            "{name}: table p50 {t50:.3} ms p99 {t99:.3} ms | scan p50 {s50:.2} ms p99 {s99:.2} ms | \
             p50 speed-up {:.1}x; {:.1} matches/query, identical",
            s50 / t50,
            found as f64 / queries.len() as f64
        );
    };
    run("radius 31 (8 orientations)", usize::MAX, 31);
    run(
        "top-10 (falls back to the scan unless 10 within 31)",
        10,
        256,
    );
    if a.embed_dim > 0 {
        let (mut graph, mut scan, mut hit, mut total) = (vec![], vec![], 0, 0);
        for q in &queries {
            let v = q.embedding.as_ref().unwrap();
            let t = Instant::now();
            let got = nearest_embeddings(&index, v, 10, false, 0);
            graph.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let want = nearest_embeddings(&index, v, 10, false, usize::MAX);
            scan.push(t.elapsed().as_secs_f64() * 1e3);
            hit += want
                .iter()
                .filter(|w| got.iter().any(|g| g.1 == w.1))
                .count();
            total += want.len();
        }
        let (g50, g99, s50, s99) = (
            pct(&mut graph, 50),
            pct(&mut graph, 99),
            pct(&mut scan, 50),
            pct(&mut scan, 99),
        );
        println!(
            "embeddings top-10: graph p50 {g50:.3} ms p99 {g99:.3} ms | exact scan (1 thread) p50 {s50:.1} ms p99 {s99:.1} ms | recall@10 {:.4}",
            hit as f64 / total as f64
        );
    }
    let (hwm, anon) = rss();
    println!(
        "peak RSS during open + queries: {hwm:.0} MiB (anonymous now {anon:.0} MiB; the rest is mapped index pages)"
    );
    if !a.keep && !a.query_only {
        let _ = std::fs::remove_dir_all(&base);
    }
}

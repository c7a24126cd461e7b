//! Approximate nearest embeddings through a segment's HNSW graph
//! (`index::graph`): greedy descent through the upper layers, then a beam of
//! `ef` candidates on layer 0 (Malkov & Yashunin, 2016, Alg. 2 and 5).
//! The walk compares the query with rows by an approximate similarity (its
//! projection against the segment's int8 codes, `index::projection`); the
//! beam it ends with is rescored exactly (the stored f16 rows), so the
//! approximation decides which rows are seen, never their scores.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::index::graph::Graph;

/// Beam width on layer 0 for `k` results: recall@10 ≥ 0.98 on the bench
/// (`benches/ann.rs`) at 128; never below k.
pub fn ef_for(k: usize) -> usize {
    k.max(128)
}

#[derive(Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}
impl Ord for Near {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
    }
}
impl PartialOrd for Near {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Up to `k` rows most similar to the query (exact similarity, row), best
/// first, among those `keep` accepts (live records): the graph is walked by
/// `approx`, and the `ef` best rows it finds are ranked by `exact`. Rejected
/// rows are still walked through, so tombstones do not cut the graph.
pub fn search(
    g: &Graph,
    approx: impl Fn(u32) -> f32,
    exact: impl Fn(u32) -> f32,
    k: usize,
    ef: usize,
    keep: impl Fn(u32) -> bool,
) -> Vec<(f32, u32)> {
    if g.levels() == 0 || k == 0 {
        return vec![];
    }
    let sim = approx;
    let mut cur = Near(sim(g.entry), g.entry);
    for l in (1..g.levels()).rev() {
        loop {
            let best = g
                .neighbours(l, cur.1)
                .map(|n| Near(sim(n), n))
                .max()
                .filter(|n| *n > cur);
            match best {
                Some(n) => cur = n,
                None => break,
            }
        }
    }
    // Layer 0: `front` pops the most similar unexpanded candidate, `found`
    // keeps the ef best seen (least similar on top).
    let ef = ef.max(k);
    let mut visited = vec![0u64; g.rows.div_ceil(64)];
    let mut seen = |r: u32| {
        let (w, b) = (r as usize / 64, 1u64 << (r % 64));
        let new = visited[w] & b == 0;
        visited[w] |= b;
        new
    };
    seen(cur.1);
    let mut front = BinaryHeap::from([cur]);
    let mut found = BinaryHeap::from([Reverse(cur)]);
    while let Some(c) = front.pop() {
        if found.len() >= ef && c < found.peek().unwrap().0 {
            break;
        }
        for n in g.neighbours(0, c.1) {
            if !seen(n) {
                continue;
            }
            let cand = Near(sim(n), n);
            if found.len() < ef || cand > found.peek().unwrap().0 {
                front.push(cand);
                found.push(Reverse(cand));
                if found.len() > ef {
                    found.pop();
                }
            }
        }
    }
    // Rescored with the exact scan's own dot product, so both rank the
    // same rows identically.
    let mut out: Vec<(f32, u32)> = found
        .into_iter()
        .filter(|Reverse(n)| keep(n.1))
        .map(|Reverse(n)| (exact(n.1), n.1))
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out.truncate(k);
    out
}

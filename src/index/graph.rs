//! `hnsw.col`: an HNSW graph (Malkov & Yashunin, 2016) over one segment's
//! embeddings, so a query visits a few thousand records instead of all.
//!
//! The graph is built by `hnsw_rs` (parallel insert) over the segment's int8
//! code rows (`projection`, 260 bytes instead of 2 560) when the segment is
//! written, then copied out into our own column file: fixed-width neighbour
//! tables validated like every other column before use, searched by
//! `search::ann` over the memory-mapped codes, its beam rescored with
//! `embedding.col`. Why not hnsw_rs's own
//! dump and reload: its reader takes lengths and dimensions from the file on
//! trust (`from_raw_parts`) and exits the process on some errors, and its data
//! file would duplicate every embedding. Ours is one more checksummed column.
//!
//! Payload, u32 little-endian words:
//! ```text
//! 0  rows (= the segment's records)     3  levels L (0: empty graph)
//! 1  m0, layer-0 slots per node         4  entry node (a member of layer L-1)
//! 2  m, slots per node above layer 0    5  dim: code length (graphs written
//!                                          before codes: embedding values used)
//! layer 0:      rows × m0 neighbours (NONE = empty slot)
//! layer l ≥ 1:  count, count node ids (ascending), count × m neighbours
//! ```
//! A row without an embedding is in no layer: its slots are all NONE.

use std::path::Path;

use hnsw_rs::prelude::{Distance, Hnsw};

use super::column::{self, Column, Count};
use super::projection;
use crate::descriptors::embedding::EMBED_DIM;
use crate::error::IndexError;

/// File name of the graph column in a segment folder.
pub const FILE: &str = "hnsw.col";
/// Column name recorded in the graph file's header.
pub const NAME: &str = "hnsw";
/// An empty neighbour slot.
pub const NONE: u32 = u32::MAX;
const HEADER_WORDS: usize = 6;

/// Links per node above layer 0 (hnsw_rs keeps twice as many on layer 0).
pub const M: usize = 16;
/// Candidate list while inserting: higher = better graph, slower build.
/// `benches/ann.rs`, 20 000 rows: 100 → 64 built 1.6× faster for recall@10
/// 0.988 → 0.985 (near copies).
pub const EF_CONSTRUCTION: usize = 64;
/// hnsw_rs's layer limit (its dump needs 16; we keep the same ceiling).
const MAX_LAYER: usize = 16;
/// Most neighbour slots per node a graph file may declare (m0 and m).
const MAX_SLOTS: usize = 1024;

/// Most words a valid graph of `rows` rows can have, from the bounds `open`
/// accepts: header, `rows × m0` slots on layer 0, and per upper layer a
/// count plus up to `rows` nodes of `1 + m` words. A file claiming more is
/// refused before it is mapped.
pub fn max_words(rows: u64) -> u64 {
    let layer = rows.saturating_mul(MAX_SLOTS as u64 + 1).saturating_add(1);
    let upper = (MAX_LAYER as u64 - 1).saturating_mul(layer);
    (HEADER_WORDS as u64)
        .saturating_add(rows.saturating_mul(MAX_SLOTS as u64))
        .saturating_add(upper)
}

/// hnsw_rs distance over code rows (`projection`): 1 − approximate cosine.
/// The rows are int8 so hnsw_rs can hold them; their first four bytes are
/// the row's scale.
struct CodeDistance;

impl Distance<i8> for CodeDistance {
    fn eval(&self, a: &[i8], b: &[i8]) -> f32 {
        let (a, b): (&[u8], &[u8]) = (bytemuck::cast_slice(a), bytemuck::cast_slice(b));
        (1.0 - projection::dot_codes(a, b)).max(0.0)
    }
}

/// Builds the graph over a segment's code rows (`width` bytes each, see
/// `projection`) of the rows that have an embedding (scale ≠ 0); None when
/// fewer than two do (nothing to link).
pub fn build(codes: &[u8], width: usize) -> Option<Vec<u32>> {
    let all: Vec<&[u8]> = codes.chunks_exact(width).collect();
    let rows: Vec<usize> = (0..all.len()).filter(|&i| all[i][..4] != [0; 4]).collect();
    if rows.len() < 2 || all.len() >= NONE as usize {
        return None;
    }
    let hnsw: Hnsw<i8, CodeDistance> =
        Hnsw::new(M, rows.len(), MAX_LAYER, EF_CONSTRUCTION, CodeDistance);
    let data: Vec<(&[i8], usize)> = rows
        .iter()
        .map(|&i| (bytemuck::cast_slice(all[i]), i))
        .collect();
    hnsw.parallel_insert_slice(&data);
    Some(flatten(&hnsw, all.len(), width - 4))
}

/// Copies hnsw_rs's linked points into the flat tables described above.
fn flatten(hnsw: &Hnsw<i8, CodeDistance>, rows: usize, dim: usize) -> Vec<u32> {
    let m0 = 2 * M;
    let points = hnsw.get_point_indexation();
    let levels = points.get_max_level_observed() as usize + 1;
    // Per layer ≥ 1: (node, its neighbours).
    let mut nodes: Vec<(usize, usize, Vec<Vec<u32>>)> = Vec::with_capacity(rows);
    let mut level = vec![0usize; rows];
    for p in points {
        let id = p.get_origin_id();
        level[id] = p.get_point_id().0 as usize;
        let links = p
            .get_neighborhood_id()
            .iter()
            .map(|l| l.iter().map(|n| n.get_origin_id() as u32).collect())
            .collect();
        nodes.push((id, level[id], links));
    }
    // Per layer ≥ 1: (node, its neighbours); a link must stay in its layer.
    let mut upper: Vec<Vec<(u32, Vec<u32>)>> = vec![vec![]; levels];
    let mut layer0 = vec![NONE; rows * m0];
    for (id, top, links) in nodes {
        for (l, ids) in links.into_iter().enumerate().take(top.min(levels - 1) + 1) {
            if l == 0 {
                for (slot, n) in layer0[id * m0..(id + 1) * m0].iter_mut().zip(ids) {
                    *slot = n;
                }
            } else {
                let ids = ids
                    .into_iter()
                    .filter(|&n| level[n as usize] >= l)
                    .collect();
                upper[l].push((id as u32, ids));
            }
        }
    }
    let entry = points
        .get_layer_iterator(levels - 1)
        .next()
        .map_or(NONE, |p| p.get_origin_id() as u32);
    let mut out = vec![
        rows as u32,
        m0 as u32,
        M as u32,
        levels as u32,
        entry,
        dim as u32,
    ];
    out.extend_from_slice(&layer0);
    for layer in upper.iter_mut().skip(1) {
        layer.sort_by_key(|(id, _)| *id);
        out.push(layer.len() as u32);
        out.extend(layer.iter().map(|(id, _)| *id));
        for (_, nbrs) in layer.iter() {
            let mut slots = vec![NONE; M];
            for (s, &n) in slots.iter_mut().zip(nbrs) {
                *s = n;
            }
            out.extend_from_slice(&slots);
        }
    }
    out
}

/// Writes a graph payload (header and layers, as built) as the `hnsw.col`
/// column at `path`.
pub fn write(path: &Path, words: &[u32]) -> Result<(), IndexError> {
    column::write(path, NAME, 4, bytemuck::cast_slice(words))
}

/// A validated graph over a mapped `hnsw.col`.
pub struct Graph {
    col: Column,
    /// Rows of the segment (one node slot each).
    pub rows: usize,
    /// Neighbour slots per node on layer 0.
    pub m0: usize,
    /// Neighbour slots per node above layer 0.
    pub m: usize,
    /// Leading embedding values the graph was built on.
    pub dim: usize,
    /// Entry node of the search (a member of the top layer).
    pub entry: u32,
    /// Per layer ≥ 1 (index l-1): word offset of its node ids, count.
    upper: Vec<(usize, usize)>,
}

impl Graph {
    /// Maps and checks every length, id and link before any search trusts it:
    /// neighbours are rows of the segment, links above layer 0 stay in their
    /// layer, the entry node is on the top layer.
    pub fn open(path: &Path, rows: usize) -> Result<Graph, IndexError> {
        let col = Column::open(path, NAME, 4, Count::AtMost(max_words(rows as u64)))?;
        let bad = |why: String| IndexError::corrupt(path, why);
        let w: &[u32] = col.cast();
        if w.len() < HEADER_WORDS {
            return Err(bad(format!("{} words, shorter than its header", w.len())));
        }
        let (n, m0, m, levels, entry, dim) = (
            w[0] as usize,
            w[1] as usize,
            w[2] as usize,
            w[3] as usize,
            w[4],
            w[5] as usize,
        );
        if n != rows {
            return Err(bad(format!("graph of {n} rows, the segment has {rows}")));
        }
        if m0 == 0
            || m == 0
            || m0 > MAX_SLOTS
            || m > MAX_SLOTS
            || levels > MAX_LAYER
            || dim > EMBED_DIM
        {
            return Err(bad(format!(
                "implausible header (m0 {m0}, m {m}, levels {levels}, dim {dim})"
            )));
        }
        let check_ids = |ids: &[u32], what: &str| -> Result<(), IndexError> {
            match ids.iter().position(|&x| x != NONE && x as usize >= n) {
                Some(i) => Err(bad(format!("{what}: link {} to row {} of {n}", i, ids[i]))),
                None => Ok(()),
            }
        };
        let mut at = HEADER_WORDS + n * m0;
        if w.len() < at {
            return Err(bad("layer 0 is truncated".into()));
        }
        check_ids(&w[HEADER_WORDS..at], "layer 0")?;
        let mut upper = Vec::new();
        for l in 1..levels {
            let count =
                *w.get(at)
                    .ok_or_else(|| bad(format!("layer {l} is missing")))? as usize;
            let ids_at = at + 1;
            let end = count
                .checked_mul(m + 1)
                .and_then(|x| x.checked_add(ids_at))
                .filter(|&e| e <= w.len())
                .ok_or_else(|| bad(format!("layer {l} is truncated")))?;
            let ids = &w[ids_at..ids_at + count];
            if ids.windows(2).any(|p| p[0] >= p[1]) || ids.iter().any(|&x| x as usize >= n) {
                return Err(bad(format!("layer {l}: node ids not ascending rows")));
            }
            let links = &w[ids_at + count..end];
            if let Some(&x) = links
                .iter()
                .find(|&&x| x != NONE && ids.binary_search(&x).is_err())
            {
                return Err(bad(format!(
                    "layer {l}: link to {x}, not a node of the layer"
                )));
            }
            upper.push((ids_at, count));
            at = end;
        }
        if at != w.len() {
            return Err(bad(format!("{} words after the last layer", w.len() - at)));
        }
        let g = Graph {
            col,
            rows: n,
            m0,
            m,
            dim,
            entry,
            upper,
        };
        let top_ok = match levels {
            0 => entry == NONE,
            1 => (entry as usize) < n,
            _ => g.layer_nodes(levels - 1).binary_search(&entry).is_ok(),
        };
        if !top_ok {
            return Err(bad(format!("entry node {entry} is not on the top layer")));
        }
        Ok(g)
    }

    fn words(&self) -> &[u32] {
        self.col.cast()
    }

    /// Layers, 0 for an empty graph.
    pub fn levels(&self) -> usize {
        if self.entry == NONE {
            0
        } else {
            self.upper.len() + 1
        }
    }

    fn layer_nodes(&self, l: usize) -> &[u32] {
        let (at, count) = self.upper[l - 1];
        &self.words()[at..at + count]
    }

    /// Neighbours of `node` on layer `l` (empty slots dropped). Above layer 0
    /// a node that is not in the layer has none.
    pub fn neighbours(&self, l: usize, node: u32) -> impl Iterator<Item = u32> + '_ {
        let slots: &[u32] = if l == 0 {
            let at = HEADER_WORDS + node as usize * self.m0;
            &self.words()[at..at + self.m0]
        } else {
            let (at, count) = self.upper[l - 1];
            match self.layer_nodes(l).binary_search(&node) {
                Ok(i) => {
                    let s = at + count + i * self.m;
                    &self.words()[s..s + self.m]
                }
                Err(_) => &[],
            }
        };
        slots.iter().copied().filter(|&x| x != NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptors::embedding::{similarity, Embedding};
    use crate::search::ann;

    /// The graph over `embs`' codes, and the codes (see `projection`).
    fn build_over(embs: &[Embedding]) -> Option<(Vec<u32>, Vec<u8>, projection::Axes)> {
        let axes = projection::fit(embs)?;
        let codes = projection::encode_all(&axes, embs);
        build(&codes, 4 + axes.out).map(|w| (w, codes, axes))
    }

    /// Clustered unit vectors in `dim` leading values, like embeddings of a
    /// corpus: 40 centres, each point a centre plus noise.
    pub fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Embedding> {
        let mut s = seed | 1;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..40).map(|_| (0..dim).map(|_| rnd()).collect()).collect();
        (0..n)
            .map(|i| {
                let c = &centres[i % centres.len()];
                let mut v: Vec<f32> = c.iter().map(|&x| x + 0.6 * rnd()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                Embedding::from_f32(&v)
            })
            .collect()
    }

    fn open(words: &[u32], rows: usize) -> Result<Graph, IndexError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE);
        write(&p, words).unwrap();
        Graph::open(&p, rows)
    }

    fn exact(embs: &[Embedding], q: &[f32], k: usize) -> Vec<u32> {
        let mut all: Vec<(f32, u32)> = embs
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_none())
            .map(|(i, e)| (crate::descriptors::embedding::similarity(q, e), i as u32))
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        all.into_iter().take(k).map(|x| x.1).collect()
    }

    #[test]
    fn graph_recall_at_10_against_exact_search() {
        let mut embs = clustered(3000, 64, 7);
        embs[5] = Embedding::default(); // a row without an embedding is in no layer
        let (words, codes, axes) = build_over(&embs).expect("graph");
        let g = open(&words, embs.len()).unwrap();
        let w = 4 + axes.out;
        let search = |q: &[f32], k, ef, keep: &dyn Fn(u32) -> bool| {
            let qp = axes.project(q);
            let approx = |r: u32| projection::dot_query(&qp, &codes[r as usize * w..][..w]);
            let exact = |r: u32| similarity(q, &embs[r as usize]);
            ann::search(&g, approx, exact, k, ef, keep)
        };
        assert_eq!((g.dim, g.m0, g.m), (64, 2 * M, M));
        assert!(g.levels() >= 2, "3000 points reach layer 1");
        assert_eq!(g.neighbours(0, 5).count(), 0);
        let queries = clustered(200, 64, 99);
        let (mut hit, mut total) = (0, 0);
        for q in &queries {
            let q = q.to_f32();
            let want = exact(&embs, &q, 10);
            let got: Vec<u32> = search(&q, 10, ann::ef_for(10), &|_| true)
                .iter()
                .map(|x| x.1)
                .collect();
            assert!(!got.contains(&5));
            hit += want.iter().filter(|w| got.contains(w)).count();
            total += want.len();
        }
        let recall = hit as f64 / total as f64;
        assert!(recall >= 0.98, "recall@10 {recall:.3}");
        // The filter drops rejected rows without losing the rest.
        let q = embs[10].to_f32();
        let got = search(&q, 5, 64, &|r| r != 10);
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|x| x.1 != 10));
    }

    #[test]
    fn damaged_graphs_are_errors_not_panics() {
        let embs = clustered(500, 32, 3);
        let words = build_over(&embs).unwrap().0;
        assert!(open(&words, 500).is_ok());
        assert!(
            open(&words, 499).is_err(),
            "row count must match the segment"
        );
        let mut w = words.clone();
        w[HEADER_WORDS + 3] = 500; // a layer-0 link past the last row
        assert!(open(&w, 500).err().unwrap().to_string().contains("layer 0"));
        let mut w = words.clone();
        w[3] = 9; // more levels than are stored
        assert!(open(&w, 500).is_err());
        let mut w = words.clone();
        w[4] = NONE - 1; // entry not a node
        assert!(open(&w, 500).is_err());
        let mut w = words.clone();
        w.pop();
        assert!(open(&w, 500).is_err(), "truncated");
        let mut w = words.clone();
        w.push(0);
        assert!(open(&w, 500).is_err(), "appended to");
        assert!(open(&words[..3], 500).is_err());
        // An upper-layer link to a node outside that layer.
        let l1 = HEADER_WORDS + 500 * 2 * M;
        let count = words[l1] as usize;
        let members = &words[l1 + 1..l1 + 1 + count];
        let outsider = (0..500u32)
            .find(|r| members.binary_search(r).is_err())
            .unwrap();
        let mut w = words.clone();
        w[l1 + 1 + count] = outsider;
        assert!(open(&w, 500)
            .err()
            .unwrap()
            .to_string()
            .contains("not a node"));
    }

    #[test]
    fn too_few_embeddings_build_no_graph() {
        let mut embs = clustered(3, 16, 1);
        embs[0] = Embedding::default();
        embs[1] = Embedding::default();
        assert!(build_over(&embs).is_none());
    }
}

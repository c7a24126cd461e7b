//! `hnsw.col`: an HNSW graph (Malkov & Yashunin, 2016) over one segment's
//! embeddings, so a query visits a few thousand records instead of all.
//!
//! The graph is built by `hnsw_rs` (parallel insert) when the segment is
//! written, then copied out into our own column file: fixed-width neighbour
//! tables validated like every other column before use, searched by
//! `search::ann` over the memory-mapped `embedding.col`. Why not hnsw_rs's own
//! dump and reload: its reader takes lengths and dimensions from the file on
//! trust (`from_raw_parts`) and exits the process on some errors, and its data
//! file would duplicate every embedding. Ours is one more checksummed column.
//!
//! Payload, u32 little-endian words:
//! ```text
//! 0  rows (= the segment's records)     3  levels L (0: empty graph)
//! 1  m0, layer-0 slots per node         4  entry node (a member of layer L-1)
//! 2  m, slots per node above layer 0    5  dim, leading embedding values used
//! layer 0:      rows × m0 neighbours (NONE = empty slot)
//! layer l ≥ 1:  count, count node ids (ascending), count × m neighbours
//! ```
//! A row without an embedding is in no layer: its slots are all NONE.

use std::path::Path;

use hnsw_rs::prelude::{Distance, Hnsw};

use super::column::{self, Column, Count};
use crate::descriptors::embedding::{dot_f16_f16, Embedding, EMBED_DIM};
use crate::error::IndexError;

/// File name of the graph column in a segment folder.
pub const FILE: &str = "hnsw.col";
/// Column name recorded in the graph file's header.
pub const NAME: &str = "hnsw";
/// An empty neighbour slot.
pub const NONE: u32 = u32::MAX;
const HEADER_WORDS: usize = 6;

/// Links per node above layer 0 (hnsw_rs keeps twice as many on layer 0).
pub const M: usize = 24;
/// Candidate list while inserting: higher = better graph, slower build.
pub const EF_CONSTRUCTION: usize = 200;
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

/// hnsw_rs distance over f16 bits: 1 − cosine of unit vectors.
struct CosineF16;

impl Distance<u16> for CosineF16 {
    fn eval(&self, a: &[u16], b: &[u16]) -> f32 {
        (1.0 - dot_f16_f16(a, b)).max(0.0)
    }
}

/// Number of leading values that can be non-zero in any row (rounded up to
/// 16), so a 512-d model's graph and searches skip the zero tail.
fn used_dim(embs: &[Embedding]) -> usize {
    let last = embs
        .iter()
        .filter_map(|e| e.0.iter().rposition(|&x| x != 0))
        .max()
        .map_or(0, |p| p + 1);
    last.div_ceil(16).saturating_mul(16).min(EMBED_DIM)
}

/// Builds the graph of the rows that have an embedding; None when fewer
/// than two do (nothing to link).
pub fn build(embs: &[Embedding]) -> Option<Vec<u32>> {
    let rows: Vec<usize> = (0..embs.len()).filter(|&i| !embs[i].is_none()).collect();
    if rows.len() < 2 || embs.len() >= NONE as usize {
        return None;
    }
    let dim = used_dim(embs);
    let hnsw: Hnsw<u16, CosineF16> =
        Hnsw::new(M, rows.len(), MAX_LAYER, EF_CONSTRUCTION, CosineF16);
    let data: Vec<(&[u16], usize)> = rows.iter().map(|&i| (&embs[i].0[..dim], i)).collect();
    hnsw.parallel_insert_slice(&data);
    Some(flatten(&hnsw, embs.len(), dim))
}

/// Copies hnsw_rs's linked points into the flat tables described above.
fn flatten(hnsw: &Hnsw<u16, CosineF16>, rows: usize, dim: usize) -> Vec<u32> {
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
    use crate::search::ann;

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
        let words = build(&embs).expect("graph");
        let g = open(&words, embs.len()).unwrap();
        assert_eq!((g.dim, g.m0, g.m), (64, 2 * M, M));
        assert!(g.levels() >= 2, "3000 points reach layer 1");
        assert_eq!(g.neighbours(0, 5).count(), 0);
        let queries = clustered(200, 64, 99);
        let (mut hit, mut total) = (0, 0);
        for q in &queries {
            let q = q.to_f32();
            let want = exact(&embs, &q, 10);
            let got: Vec<u32> = ann::search(&g, &embs, &q, 10, ann::ef_for(10), |_| true)
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
        let got = ann::search(&g, &embs, &q, 5, 64, |r| r != 10);
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|x| x.1 != 10));
    }

    #[test]
    fn damaged_graphs_are_errors_not_panics() {
        let embs = clustered(500, 32, 3);
        let words = build(&embs).unwrap();
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
        assert!(build(&embs).is_none());
    }
}

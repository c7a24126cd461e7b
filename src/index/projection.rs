//! `projection.col` and `codes.col`: a segment's embeddings projected onto
//! their leading principal axes and stored as int8 codes, so the HNSW graph
//! (`graph`) is built and walked over 260 bytes a row instead of 2 560.
//!
//! The projection is fitted on the segment's own rows when the segment is
//! written (a merge refits on the merged rows): the top [`DIM`] eigenvectors
//! of the uncentred second-moment matrix XᵀX (all of them for a model of at
//! most [`KEEP_ALL_UP_TO`] values). That subspace keeps the most
//! energy of the rows, so dot products of projections are the best rank-DIM
//! approximation of the rows' dot products (Eckart–Young), and a row inside
//! it — every row of a segment smaller than DIM — keeps its exact dot product
//! with any query. Measured on the shipped model's embeddings of
//! ../shared/corpus/db: 256 axes keep 90 % of the energy, and the 32 rows with
//! the best int8 code similarity held all of the exact top 10 of every query
//! (689). Search walks the graph with these approximate similarities and
//! rescores its beam with the stored f16 rows (`search::ann`).
//!
//! The axes come from randomized subspace iteration (Halko, Martinsson &
//! Tropp, 2011, Alg. 4.4 and 5.3): a few products with XᵀX, nalgebra's QR and
//! an eigenproblem of DIM + 16 rows, instead of a full 1 280² one (6.6 s).
//!
//! `projection.col`: `out` rows of `inp` f16 values, the axes (unit length,
//! strongest first). `codes.col`: one row per record, 4 + `out` bytes: a
//! little-endian f32 scale s, then `out` int8 values c, projection ≈ s·c
//! (s = 0 for a record without an embedding).

use std::path::Path;

use nalgebra::DMatrix;
use rayon::prelude::*;

use super::column::{self, Column, Count};
use super::graph;
use crate::cnn::safetensors::{f16_to_f32, f32_to_f16};
use crate::descriptors::embedding::{dot_f32_f16, Embedding, EMBED_DIM};
use crate::error::IndexError;

/// Axes a projection keeps of a model wider than [`KEEP_ALL_UP_TO`]
/// (fewer when the segment has fewer rows).
pub const DIM: usize = 256;
/// A model at most this wide keeps all its axes (a rotation: int8 rounding
/// is the codes' only loss). At 1 M rows of 512 values (SSCD's width,
/// `benches/scale.rs --embed-dim 512`) 256 axes held recall@10 to 0.934
/// (0.950 at ef 512); all 512 gave 0.988 at ef 128, 1.2 ms a query.
pub const KEEP_ALL_UP_TO: usize = 512;

/// Axes kept for `rows` rows of `inp` values: see [`DIM`].
pub fn out_dim(inp: usize, rows: usize) -> usize {
    let want = if inp <= KEEP_ALL_UP_TO { inp } else { DIM };
    want.min(rows)
}
/// File name of the axes in a segment folder.
pub const FILE: &str = "projection.col";
/// File name of the codes in a segment folder.
pub const CODES_FILE: &str = "codes.col";
const NAME: &str = "projection";
const CODES_NAME: &str = "codes";
/// Rows sampled (evenly) to fit the axes: 16 per axis, and XᵀX of 4 096
/// rows takes 0.7 s on one core.
const FIT_ROWS: usize = 4096;
/// Extra columns of the random subspace and power iterations (Halko et al.
/// recommend 5–10 extra and 1–3 iterations for slowly decaying spectra).
const OVERSAMPLE: usize = 16;
const POWER_ITERS: usize = 3;

/// Number of leading values that can be non-zero in any row (rounded up to
/// 16), so a 512-d model's projection skips the zero tail.
pub fn used_dim(embs: &[Embedding]) -> usize {
    let last = embs
        .iter()
        .filter_map(|e| e.0.iter().rposition(|&x| x != 0))
        .max()
        .map_or(0, |p| p + 1);
    last.div_ceil(16).saturating_mul(16).min(EMBED_DIM)
}

/// Axes as f16 bits, `out` rows of `inp`: what `projection.col` holds, and
/// what both the writer and a query project with (the same rounding).
#[derive(Clone, Debug)]
pub struct Axes {
    /// Embedding values read (a prefix of [`EMBED_DIM`]).
    pub inp: usize,
    /// Axes kept: the code length.
    pub out: usize,
    bits: Vec<u16>,
}

impl Axes {
    /// The projection of `v` (its first `inp` values) on each axis.
    pub fn project(&self, v: &[f32]) -> Vec<f32> {
        project(&self.bits, self.inp, v)
    }

    /// The code row of one embedding (4 + `out` bytes).
    pub fn encode(&self, e: &Embedding, row: &mut [u8]) {
        row.fill(0);
        if e.is_none() {
            return;
        }
        let v: Vec<f32> = e.0[..self.inp].iter().map(|&h| f16_to_f32(h)).collect();
        let y = self.project(&v);
        let peak = y.iter().fold(0f32, |m, x| m.max(x.abs()));
        if peak == 0.0 {
            return;
        }
        let s = peak / 127.0;
        row[..4].copy_from_slice(&s.to_le_bytes());
        for (c, x) in row[4..].iter_mut().zip(&y) {
            *c = (x / s).round().clamp(-127.0, 127.0) as i8 as u8;
        }
    }
}

fn project(bits: &[u16], inp: usize, v: &[f32]) -> Vec<f32> {
    let v = &v[..inp.min(v.len())];
    bits.chunks_exact(inp).map(|a| dot_f32_f16(v, a)).collect()
}

/// Fits the axes of the rows that have an embedding; None when none has
/// (one row gets one axis: a compact index keeps its embedding only here).
pub fn fit(embs: &[Embedding]) -> Option<Axes> {
    let inp = used_dim(embs);
    let rows: Vec<usize> = (0..embs.len()).filter(|&i| !embs[i].is_none()).collect();
    if rows.is_empty() || inp == 0 {
        return None;
    }
    let x = sample_rows(embs, &rows, inp);
    let n = x.len() / inp;
    let cm = second_moment(&x, inp);
    let out = out_dim(inp, n);
    let axes = top_eigenpairs(&cm, out);
    let mut bits = Vec::with_capacity(out * inp);
    for (_, a) in &axes {
        bits.extend(a.iter().map(|&v| f32_to_f16(v as f32)));
    }
    Some(Axes { inp, out, bits })
}

/// At most [`FIT_ROWS`] of `rows` (indices of rows with an embedding),
/// evenly spaced, as f32 rows of their first `inp` values, concatenated.
pub(crate) fn sample_rows(embs: &[Embedding], rows: &[usize], inp: usize) -> Vec<f32> {
    let step = rows.len().div_ceil(FIT_ROWS).max(1);
    let sample: Vec<usize> = rows.iter().step_by(step).copied().collect();
    let mut x = vec![0f32; sample.len() * inp];
    for (xr, &r) in x.chunks_exact_mut(inp).zip(&sample) {
        for (d, &h) in xr.iter_mut().zip(&embs[r].0[..inp]) {
            *d = f16_to_f32(h);
        }
    }
    x
}

/// XᵀX (inp × inp) of the rows `x` (n × inp, row-major), in f64 for the
/// eigensolver; the product itself runs in f32 on every core.
pub(crate) fn second_moment(x: &[f32], inp: usize) -> DMatrix<f64> {
    let n = x.len() / inp;
    let mut c = vec![0f32; inp * inp];
    let i = inp as isize;
    // SAFETY: Xᵀ is inp × n read from `x` (n × inp, row-major) with column
    // and row strides (inp, 1); X is n × inp with strides (1, inp); C is
    // inp × inp with strides (1, inp); all three buffers have exactly those
    // sizes. `gemm` takes (m, n, k, dst, its column and row strides, read
    // dst, lhs and rhs likewise, then dst := alpha·dst + beta·lhs·rhs).
    unsafe {
        gemm::gemm(
            inp,
            inp,
            n,
            c.as_mut_ptr(),
            1,
            i,
            false,
            x.as_ptr(),
            i,
            1,
            x.as_ptr(),
            1,
            i,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    DMatrix::<f64>::from_row_slice(inp, inp, &c.iter().map(|&v| v as f64).collect::<Vec<_>>())
}

/// The `out` eigenpairs (value, unit vector) of the symmetric PSD `c` with
/// the largest eigenvalues, largest first (randomized subspace iteration; a
/// direct eigendecomposition when the subspace would be most of the space).
pub(crate) fn top_eigenpairs(c: &DMatrix<f64>, out: usize) -> Vec<(f64, Vec<f64>)> {
    let dim = c.nrows();
    let l = (out + OVERSAMPLE).min(dim);
    let (vectors, values) = if l * 2 >= dim {
        let e = c.clone().symmetric_eigen();
        (e.eigenvectors, e.eigenvalues)
    } else {
        // A fixed seed: the same rows always give the same axes.
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let omega = DMatrix::<f64>::from_fn(dim, l, |_, _| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        });
        let mut q = (c * omega).qr().q();
        for _ in 0..POWER_ITERS {
            q = (c * &q).qr().q();
        }
        let b = q.transpose() * c * &q;
        let e = b.symmetric_eigen();
        (q * e.eigenvectors, e.eigenvalues)
    };
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order
        .into_iter()
        .take(out)
        .map(|j| (values[j], vectors.column(j).iter().copied().collect()))
        .collect()
}

/// The code rows of `embs` under `axes`, concatenated (4 + out bytes each).
pub fn encode_all(axes: &Axes, embs: &[Embedding]) -> Vec<u8> {
    let w = 4 + axes.out;
    let mut codes = vec![0u8; embs.len() * w];
    codes
        .par_chunks_exact_mut(w)
        .zip(embs)
        .for_each(|(row, e)| axes.encode(e, row));
    codes
}

/// Fits the axes of a segment's embeddings and writes `projection.col`,
/// `codes.col` and the graph over the codes (`hnsw.col`) into its folder
/// `dir`; nothing when no row has an embedding.
pub fn write_search_columns(dir: &Path, embs: &[Embedding]) -> Result<(), IndexError> {
    let Some(axes) = fit(embs) else {
        return Ok(());
    };
    let codes = encode_all(&axes, embs);
    write(&dir.join(FILE), &axes)?;
    write_codes(&dir.join(CODES_FILE), &axes, &codes)?;
    if let Some(words) = graph::build(&codes, 4 + axes.out) {
        graph::write(&dir.join(graph::FILE), &words)?;
    }
    Ok(())
}

/// Writes `projection.col`.
pub fn write(path: &Path, axes: &Axes) -> Result<(), IndexError> {
    column::write(
        path,
        NAME,
        (axes.inp * 2) as u32,
        bytemuck::cast_slice(&axes.bits),
    )
}

/// Writes `codes.col` (rows from [`encode_all`]).
pub fn write_codes(path: &Path, axes: &Axes, codes: &[u8]) -> Result<(), IndexError> {
    column::write(path, CODES_NAME, (4 + axes.out) as u32, codes)
}

/// Scale and int8 values of one code row.
#[inline]
fn split(row: &[u8]) -> (f32, &[i8]) {
    let s = f32::from_le_bytes([row[0], row[1], row[2], row[3]]);
    (s, bytemuck::cast_slice(&row[4..]))
}

/// Approximate dot product of two embeddings from their code rows.
pub fn dot_codes(a: &[u8], b: &[u8]) -> f32 {
    let ((sa, ca), (sb, cb)) = (split(a), split(b));
    sa * sb * sum_i8(ca, cb) as f32
}

/// Σ a·b over int8 values. (An AVX2 build of this loop made the graph
/// build no faster: hnsw_rs's bookkeeping, not this, bounds it.)
fn sum_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Approximate dot product of a projected query with one code row.
pub fn dot_query(qp: &[f32], row: &[u8]) -> f32 {
    let (s, c) = split(row);
    s * qp.iter().zip(c).map(|(&q, &x)| q * x as f32).sum::<f32>()
}

/// A segment's mapped, validated axes and codes.
pub struct Projection {
    axes: Column,
    codes: Column,
    /// The axes as f32, made on first use by [`Projection::reconstruct`]
    /// (a compact index's merge rebuilds every row).
    axes_f32: std::sync::OnceLock<Vec<f32>>,
    /// Embedding values read.
    pub inp: usize,
    /// Axes, the code length.
    pub out: usize,
}

impl Projection {
    /// Maps `projection.col` and `codes.col` of `dir` (a segment of `rows`
    /// records) and checks their shapes and values before any search reads
    /// them.
    pub fn open(dir: &Path, rows: usize) -> Result<Projection, IndexError> {
        let path = dir.join(FILE);
        let bad = |p: &Path, why: String| IndexError::corrupt(p, why);
        let most = (column::HEADER + DIM.max(KEEP_ALL_UP_TO) * EMBED_DIM * 2) as u64;
        let width = column::peek_width(&path, most)?;
        let inp = width as usize / 2;
        if width % 2 != 0 || inp == 0 || inp > EMBED_DIM {
            return Err(bad(
                &path,
                format!("row width {width} is not 2..{} f16 values", EMBED_DIM),
            ));
        }
        let axes = Column::open(
            &path,
            NAME,
            width,
            Count::AtMost(out_dim(inp, usize::MAX) as u64),
        )?;
        let out = axes.bytes().len() / width as usize;
        if out == 0 {
            return Err(bad(&path, "no axes".into()));
        }
        let bits: &[u16] = axes.cast();
        if bits.iter().any(|&h| !f16_to_f32(h).is_finite()) {
            return Err(bad(&path, "an axis value is not finite".into()));
        }
        let cpath = dir.join(CODES_FILE);
        if !cpath.exists() {
            return Err(bad(
                &cpath,
                "missing: projection.col has no codes beside it (the segment is damaged)".into(),
            ));
        }
        let codes = Column::open(
            &cpath,
            CODES_NAME,
            (4 + out) as u32,
            Count::Exactly(rows as u64),
        )?;
        if let Some(r) = codes
            .bytes()
            .chunks_exact(4 + out)
            .position(|row| !split(row).0.is_finite() || split(row).0 < 0.0)
        {
            return Err(bad(
                &cpath,
                format!("record {r} has a scale that is not finite and ≥ 0"),
            ));
        }
        Ok(Projection {
            axes,
            codes,
            axes_f32: Default::default(),
            inp,
            out,
        })
    }

    /// The query's projection, for [`Projection::dot`].
    pub fn project(&self, q: &[f32]) -> Vec<f32> {
        project(self.axes.cast(), self.inp, q)
    }

    /// Estimated cosine of a unit query with record `row` (a unit row)
    /// from the query's projection `qp` (of norm `qn`) and the row's code:
    /// the similarity a compact index compares, having no f16 rows to
    /// rescore with. Each vector is its projection plus a part off the axes
    /// (norms √(1−qn²) and √(1−cn²), cn the code's norm); the parts off the
    /// axes are assumed to agree as much as the projections do (cosine c),
    /// so q·x ≈ c·(qn·cn + √(1−qn²)·√(1−cn²)). The rows of a segment with
    /// fewer rows than axes, or of a model that keeps every axis (SSCD),
    /// lie on them: each gets its exact dot product,
    /// q·x/cn (their cn differs from 1 by f16 and int8 rounding alone, which
    /// the square root would magnify). A copy whose
    /// off-axis part matches the query's keeps a value near its true one,
    /// where dropping that part would lower every copy's similarity by
    /// ~0.1 and normalising within the axes would raise unrelated rows'
    /// in small segments. None: the record has no embedding.
    pub fn cosine(&self, qp: &[f32], qn: f32, row: u32) -> Option<f32> {
        let (s, c) = split(self.code(row as usize));
        let cn = s * (sum_i8(c, c) as f32).sqrt();
        if s <= 0.0 || qn <= 0.0 {
            return None;
        }
        // Fewer axes than the width allows (few rows), or every axis (a
        // model of at most KEEP_ALL_UP_TO values): rows lie on the axes.
        if self.out < out_dim(self.inp, usize::MAX) || self.out == self.inp {
            return Some(self.dot(qp, row) / cn);
        }
        let (qn, cn) = (qn.min(1.0), cn.min(1.0));
        let cos = self.dot(qp, row) / (qn * cn);
        Some(cos * (qn * cn + ((1.0 - qn * qn) * (1.0 - cn * cn)).sqrt()))
    }

    /// Record `row`'s embedding rebuilt from its code: its projection on
    /// the axes, back in the model's space. Not renormalised: its norm (cn,
    /// below 1 by what the axes missed) carries into the code a merge
    /// writes, so [`Projection::cosine`] still knows how much of the row
    /// lies off the axes (rebuilt rows made unit length scored copies
    /// lower after each merge). What a compact index's merge refits on, and
    /// what an update copies for an exact duplicate. None: no embedding.
    pub fn reconstruct(&self, row: usize) -> Option<Embedding> {
        let (s, c) = split(self.code(row));
        if s == 0.0 {
            return None;
        }
        let mut v = vec![0f32; self.inp];
        let axes = self.axes_f32.get_or_init(|| {
            self.axes
                .cast::<u16>()
                .iter()
                .map(|&h| f16_to_f32(h))
                .collect()
        });
        for (axis, &k) in axes.chunks_exact(self.inp).zip(c) {
            if k != 0 {
                let k = k as f32;
                for (x, &a) in v.iter_mut().zip(axis) {
                    *x += k * a;
                }
            }
        }
        let e = Embedding::from_f32(&v.iter().map(|x| x * s).collect::<Vec<_>>());
        (!e.is_none()).then_some(e)
    }

    /// Approximate similarity of a projected query with record `row`.
    #[inline]
    pub fn dot(&self, qp: &[f32], row: u32) -> f32 {
        let w = 4 + self.out;
        dot_query(qp, &self.codes.bytes()[row as usize * w..][..w])
    }

    /// The code row of record `row`.
    pub fn code(&self, row: usize) -> &[u8] {
        let w = 4 + self.out;
        &self.codes.bytes()[row * w..][..w]
    }
}

#[cfg(test)]
mod tests;

//! `whitening.col`: a PCA-whitening of a segment's embeddings, fitted on its
//! own rows when it is written (a merge refits on the merged rows).
//!
//! A generic embedding (EfficientNet-Lite0, trained to name objects) spends
//! most of its length on the few directions every image of a corpus shares:
//! two unrelated clip-art images reach cosine 0.87 on them. Whitening
//! subtracts the corpus mean and rescales each principal axis to unit
//! variance, so a cosine counts agreement in the directions where this
//! corpus's images differ from each other, and a copy stands out from its
//! corpus's look-alikes (Jégou & Chum, "Negative evidence and co-occurrences
//! in image retrieval", ECCV 2012; the issue measured Lite0 alone from µAP
//! 0.61 to 0.80 on a held-out set, and 0.706 to 0.85 on ../shared/corpus).
//! Whitened cosines have their own null tail (`search::calibrate`), and the
//! similarity an index reports stays on the raw cosine's scale.
//!
//! The fit: mean μ and the [`AXES`] leading eigenpairs (λᵢ, vᵢ) of the
//! centred covariance of at most 4 096 rows (`projection`'s sampling and
//! eigensolver), each axis scaled by 1/√(λᵢ + [`RIDGE`]·λ₀). The ridge keeps
//! the trailing axes, which a few hundred rows estimate poorly, from
//! dominating: with it the null tail of 256- and 700-row fits agreed
//! (cosine at P = 10⁻⁴: 0.724 and 0.718), which is why [`MIN_ROWS`] is 256.
//!
//! Layout: `1 + axes` rows of `inp` f32 values: the mean, then the scaled
//! axes, strongest first.

use std::path::Path;

use super::column::{self, Column, Count};
use super::projection::{sample_rows, second_moment, top_eigenpairs, used_dim};
use crate::descriptors::embedding::{dot_f32_f16, Embedding, EMBED_DIM};
use crate::error::IndexError;

/// File name in a segment folder.
pub const FILE: &str = "whitening.col";
const NAME: &str = "whitening";
/// Axes kept (fewer when the model is narrower).
pub const AXES: usize = 256;
/// Rows with an embedding a segment needs for a whitening.
pub const MIN_ROWS: usize = 256;
/// Each eigenvalue is floored by this fraction of the largest.
pub const RIDGE: f64 = 1e-2;

/// Whether `embs` get a whitening: at least [`MIN_ROWS`] rows with an
/// embedding, not all one row repeated (nothing would vary). Cheap: what
/// `compact` asks before rewriting a segment.
pub fn fits(embs: &[Embedding]) -> bool {
    let mut with = embs.iter().filter(|e| !e.is_none());
    let Some(first) = with.next() else {
        return false;
    };
    let (mut n, mut varies) = (1, false);
    for e in with {
        n += 1;
        varies |= e != first;
        if n >= MIN_ROWS && varies {
            return used_dim(embs) > 0;
        }
    }
    false
}

/// Fits the whitening of `embs` (None: see [`fits`]) as the column's rows:
/// the mean, then the scaled axes.
pub fn fit(embs: &[Embedding]) -> Option<(usize, Vec<f32>)> {
    if !fits(embs) {
        return None;
    }
    let inp = used_dim(embs);
    let rows: Vec<usize> = (0..embs.len()).filter(|&i| !embs[i].is_none()).collect();
    let mut x = sample_rows(embs, &rows, inp);
    let n = x.len() / inp;
    let mut mean = vec![0f64; inp];
    for r in x.chunks_exact(inp) {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    for r in x.chunks_exact_mut(inp) {
        for (v, &m) in r.iter_mut().zip(&mean) {
            *v -= m as f32;
        }
    }
    let pairs = top_eigenpairs(&second_moment(&x, inp), AXES.min(inp));
    let top = pairs.first().map_or(0.0, |p| p.0.max(0.0));
    if top <= 0.0 {
        return None;
    }
    let mut out: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    for (value, axis) in &pairs {
        let s = 1.0 / (value.max(0.0) + RIDGE * top).sqrt();
        out.extend(axis.iter().map(|&a| (a * s) as f32));
    }
    Some((inp, out))
}

/// Fits and writes `whitening.col` into segment folder `dir`; false (and
/// nothing written) when [`fit`] gives none.
pub fn write(dir: &Path, embs: &[Embedding]) -> Result<bool, IndexError> {
    let Some((inp, rows)) = fit(embs) else {
        return Ok(false);
    };
    column::write(
        &dir.join(FILE),
        NAME,
        (inp * 4) as u32,
        bytemuck::cast_slice(&rows),
    )?;
    Ok(true)
}

/// A segment's mapped, validated whitening.
pub struct Whitening {
    col: Column,
    /// Each axis's value at the mean (W·μ), so a row is whitened as
    /// W·x − W·μ, straight from its f16 values.
    shift: Vec<f32>,
    /// Embedding values read (a prefix of [`EMBED_DIM`]).
    pub inp: usize,
    /// Axes.
    pub axes: usize,
}

impl Whitening {
    /// Maps `whitening.col` of `dir` if there is one, checking its shape and
    /// values before any search reads them.
    pub fn find(dir: &Path) -> Result<Option<Whitening>, IndexError> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bad = |why: String| IndexError::corrupt(&path, why);
        let most = (column::HEADER + (AXES + 1) * EMBED_DIM * 4) as u64;
        let width = column::peek_width(&path, most)?;
        let inp = width as usize / 4;
        if width % 4 != 0 || inp == 0 || inp > EMBED_DIM {
            return Err(bad(format!(
                "row width {width} is not 1..{EMBED_DIM} f32 values"
            )));
        }
        let col = Column::open(&path, NAME, width, Count::AtMost((AXES + 1) as u64))?;
        let rows = col.bytes().len() / width as usize;
        if rows < 2 {
            return Err(bad("no mean and axes".into()));
        }
        let values: &[f32] = col.cast();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(bad("a value is not finite".into()));
        }
        // Every axis must have a finite, non-zero length, or whitened rows
        // would be zero or overflow and lose their similarity silently.
        let norm2 = |a: &[f32]| a.iter().map(|&x| x as f64 * x as f64).sum::<f64>();
        if let Some(i) = values[inp..]
            .chunks_exact(inp)
            .position(|a| !(norm2(a) > 0.0 && (norm2(a) as f32).is_finite()))
        {
            return Err(bad(format!("axis {i} has no finite, non-zero length")));
        }
        let (mean, axes) = values.split_at(inp);
        let shift = axes.chunks_exact(inp).map(|a| dot(a, mean)).collect();
        Ok(Some(Whitening {
            col,
            shift,
            inp,
            axes: rows - 1,
        }))
    }

    /// The scaled axes, `inp` values each.
    fn axes(&self) -> std::slice::ChunksExact<'_, f32> {
        self.col.cast::<f32>()[self.inp..].chunks_exact(self.inp)
    }

    /// The whitened `v` (its first `inp` values; missing ones read as 0)
    /// made unit length; None when it is zero (the mean itself) or overflows.
    pub fn apply(&self, v: impl IntoIterator<Item = f32>) -> Option<Vec<f32>> {
        let mut x: Vec<f32> = v.into_iter().take(self.inp).collect();
        x.resize(self.inp, 0.0);
        self.centred_unit(self.axes().map(|a| dot(a, &x)))
    }

    /// The whitened, unit-length row `e` (None: no embedding). Reads the
    /// f16 values as they are stored (`dot_f32_f16`, the graph search's
    /// kernel): a candidate is scored without converting its row first.
    pub fn apply_row(&self, e: &Embedding) -> Option<Vec<f32>> {
        if e.is_none() {
            return None;
        }
        self.centred_unit(self.axes().map(|a| dot_f32_f16(a, &e.0[..self.inp])))
    }

    /// Cosine of the whitened row `e` with a query whitened by
    /// [`Whitening::apply`] (None: no embedding).
    pub fn cosine(&self, qw: &[f32], e: &Embedding) -> Option<f32> {
        self.apply_row(e).map(|r| dot(&r, qw))
    }

    /// The projections `y` minus the mean's (`shift`), made unit length.
    fn centred_unit(&self, y: impl Iterator<Item = f32>) -> Option<Vec<f32>> {
        let mut y: Vec<f32> = y.zip(&self.shift).map(|(y, s)| y - s).collect();
        let n = y.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !(n > 0.0 && n.is_finite()) {
            return None;
        }
        y.iter_mut().for_each(|x| *x /= n);
        Some(y)
    }
}

/// Σ a·b in eight lanes (so the compiler vectorises it).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows that share one strong direction (what makes raw cosines of
    /// unrelated images high), plus a weaker own part each.
    fn corpus(n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let common: Vec<f32> = (0..64).map(|_| rnd()).collect();
        (0..n)
            .map(|_| {
                let v: Vec<f32> = common.iter().map(|&c| 3.0 * c + rnd()).collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter().map(|x| x / n).collect()
            })
            .collect()
    }

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
    }

    #[test]
    fn unrelated_rows_stop_looking_alike_and_copies_still_do() {
        let rows = corpus(400, 7);
        let embs: Vec<Embedding> = rows.iter().map(|r| Embedding::from_f32(r)).collect();
        let dir = tempfile::tempdir().unwrap();
        assert!(write(dir.path(), &embs).unwrap());
        let w = Whitening::find(dir.path()).unwrap().unwrap();
        assert_eq!((w.inp, w.axes), (64, 64));
        // Raw: every pair shares the common direction.
        let raw = cos(&rows[0], &rows[1]);
        assert!(raw > 0.8, "raw cosine of unrelated rows {raw}");
        let (a, b) = (
            w.apply_row(&embs[0]).unwrap(),
            w.apply_row(&embs[1]).unwrap(),
        );
        let white = cos(&a, &b);
        assert!(
            white.abs() < 0.3,
            "whitened cosine of unrelated rows {white}"
        );
        // A copy (row 0 with a little noise) stays close once whitened.
        let copy: Vec<f32> = rows[0]
            .iter()
            .enumerate()
            .map(|(i, x)| x + if i % 2 == 0 { 0.01 } else { -0.01 })
            .collect();
        let c = w.apply(copy.iter().copied()).unwrap();
        assert!(cos(&a, &c) > 0.9, "whitened copy {}", cos(&a, &c));
        // A shorter vector (another model's query) reads its missing values
        // as 0 instead of panicking.
        assert_eq!(w.apply(rows[0][..10].iter().copied()).unwrap().len(), 64);
    }

    #[test]
    fn too_few_rows_get_none_and_damage_is_an_error() {
        let rows = corpus(MIN_ROWS - 1, 3);
        let embs: Vec<Embedding> = rows.iter().map(|r| Embedding::from_f32(r)).collect();
        let dir = tempfile::tempdir().unwrap();
        assert!(!write(dir.path(), &embs).unwrap());
        assert!(Whitening::find(dir.path()).unwrap().is_none());
        // The error opening a file of these 64-value rows.
        let refused = |values: &[f32]| {
            column::write(
                &dir.path().join(FILE),
                NAME,
                64 * 4,
                bytemuck::cast_slice(values),
            )
            .unwrap();
            Whitening::find(dir.path()).err().unwrap().to_string()
        };
        // A value that is not finite.
        let mut bad = vec![0.5f32; 64 * 3];
        bad[70] = f32::NAN;
        let e = refused(&bad);
        assert!(e.contains("not finite"), "{e}");
        // A mean without axes.
        let e = refused(&[0.5f32; 64]);
        assert!(e.contains("no mean and axes"), "{e}");
        // An axis of zero length would zero every whitened row.
        let mut flat = vec![0.5f32; 64 * 3];
        flat[128..].fill(0.0);
        let e = refused(&flat);
        assert!(e.contains("axis 1 has no finite, non-zero length"), "{e}");
    }
}

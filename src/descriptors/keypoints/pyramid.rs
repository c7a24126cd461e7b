//! The image pyramid: area-average resampling between levels and the
//! [1 4 6 4 1] blur whose smoothed intensities the descriptor tests compare.
//! Every pass keeps the summation order of the plain formula, so values are
//! bit for bit those of the straightforward code.

use super::extend_with;

/// A grey image in f32, row-major.
pub(super) struct Plane {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) px: Vec<f32>,
}

/// `n` scaled by `s`, rounded, at least 1 (a level's side).
pub(super) fn scaled(n: usize, s: f32) -> usize {
    ((n as f32 * s).round() as usize).max(1)
}

/// Separable [1 4 6 4 1]/16 blur (σ ≈ 1): the tests compare smoothed
/// intensities, so one noisy pixel does not flip a bit.
///
/// Each pass writes its rows in one sweep over equal-length slices (so the
/// compiler vectorises it); the sums keep the order of the plain formula:
/// `K[0]·p[-2] + … + K[4]·p[2]` across, `0 + K[0]·p[-2] + … + K[4]·p[2]`
/// down (an accumulation started from zero).
#[inline(always)] // see `extract_avx2`
pub(super) fn blur(p: &Plane, tmp: &mut Vec<f32>) -> Plane {
    const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let (w, h) = (p.w, p.h);
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    tmp.clear();
    for y in 0..h {
        let row = &p.px[y * w..][..w];
        // Edges clamp; the interior needs no clamping (the hot loop).
        let edge = |x: usize| -> f32 {
            (0..5)
                .map(|k| K[k] * row[clamp(x as isize + k as isize - 2, w)])
                .sum()
        };
        if w < 5 {
            tmp.extend((0..w).map(edge));
            continue;
        }
        let n = w - 4;
        let (a, b, c, d, e) = (
            &row[..n],
            &row[1..][..n],
            &row[2..][..n],
            &row[3..][..n],
            &row[4..][..n],
        );
        tmp.extend([edge(0), edge(1)]);
        extend_with(tmp, n, |x| {
            K[0] * a[x] + K[1] * b[x] + K[2] * c[x] + K[3] * d[x] + K[4] * e[x]
        });
        tmp.extend([edge(w - 2), edge(w - 1)]);
    }
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let src = |k: isize| &tmp[clamp(y as isize + k - 2, h) * w..][..w];
        let (a, b, c, d, e) = (src(0), src(1), src(2), src(3), src(4));
        extend_with(&mut out, w, |x| {
            0.0 + K[0] * a[x] + K[1] * b[x] + K[2] * c[x] + K[3] * d[x] + K[4] * e[x]
        });
    }
    Plane { w, h, px: out }
}

/// Area-average resampling (each output pixel the mean of the source area it
/// covers): the right filter for shrinking, and exact at integer ratios.
///
/// Horizontal pass into `tmp`, then vertical. Sums run over each output's
/// taps in source order (across: `w₀·p₀ + w₁·p₁ + …`; down: accumulated from
/// zero), the order of the plain formulation, so values are bit-identical.
#[inline(always)] // see `extract_avx2`
pub(super) fn resize_area(
    src: &[f32],
    sw: usize,
    sh: usize,
    dw: usize,
    dh: usize,
    tmp: &mut Vec<f32>,
) -> Plane {
    if (sw, sh) == (dw, dh) {
        return Plane {
            w: sw,
            h: sh,
            px: src.to_vec(),
        };
    }
    let hw = AreaWeights::new(sw, dw);
    let vw = AreaWeights::new(sh, dh);
    tmp.clear();
    tmp.reserve(dw * sh);
    resize_rows(src, sw, sh, &hw, tmp);
    let mut out = Vec::with_capacity(dw * dh);
    for i in 0..dh {
        let (first, ws) = vw.taps(i);
        let row = |k: usize| &tmp[(first + k) * dw..][..dw];
        match *ws {
            [w0] => {
                let a = row(0);
                extend_with(&mut out, dw, |x| 0.0 + w0 * a[x]);
            }
            [w0, w1] => {
                let (a, b) = (row(0), row(1));
                extend_with(&mut out, dw, |x| 0.0 + w0 * a[x] + w1 * b[x]);
            }
            [w0, w1, w2] => {
                let (a, b, c) = (row(0), row(1), row(2));
                extend_with(&mut out, dw, |x| 0.0 + w0 * a[x] + w1 * b[x] + w2 * c[x]);
            }
            _ => {
                let start = out.len();
                let a = row(0);
                extend_with(&mut out, dw, |x| 0.0 + ws[0] * a[x]);
                for (k, &wt) in ws.iter().enumerate().skip(1) {
                    let o = &mut out[start..];
                    o.iter_mut().zip(row(k)).for_each(|(o, &s)| *o += wt * s);
                }
            }
        }
    }
    Plane {
        w: dw,
        h: dh,
        px: out,
    }
}

/// Horizontal area pass, appending the `sh` output rows to `tmp`.
///
/// Rows go 8 at a time, interleaved, so each tap loads the 8 rows' values
/// side by side and each output's sum runs for all 8 at once (vectorised),
/// in the same per-row order. Every output sums the same number of taps: the
/// spare ones read an all-zero column with weight −0.0 and so add exactly
/// −0.0, which leaves any sum as it was.
#[inline(always)] // see `extract_avx2`
fn resize_rows(src: &[f32], sw: usize, sh: usize, hw: &AreaWeights, tmp: &mut Vec<f32>) {
    const L: usize = 8;
    let dw = hw.first.len();
    let t = hw.max_taps();
    let (mut idx, mut wts) = (Vec::with_capacity(dw * t), Vec::with_capacity(dw * t));
    for i in 0..dw {
        let (first, ws) = hw.taps(i);
        for k in 0..t {
            idx.push(if k < ws.len() { first + k } else { sw });
            wts.push(if k < ws.len() { ws[k] } else { -0.0 });
        }
    }
    let mut il = vec![[0f32; L]; sw + 1]; // column sw stays zero
    let mut acc = vec![[0f32; L]; dw];
    for y0 in (0..sh).step_by(L) {
        let rows = L.min(sh - y0); // spare lanes hold stale rows, dropped
        for r in 0..rows {
            for (c, &v) in il.iter_mut().zip(&src[(y0 + r) * sw..][..sw]) {
                c[r] = v;
            }
        }
        for (a, (ix, ws)) in acc
            .iter_mut()
            .zip(idx.chunks_exact(t).zip(wts.chunks_exact(t)))
        {
            let c = il[ix[0]];
            let mut s: [f32; L] = std::array::from_fn(|r| ws[0] * c[r]);
            for (&j, &wt) in ix[1..].iter().zip(&ws[1..]) {
                let c = il[j];
                s = std::array::from_fn(|r| s[r] + wt * c[r]);
            }
            *a = s;
        }
        for r in 0..rows {
            tmp.extend(acc.iter().map(|a| a[r]));
        }
    }
}

/// Per output index: first source index and the weights of the sources it
/// covers (summing to 1), stored flat.
struct AreaWeights {
    first: Vec<usize>,
    /// Output i's weights are `w[start[i]..start[i + 1]]`.
    start: Vec<usize>,
    w: Vec<f32>,
}

impl AreaWeights {
    fn new(n: usize, m: usize) -> Self {
        let r = n as f64 / m as f64;
        let mut aw = AreaWeights {
            first: Vec::with_capacity(m),
            start: Vec::with_capacity(m + 1),
            w: Vec::with_capacity(m + n + 1),
        };
        aw.start.push(0);
        for i in 0..m {
            let (a, b) = (i as f64 * r, ((i + 1) as f64 * r).min(n as f64));
            let first = a.floor() as usize;
            let last = (b.ceil() as usize).min(n).max(first + 1);
            aw.w.extend((first..last).map(|j| {
                let cover = (b.min(j as f64 + 1.0) - a.max(j as f64)).max(0.0);
                (cover / (b - a)) as f32
            }));
            aw.first.push(first);
            aw.start.push(aw.w.len());
        }
        aw
    }

    fn taps(&self, i: usize) -> (usize, &[f32]) {
        (self.first[i], &self.w[self.start[i]..self.start[i + 1]])
    }

    fn max_taps(&self) -> usize {
        self.start
            .windows(2)
            .map(|s| s[1] - s[0])
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_weights_sum_to_one() {
        for (n, m) in [(10, 3), (1024, 384), (7, 7), (5, 4)] {
            let aw = AreaWeights::new(n, m);
            for i in 0..m {
                assert!((aw.taps(i).1.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }
}

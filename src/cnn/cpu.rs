//! CPU reference of every layer: ungrouped convolutions as matrix products
//! (the `gemm` crate), the rest as plain loops written so the compiler
//! vectorises the inner row loops, compiled twice (baseline and AVX2 + FMA,
//! picked at run time); images of a batch spread over cores with rayon.

use rayon::prelude::*;

use super::model::{Conv, Layer, Network};
use super::Tensor;

/// The pooled layer's feature map for every image of the batch.
pub fn forward(net: &Network, x: &Tensor) -> Tensor {
    let outs: Vec<(Vec<f32>, usize, usize, usize)> = (0..x.n)
        .into_par_iter()
        .map(|i| forward_one(net, x.image(i).to_vec(), x.c, x.h, x.w))
        .collect();
    let (_, c, h, w) = outs[0];
    let mut t = Tensor::zeros(x.n, c, h, w);
    for (i, (o, ..)) in outs.into_iter().enumerate() {
        t.data[i * c * h * w..(i + 1) * c * h * w].copy_from_slice(&o);
    }
    t
}

/// Embeddings of a batch: GeM then L2, or GeM, the projection, then L2
/// when the network has one (SSCD projects the raw pooled vector).
pub fn embed(net: &Network, x: &Tensor) -> Vec<Vec<f32>> {
    let f = forward(net, x);
    match &net.projection {
        None => super::gem_l2(&f, net.gem_p, net.gem_clamp),
        Some(p) => super::gem(&f, net.gem_p, net.gem_clamp)
            .iter()
            .map(|v| project(p, v))
            .collect(),
    }
}

/// The projection of a pooled vector (a 1×1 conv of a C×1×1 map), L2-normalised.
pub fn project(p: &Conv, pooled: &[f32]) -> Vec<f32> {
    let (mut y, ..) = conv(p, pooled, 1, 1);
    super::l2_normalize(&mut y);
    y
}

/// ImageNet logits (global average pool + classifier) of a feature map batch.
pub fn logits(net: &Network, features: &Tensor) -> Option<Vec<Vec<f32>>> {
    let fc = net.classifier.as_ref()?;
    let hw = (features.h * features.w) as f32;
    Some(
        (0..features.n)
            .map(|i| {
                let img = features.image(i);
                let pooled: Vec<f32> = img
                    .chunks(features.h * features.w)
                    .map(|c| c.iter().sum::<f32>() / hw)
                    .collect();
                (0..fc.cout)
                    .map(|o| {
                        fc.bias[o]
                            + fc.weight[o * fc.cin..(o + 1) * fc.cin]
                                .iter()
                                .zip(&pooled)
                                .map(|(w, x)| w * x)
                                .sum::<f32>()
                    })
                    .collect()
            })
            .collect(),
    )
}

fn forward_one(
    net: &Network,
    input: Vec<f32>,
    c: usize,
    h: usize,
    w: usize,
) -> (Vec<f32>, usize, usize, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features this copy was compiled for.
            return unsafe { forward_avx2(net, input, c, h, w) };
        }
    }
    forward_generic(net, input, c, h, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2(
    net: &Network,
    input: Vec<f32>,
    c: usize,
    h: usize,
    w: usize,
) -> (Vec<f32>, usize, usize, usize) {
    forward_generic(net, input, c, h, w)
}

#[inline(always)]
fn forward_generic(
    net: &Network,
    input: Vec<f32>,
    c: usize,
    h: usize,
    w: usize,
) -> (Vec<f32>, usize, usize, usize) {
    // Outputs a later layer reads again (residual sources, shortcut inputs)
    // are kept; others dropped.
    let kept: std::collections::HashSet<usize> =
        net.layers.iter().filter_map(Layer::reads).collect();
    let mut saved: std::collections::HashMap<usize, (Vec<f32>, usize, usize, usize)> =
        Default::default();
    let (mut x, mut c, mut h, mut w) = (input, c, h, w);
    for (i, l) in net.layers.iter().enumerate() {
        match l {
            Layer::Conv(cv) => {
                let (y, oh, ow) = match cv.from {
                    Some(f) => {
                        let (src, _, sh, sw) = &saved[&f];
                        conv(cv, src, *sh, *sw)
                    }
                    None => conv(cv, &x, h, w),
                };
                (x, c, h, w) = (y, cv.cout, oh, ow);
            }
            Layer::Add { from, act } => {
                let r = &saved[from].0;
                x.iter_mut()
                    .zip(r)
                    .for_each(|(a, b)| *a = act.apply(*a + b));
            }
            &Layer::MaxPool { k, stride, pad } => {
                let (y, oh, ow) = max_pool(&x, c, h, w, k, stride, pad);
                (x, h, w) = (y, oh, ow);
            }
        }
        if kept.contains(&i) {
            saved.insert(i, (x.clone(), c, h, w));
        }
    }
    (x, c, h, w)
}

/// k×k max pooling of a C×H×W map, −∞ outside it.
pub fn max_pool(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> (Vec<f32>, usize, usize) {
    let (oh, ow) = (
        super::model::pool_out(h, k, stride, pad),
        super::model::pool_out(w, k, stride, pad),
    );
    // Separable: the max over each row's k columns first (h × ow), then
    // the max of k of those rows, a contiguous (vectorised) row loop.
    let mut out = vec![f32::NEG_INFINITY; c * oh * ow];
    let mut rows = vec![f32::NEG_INFINITY; h * ow];
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        rows.fill(f32::NEG_INFINITY);
        for (src, hrow) in plane.chunks(w).zip(rows.chunks_mut(ow)) {
            for kx in 0..k {
                let off = kx as isize - pad as isize;
                let cols = inside_columns(w, ow, off, stride);
                if cols.is_empty() {
                    continue;
                }
                let first = (cols.start as isize * stride as isize + off) as usize;
                hrow[cols]
                    .iter_mut()
                    .zip(src[first..].iter().step_by(stride))
                    .for_each(|(m, v)| *m = m.max(*v));
            }
        }
        let o = &mut out[ch * oh * ow..(ch + 1) * oh * ow];
        for (oy, orow) in o.chunks_mut(ow).enumerate() {
            let y0 = (oy * stride) as isize - pad as isize;
            for iy in y0.max(0)..(y0 + k as isize).min(h as isize) {
                let hrow = &rows[iy as usize * ow..(iy as usize + 1) * ow];
                orow.iter_mut().zip(hrow).for_each(|(m, v)| *m = m.max(*v));
            }
        }
    }
    (out, oh, ow)
}

/// One convolution of a C×H×W input (bias and activation fused).
///
/// Ungrouped convolutions are matrix products (the `gemm` crate, whose
/// AVX-512, AVX2/FMA and NEON kernels it picks at run time): a 1×1 stride-1
/// convolution is `W[cout × cin] · X[cin × hw]` as it lies in memory; any
/// other is the same product over an im2col copy of the input, built a band
/// of output rows at a time so the copy stays small. The output starts as
/// the bias, which the product accumulates onto (no separate bias pass).
/// Grouped and depthwise convolutions (little arithmetic per byte) run as
/// register-blocked loops over a padded copy of each input plane
/// (`depthwise`) or the direct row loop.
#[inline(always)]
pub fn conv(cv: &Conv, x: &[f32], h: usize, w: usize) -> (Vec<f32>, usize, usize) {
    let (pad, oh, ow) = cv.padding.resolve(h, w, cv.k, cv.stride);
    if cv.groups > 1 && cv.cin == cv.groups {
        // Bias and activation applied as it stores its outputs.
        let mut out = Vec::with_capacity(cv.cout * oh * ow);
        depthwise(cv, x, h, w, pad, oh, ow, &mut out);
        debug_assert_eq!(out.len(), cv.cout * oh * ow);
        return (out, oh, ow);
    }
    let mut out = Vec::with_capacity(cv.cout * oh * ow);
    for &b in &cv.bias {
        out.resize(out.len() + oh * ow, b);
    }
    if cv.groups > 1 {
        direct(cv, x, h, w, pad, oh, ow, &mut out);
        apply_act(cv.act, &mut out, oh * ow, 0..oh * ow);
    } else if cv.k == 1 && cv.stride == 1 && pad == [0; 4] {
        let hw = h * w;
        sgemm_acc(cv.cout, cv.cin, hw, &cv.weight, x, hw, &mut out, hw);
        apply_act(cv.act, &mut out, hw, 0..hw);
    } else {
        im2col_gemm(cv, x, h, w, pad, oh, ow, &mut out);
    }
    (out, oh, ow)
}

/// Applies `act` to the columns `cols` of every row (of length `row`) of `out`.
#[inline(always)]
fn apply_act(act: super::model::Act, out: &mut [f32], row: usize, cols: std::ops::Range<usize>) {
    if act == super::model::Act::None {
        return;
    }
    for r in out.chunks_mut(row) {
        r[cols.clone()].iter_mut().for_each(|v| *v = act.apply(*v));
    }
}

/// `c[m × n] += a[m × k] · b[k × n]`, all row-major: `a` dense, `b` with row
/// stride `ldb`, `c` with row stride `ldc` (so a product can fill a band of
/// columns of a wider output).
#[allow(clippy::too_many_arguments)]
fn sgemm_acc(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(a.len() >= m * k, "weights shorter than cout × cin");
    assert!(
        k == 0 || b.len() >= (k - 1) * ldb + n,
        "input shorter than the product reads"
    );
    assert!(
        m == 0 || c.len() >= (m - 1) * ldc + n,
        "output shorter than the product writes"
    );
    // SAFETY: the asserts above bound every index the product touches:
    // a[i·k + p], b[p·ldb + j], c[i·ldc + j] for i < m, p < k, j < n; the
    // three slices do not overlap (one is borrowed mutably). The crate's
    // arguments are (m, n, k, dst, its column and row strides, read dst,
    // lhs and rhs likewise, then dst := alpha·dst + beta·lhs·rhs).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            true,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            ldb as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The output columns `ox < ow` whose input column `ox·s + off` lies inside
/// a row of width `w` (a window's tap `off` columns from its left edge);
/// `lo..lo` when none does, with `lo ≤ ow`.
fn inside_columns(w: usize, ow: usize, off: isize, s: usize) -> std::ops::Range<usize> {
    let lo = if off < 0 {
        off.unsigned_abs().div_ceil(s).min(ow)
    } else {
        0
    };
    let hi = if (w as isize) > off {
        (((w as isize - off - 1) / s as isize) as usize + 1).min(ow)
    } else {
        0
    };
    lo..hi.max(lo)
}

/// Floats an im2col band may hold (4 MiB): bands of output rows are sized
/// to this, so a 7×7 stem at 288² needs 4 MiB, not 12.
const IM2COL_BAND: usize = 1 << 20;

/// An ungrouped k×k (or strided) convolution as GEMM over im2col bands:
/// each band holds, for a run of output rows, one row per (input channel,
/// tap) with the input value every output pixel reads (0 in the padding).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn im2col_gemm(
    cv: &Conv,
    x: &[f32],
    h: usize,
    w: usize,
    pad: [usize; 4],
    oh: usize,
    ow: usize,
    out: &mut [f32],
) {
    let (k, s) = (cv.k, cv.stride);
    let kk = cv.cin * k * k;
    let rows_per_band = (IM2COL_BAND / (kk * ow)).clamp(1, oh);
    let mut col = vec![0f32; kk * rows_per_band * ow];
    let (pt, pl) = (pad[0] as isize, pad[1] as isize);
    for oy0 in (0..oh).step_by(rows_per_band) {
        let rows = rows_per_band.min(oh - oy0);
        let n = rows * ow;
        for (r, dst) in col.chunks_mut(n).take(kk).enumerate() {
            let (ci, ky, kx) = (r / (k * k), r / k % k, r % k);
            let plane = &x[ci * h * w..(ci + 1) * h * w];
            for (dy, drow) in dst.chunks_mut(ow).enumerate() {
                let iy = ((oy0 + dy) * s + ky) as isize - pt;
                if iy < 0 || iy >= h as isize {
                    drow.fill(0.0);
                    continue;
                }
                let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                // Output columns lo..hi read inside the row; the rest read padding.
                let std::ops::Range { start: lo, end: hi } =
                    inside_columns(w, ow, kx as isize - pl, s);
                drow[..lo].fill(0.0);
                drow[hi..].fill(0.0);
                let first = (lo * s + kx) as isize - pl;
                if hi > lo && s == 1 {
                    let first = first as usize;
                    drow[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                } else if hi > lo {
                    let taken = src[first as usize..].iter().step_by(s);
                    drow[lo..hi]
                        .iter_mut()
                        .zip(taken)
                        .for_each(|(d, v)| *d = *v);
                }
            }
        }
        sgemm_acc(
            cv.cout,
            kk,
            n,
            &cv.weight,
            &col,
            n,
            &mut out[oy0 * ow..],
            oh * ow,
        );
        apply_act(cv.act, out, oh * ow, oy0 * ow..oy0 * ow + n);
    }
}

/// A convolution with one input channel per group (depthwise, any channel
/// multiplier). Each input plane is copied once, zero-padded, into `s²`
/// phase planes (rows and columns split by their remainder mod the stride),
/// so that every tap reads one contiguous run of the output laid out at the
/// phase planes' row width (columns past `ow` are scratch), summed in
/// register blocks ([`depthwise_taps`]); each output row is then appended
/// to `out` with bias and activation applied.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn depthwise(
    cv: &Conv,
    x: &[f32],
    h: usize,
    w: usize,
    pad: [usize; 4],
    oh: usize,
    ow: usize,
    out: &mut Vec<f32>,
) {
    let (k, s) = (cv.k, cv.stride);
    // The padded input the outputs read: rows 0..hp, columns 0..wp.
    let (hp, wp) = ((oh - 1) * s + k, (ow - 1) * s + k);
    let (hq, wq) = (hp.div_ceil(s), wp.div_ceil(s));
    // One spare row: a tap's last garbage columns run past the plane.
    let plane = (hq + 1) * wq;
    let mut phases = vec![0f32; s * s * plane];
    let mut acc = vec![0f32; oh * wq];
    let mut taps = Vec::with_capacity(k * k);
    let mult = cv.cout / cv.cin;
    // Input rows and columns inside the image, as padded coordinates.
    let rows = pad[0]..(pad[0] + h).min(hp);
    let cols = pad[1]..(pad[1] + w).min(wp);
    for ci in 0..cv.cin {
        let src = &x[ci * h * w..(ci + 1) * h * w];
        // Positions outside the image stay 0 from the first fill.
        for py in rows.clone() {
            let row = &src[(py - pad[0]) * w..(py - pad[0] + 1) * w];
            let base = (py % s) * s * plane + (py / s) * wq;
            if s == 1 {
                phases[base + cols.start..base + cols.end]
                    .copy_from_slice(&row[..cols.end - cols.start]);
            } else {
                // Columns of one remainder go to one phase plane, in order.
                for px0 in cols.start..(cols.start + s).min(cols.end) {
                    let dst = base + (px0 % s) * plane + px0 / s;
                    let taken = row[px0 - pad[1]..cols.end - pad[1]].iter().step_by(s);
                    phases[dst..]
                        .iter_mut()
                        .zip(taken)
                        .for_each(|(d, v)| *d = *v);
                }
            }
        }
        for co in ci * mult..(ci + 1) * mult {
            taps.clear();
            for ky in 0..k {
                for kx in 0..k {
                    let wv = cv.weight[(co * k + ky) * k + kx];
                    let start = ((ky % s) * s + kx % s) * plane + (ky / s) * wq + kx / s;
                    taps.push((wv, start));
                }
            }
            depthwise_taps(&taps, &phases, &mut acc);
            // Output channels come in order: append their rows.
            let (b, act) = (cv.bias[co], cv.act);
            for arow in acc.chunks(wq) {
                out.extend(arow[..ow].iter().map(|a| act.apply(*a + b)));
            }
        }
    }
}

/// `acc[j] = Σ w · phases[start + j]` over the taps `(w, start)`, in tap
/// order (the same sums, in the same order, as one pass per tap). Blocks
/// of 32 outputs, then 8, then single ones, stay in registers across every
/// tap, so a tap costs one load and one multiply-add per output instead of
/// a pass over the whole accumulator.
#[inline(always)]
fn depthwise_taps(taps: &[(f32, usize)], phases: &[f32], acc: &mut [f32]) {
    let j = taps_blocks::<32>(taps, phases, acc, 0);
    let j = taps_blocks::<8>(taps, phases, acc, j);
    taps_blocks::<1>(taps, phases, acc, j);
}

/// `depthwise_taps` over the whole blocks of `B` outputs from `acc[from..]`;
/// returns where the first incomplete block starts.
#[inline(always)]
fn taps_blocks<const B: usize>(
    taps: &[(f32, usize)],
    phases: &[f32],
    acc: &mut [f32],
    from: usize,
) -> usize {
    let blocks = acc[from..].chunks_exact_mut(B);
    let done = from + blocks.len() * B;
    for (bi, block) in blocks.enumerate() {
        let j = from + bi * B;
        let mut a = [0f32; B];
        for &(wv, start) in taps {
            let src: &[f32; B] = phases[start + j..start + j + B]
                .try_into()
                .expect("a block of B floats");
            for t in 0..B {
                a[t] += wv * src[t];
            }
        }
        block.copy_from_slice(&a);
    }
    done
}

/// Any other convolution (grouped, depthwise, strided, k×k): for each
/// (output channel, input channel of its group, tap), add a weighted
/// input row to the output row, only over the columns inside the image.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn direct(
    cv: &Conv,
    x: &[f32],
    h: usize,
    w: usize,
    pad: [usize; 4],
    oh: usize,
    ow: usize,
    out: &mut [f32],
) {
    let (k, s) = (cv.k, cv.stride);
    let cpg_in = cv.cin / cv.groups;
    let cpg_out = cv.cout / cv.groups;
    let (pt, pl) = (pad[0] as isize, pad[1] as isize);
    for co in 0..cv.cout {
        let g = co / cpg_out;
        let o = &mut out[co * oh * ow..(co + 1) * oh * ow];
        for cig in 0..cpg_in {
            let ci = g * cpg_in + cig;
            let xc = &x[ci * h * w..(ci + 1) * h * w];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = cv.weight[((co * cpg_in + cig) * k + ky) * k + kx];
                    let off = kx as isize - pl;
                    let std::ops::Range { start: lo, end: hi } = inside_columns(w, ow, off, s);
                    if lo >= hi {
                        continue;
                    }
                    for oy in 0..oh {
                        let iy = (oy * s + ky) as isize - pt;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let row = &xc[iy as usize * w..(iy as usize + 1) * w];
                        let orow = &mut o[oy * ow..(oy + 1) * ow];
                        if s == 1 {
                            let start = (lo as isize + off) as usize;
                            orow[lo..hi]
                                .iter_mut()
                                .zip(&row[start..start + (hi - lo)])
                                .for_each(|(o, v)| *o += wv * v);
                        } else {
                            for (ox, o) in orow.iter_mut().enumerate().take(hi).skip(lo) {
                                *o += wv * row[((ox * s) as isize + off) as usize];
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{Act, Padding};
    use super::*;

    fn rnd(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// The textbook loop: every output, every tap, bounds checked.
    fn naive(cv: &Conv, x: &[f32], h: usize, w: usize) -> (Vec<f32>, usize, usize) {
        let (pad, oh, ow) = cv.padding.resolve(h, w, cv.k, cv.stride);
        let (cpi, cpo) = (cv.cin / cv.groups, cv.cout / cv.groups);
        let mut out = vec![0f32; cv.cout * oh * ow];
        for co in 0..cv.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = cv.bias[co] as f64;
                    for cig in 0..cpi {
                        let ci = co / cpo * cpi + cig;
                        for ky in 0..cv.k {
                            for kx in 0..cv.k {
                                let iy = (oy * cv.stride + ky) as isize - pad[0] as isize;
                                let ix = (ox * cv.stride + kx) as isize - pad[1] as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    acc += cv.weight[((co * cpi + cig) * cv.k + ky) * cv.k + kx]
                                        as f64
                                        * x[(ci * h + iy as usize) * w + ix as usize] as f64;
                                }
                            }
                        }
                    }
                    out[(co * oh + oy) * ow + ox] = cv.act.apply(acc as f32);
                }
            }
        }
        (out, oh, ow)
    }

    #[test]
    fn every_conv_shape_matches_the_naive_loop() {
        // (cin, cout, k, stride, groups, padding, h, w)
        let cases = [
            (3, 8, 3, 2, 1, Padding::TfSame, 17, 12),
            (8, 8, 3, 1, 8, Padding::TfSame, 9, 9),
            (6, 6, 5, 2, 6, Padding::TfSame, 10, 7),
            (7, 5, 1, 1, 1, Padding::TfSame, 6, 5),
            (4, 6, 3, 1, 2, Padding::Explicit([1, 1, 1, 1]), 8, 6),
            (3, 4, 7, 2, 1, Padding::Explicit([3, 3, 3, 3]), 15, 16),
            (9, 3, 1, 2, 1, Padding::Explicit([0, 0, 0, 0]), 7, 7),
            // 64·9 × 64² floats: im2col in several bands.
            (64, 4, 3, 1, 1, Padding::Explicit([1, 1, 1, 1]), 64, 64),
            // Depthwise with a channel multiplier of 2, stride 2.
            (4, 8, 3, 2, 4, Padding::Explicit([1, 1, 1, 1]), 9, 8),
            (5, 5, 3, 3, 5, Padding::TfSame, 11, 10),
            (3, 6, 5, 2, 1, Padding::Explicit([2, 1, 0, 3]), 13, 9),
        ];
        for (i, &(cin, cout, k, stride, groups, padding, h, w)) in cases.iter().enumerate() {
            let cv = Conv {
                name: format!("c{i}"),
                cin,
                cout,
                k,
                stride,
                groups,
                padding,
                act: [Act::Relu6, Act::None, Act::Relu][i % 3],
                weight: rnd(cout * cin / groups * k * k, i as u32 + 1),
                bias: rnd(cout, i as u32 + 100),
                from: None,
            };
            let x = rnd(cin * h * w, i as u32 + 7);
            let (a, ah, aw) = conv(&cv, &x, h, w);
            let (b, bh, bw) = naive(&cv, &x, h, w);
            assert_eq!((ah, aw), (bh, bw));
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() < 1e-4, "case {i}: {p} vs {q}");
            }
        }
    }

    #[test]
    fn max_pool_matches_the_naive_window_max() {
        for (i, &(c, h, w, k, stride, pad)) in [
            (3, 9, 8, 3, 2, 1),
            (2, 7, 7, 3, 1, 1),
            (4, 10, 13, 2, 2, 0),
            (1, 5, 6, 3, 3, 1),
        ]
        .iter()
        .enumerate()
        {
            let x = rnd(c * h * w, i as u32 + 31);
            let (y, oh, ow) = max_pool(&x, c, h, w, k, stride, pad);
            for ch in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut m = f32::NEG_INFINITY;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * stride + ky) as isize - pad as isize;
                                let ix = (ox * stride + kx) as isize - pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    m = m.max(x[(ch * h + iy as usize) * w + ix as usize]);
                                }
                            }
                        }
                        assert_eq!(y[(ch * oh + oy) * ow + ox], m, "case {i} at {ch},{oy},{ox}");
                    }
                }
            }
        }
    }
}

//! CPU reference of every layer: ungrouped convolutions as matrix products
//! (`gemm`, on the `gemm` crate or this crate's AVX-512 tiles, `avx512`;
//! 3×3 stride-1 ones by Winograd's algorithm, `winograd`; those of a
//! quantised model in int8, `int8`), grouped and depthwise ones as
//! register-blocked loops (`grouped`; depthwise ones on maps up to 64 × 64
//! eight channels to a vector, `lanes`), pooling here; the forward pass,
//! its fusions and its groups of images in `forward`. The loops are
//! written so the compiler vectorises them and compiled twice (baseline
//! and AVX2 + FMA, picked at run time); groups of a batch's images spread
//! over cores with rayon.

use super::model::{Act, Conv, Network};
use super::Tensor;

mod avx512;
mod forward;
mod gemm;
mod grouped;
pub mod int8;
mod lanes;
mod winograd;

pub use forward::forward;
pub use int8::{has_vnni, PackedInt8};
pub use winograd::WinogradWeights;

/// How this engine runs `net`, for the `device:` line and benches:
/// "int8, AVX-512 VNNI" or "int8, portable kernel" for a quantised model
/// (its [`crate::cnn::Int8Conv`]s), else "f32".
pub fn precision_label(net: &Network) -> &'static str {
    match net.is_int8() {
        true if has_vnni() => "int8, AVX-512 VNNI",
        true => "int8, portable kernel",
        false => "f32",
    }
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

/// One convolution of a C×H×W input (bias and activation fused):
/// ungrouped ones as matrix products (`gemm`), grouped and depthwise
/// ones as register-blocked loops (`grouped`).
#[inline(always)]
pub fn conv(cv: &Conv, x: &[f32], h: usize, w: usize) -> (Vec<f32>, usize, usize) {
    let g = Geometry::of(cv, h, w);
    let out = if let (1, Some(q)) = (cv.groups, &cv.int8) {
        int8::ungrouped(cv, q, x, g)
    } else if cv.groups == 1 {
        gemm::ungrouped(cv, x, g, None)
    } else {
        grouped::grouped(cv, x, g)
    };
    debug_assert_eq!(out.len(), cv.cout * g.oh * g.ow);
    (out, g.oh, g.ow)
}

/// The planes one convolution reads and writes: its input (`h` × `w`),
/// the zeros it reads around it (`pad`: top, left, bottom, right, as
/// [`crate::cnn::model::Padding::resolve`] gives them) and its output
/// (`oh` × `ow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Geometry {
    pub h: usize,
    pub w: usize,
    pub pad: [usize; 4],
    pub oh: usize,
    pub ow: usize,
}

impl Geometry {
    /// Of `cv` on an `h` × `w` input.
    pub fn of(cv: &Conv, h: usize, w: usize) -> Geometry {
        let (pad, oh, ow) = cv.padding.resolve(h, w, cv.k, cv.stride);
        Geometry { h, w, pad, oh, ow }
    }
}

/// Applies `act` to the columns `cols` of every row (of length `row`) of `out`.
#[inline(always)]
fn apply_act(act: Act, out: &mut [f32], row: usize, cols: std::ops::Range<usize>) {
    if act == Act::None {
        return;
    }
    for r in out.chunks_mut(row) {
        add_bias_act(&mut r[cols.clone()], 0.0, act);
    }
}

/// `v = act(v + bias)` over a slice: the one epilogue of every layer kind.
/// The activation is matched once, outside the loop, so each arm is a plain
/// vector loop (a per-element match kept the stores scalar).
#[inline(always)]
fn add_bias_act(v: &mut [f32], bias: f32, act: Act) {
    let v = v.iter_mut();
    match act {
        Act::None => v.for_each(|v| *v += bias),
        Act::Relu => v.for_each(|v| *v = (*v + bias).max(0.0)),
        Act::Relu6 => v.for_each(|v| *v = (*v + bias).clamp(0.0, 6.0)),
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

#[cfg(test)]
mod tests {
    use super::super::model::Padding;
    use super::*;

    /// `n` test values in −1..1 from an xorshift of `seed` (shared by the
    /// kernels' tests in this module's children).
    pub(super) fn rnd(n: usize, seed: u32) -> Vec<f32> {
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

    /// A float convolution with seeded weights and biases, TF-"SAME"
    /// padding and ReLU6 (a test sets what it varies over it:
    /// `Conv { padding, act, ..random_conv(..) }`).
    pub(super) fn random_conv(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        seed: u32,
    ) -> Conv {
        Conv {
            name: format!("c{seed}"),
            cin,
            cout,
            k,
            stride,
            groups,
            padding: Padding::TfSame,
            act: Act::Relu6,
            weight: rnd(cout * cin / groups * k * k, seed),
            bias: rnd(cout, seed + 100),
            from: None,
            int8: None,
            winograd: Default::default(),
        }
    }

    /// The textbook loop: every output, every tap, bounds checked.
    pub(super) fn naive(cv: &Conv, x: &[f32], h: usize, w: usize) -> (Vec<f32>, usize, usize) {
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
            // 1×1 over 2 500 columns with 96 outputs: several product
            // bands (GEMM_BAND / 96 = 688 columns), the last one partial.
            (5, 96, 1, 1, 1, Padding::Explicit([0, 0, 0, 0]), 50, 50),
            // Depthwise, 5×5, on a 7 × 7 plane (the vector tail) and 8 × 8.
            (3, 3, 5, 1, 3, Padding::TfSame, 7, 7),
            (2, 2, 5, 2, 2, Padding::TfSame, 8, 8),
            // No output channels (a model file may declare it): empty, no panic.
            (3, 0, 1, 1, 1, Padding::Explicit([0, 0, 0, 0]), 4, 4),
        ];
        for (i, &(cin, cout, k, stride, groups, padding, h, w)) in cases.iter().enumerate() {
            let cv = Conv {
                padding,
                act: [Act::Relu6, Act::None, Act::Relu][i % 3],
                ..random_conv(cin, cout, k, stride, groups, i as u32 + 1)
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
    fn an_expansion_fused_with_its_depthwise_matches_the_two_layers() {
        let (cin, mid, h, w) = (5, 24, 120, 110);
        let mk = |name: &str, cin, cout, k, stride, groups, act, seed| Conv {
            name: name.into(),
            act,
            ..random_conv(cin, cout, k, stride, groups, seed)
        };
        let e = mk("e", cin, mid, 1, 1, 1, Act::Relu6, 1);
        let x = rnd(cin * h * w, 9);
        // Stride 2, then stride 1 with a channel multiplier of 2.
        for d in [
            mk("d", mid, mid, 3, 2, mid, Act::Relu6, 2),
            mk("d2", mid, 2 * mid, 5, 1, mid, Act::None, 3),
        ] {
            assert!(
                forward::fusable(&e, &d, h, w),
                "{}: large enough to fuse",
                d.name
            );
            let (fused, fh, fw) = forward::expand_depthwise(&e, &d, &x, h, w);
            let (mid_map, ..) = conv(&e, &x, h, w);
            let (apart, ah, aw) = conv(&d, &mid_map, h, w);
            assert_eq!((fh, fw), (ah, aw));
            assert_eq!(fused.len(), apart.len());
            for (p, q) in fused.iter().zip(&apart) {
                assert!((p - q).abs() < 1e-5, "{}: {p} vs {q}", d.name);
            }
        }
        // A small map (in L2 anyway) runs the layers apart.
        assert!(!forward::fusable(
            &e,
            &mk("d", mid, mid, 3, 1, mid, Act::None, 4),
            8,
            8
        ));
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

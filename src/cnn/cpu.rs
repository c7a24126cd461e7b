//! CPU reference of every layer: plain loops written so the compiler
//! vectorises the inner row loops, compiled twice (baseline and AVX2 + FMA,
//! picked at run time), images of a batch spread over cores with rayon.

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
    let mut out = vec![f32::NEG_INFINITY; c * oh * ow];
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for oy in 0..oh {
            let y0 = (oy * stride) as isize - pad as isize;
            for ox in 0..ow {
                let x0 = (ox * stride) as isize - pad as isize;
                let mut m = f32::NEG_INFINITY;
                for iy in y0.max(0)..(y0 + k as isize).min(h as isize) {
                    for ix in x0.max(0)..(x0 + k as isize).min(w as isize) {
                        m = m.max(plane[iy as usize * w + ix as usize]);
                    }
                }
                out[(ch * oh + oy) * ow + ox] = m;
            }
        }
    }
    (out, oh, ow)
}

/// One convolution of a C×H×W input (bias and activation fused).
#[inline(always)]
pub fn conv(cv: &Conv, x: &[f32], h: usize, w: usize) -> (Vec<f32>, usize, usize) {
    let (pad, oh, ow) = cv.padding.resolve(h, w, cv.k, cv.stride);
    let mut out = vec![0f32; cv.cout * oh * ow];
    if cv.k == 1 && cv.stride == 1 && cv.groups == 1 && pad == [0; 4] {
        pointwise(cv, x, h * w, &mut out);
    } else {
        direct(cv, x, h, w, pad, oh, ow, &mut out);
    }
    for (co, o) in out.chunks_mut(oh * ow).enumerate() {
        let b = cv.bias[co];
        o.iter_mut().for_each(|v| *v = cv.act.apply(*v + b));
    }
    (out, oh, ow)
}

/// 1×1 convolution = GEMM: out[co] += W[co][ci] · in[ci], four output
/// channels at a time so each input row is read once per four.
#[inline(always)]
fn pointwise(cv: &Conv, x: &[f32], hw: usize, out: &mut [f32]) {
    let cin = cv.cin;
    for (blk, o4) in out.chunks_mut(4 * hw).enumerate() {
        let co0 = blk * 4;
        let rows = o4.len() / hw;
        if rows == 4 {
            let (o0, rest) = o4.split_at_mut(hw);
            let (o1, rest) = rest.split_at_mut(hw);
            let (o2, o3) = rest.split_at_mut(hw);
            for ci in 0..cin {
                let xi = &x[ci * hw..(ci + 1) * hw];
                let wv = |r: usize| cv.weight[(co0 + r) * cin + ci];
                let (w0, w1, w2, w3) = (wv(0), wv(1), wv(2), wv(3));
                for p in 0..hw {
                    let v = xi[p];
                    o0[p] += w0 * v;
                    o1[p] += w1 * v;
                    o2[p] += w2 * v;
                    o3[p] += w3 * v;
                }
            }
        } else {
            for r in 0..rows {
                let o = &mut o4[r * hw..(r + 1) * hw];
                for ci in 0..cin {
                    let wv = cv.weight[(co0 + r) * cin + ci];
                    o.iter_mut()
                        .zip(&x[ci * hw..(ci + 1) * hw])
                        .for_each(|(o, v)| *o += wv * v);
                }
            }
        }
    }
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
                    // Output columns whose input column ox·s + kx − pl is inside.
                    let off = kx as isize - pl;
                    let lo = if off < 0 {
                        ((-off) as usize).div_ceil(s)
                    } else {
                        0
                    };
                    let hi = if (w as isize) > off {
                        (((w as isize - off - 1) / s as isize) as usize + 1).min(ow)
                    } else {
                        0
                    };
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
}

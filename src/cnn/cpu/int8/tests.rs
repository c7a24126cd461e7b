//! The int8 kernels against a textbook integer convolution.

use super::*;
use crate::cnn::model::Padding;
use std::sync::Arc;

fn rnd(n: usize, seed: u32) -> impl Iterator<Item = u32> {
    let mut s = seed | 1;
    (0..n).map(move |_| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    })
}

/// A quantised convolution with seeded integers and scales.
fn qconv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    act: Act,
    seed: u32,
) -> Conv {
    let weight: Vec<i8> = rnd(cout * cin * k * k, seed)
        .map(|v| (v % 255) as i32 as i8)
        .collect();
    let w_scale: Vec<f32> = rnd(cout, seed + 1)
        .map(|v| 0.001 + (v % 100) as f32 * 1e-4)
        .collect();
    let bias: Vec<f32> = rnd(cout, seed + 2)
        .map(|v| (v % 200) as f32 / 100.0 - 1.0)
        .collect();
    let per = cin * k * k;
    let dequantised = weight
        .iter()
        .enumerate()
        .map(|(i, &w)| w as f32 * w_scale[i / per])
        .collect();
    Conv {
        name: format!("q{seed}"),
        cin,
        cout,
        k,
        stride,
        groups: 1,
        padding: Padding::Explicit([pad; 4]),
        act,
        weight: dequantised,
        bias,
        from: None,
        int8: Some(Arc::new(Int8Conv::new(0.02, 37, weight, w_scale, cin, k))),
        winograd: Default::default(),
    }
}

/// The textbook integer convolution with the same epilogue.
fn naive(cv: &Conv, x: &[f32], h: usize, w: usize) -> Vec<f32> {
    let q = cv.int8.as_ref().unwrap();
    let (pad, oh, ow) = cv.padding.resolve(h, w, cv.k, cv.stride);
    let quant =
        |v: f32| ((v / q.in_scale).round_ties_even() + q.in_zero as f32).clamp(0.0, 255.0) as i32;
    let mut out = vec![0f32; cv.cout * oh * ow];
    for o in 0..cv.cout {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0i32;
                for ci in 0..cv.cin {
                    for ky in 0..cv.k {
                        for kx in 0..cv.k {
                            let iy = (oy * cv.stride + ky) as isize - pad[0] as isize;
                            let ix = (ox * cv.stride + kx) as isize - pad[1] as isize;
                            let inside =
                                iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w;
                            let v = match inside {
                                true => quant(x[(ci * h + iy as usize) * w + ix as usize]),
                                false => q.in_zero as i32,
                            };
                            acc += (v - q.in_zero as i32)
                                * q.weight[((o * cv.cin + ci) * cv.k + ky) * cv.k + kx] as i32;
                        }
                    }
                }
                let v = acc as f32 * (q.in_scale * q.w_scale[o]) + cv.bias[o];
                out[(o * oh + oy) * ow + ox] = cv.act.apply(v);
            }
        }
    }
    out
}

#[test]
fn both_kernels_give_the_textbook_integers() {
    // (cin, cout, k, stride, pad, h, w): a 1×1 product (36 columns:
    // 32 in tiles, 4 as dot products), a partial tile of channels and
    // pixels, the 3-channel stem shape, odd sizes.
    let cases = [
        (16, 8, 1, 1, 0, 6, 6),
        (13, 11, 3, 1, 1, 7, 9),
        (3, 16, 7, 2, 3, 15, 16),
        (8, 20, 1, 2, 0, 9, 9),
        (64, 40, 3, 2, 1, 12, 13),
        (5, 3, 1, 1, 0, 40, 37),
        // Maps whose last 1–4 columns run as dot products (VNNI):
        // 9 × 9, 7 × 7 with an odd number of quads, 18, 35 and 36
        // columns, and 4 (every column one of them).
        (12, 9, 1, 1, 0, 9, 9),
        (4, 10, 3, 1, 1, 7, 7),
        (20, 16, 3, 1, 1, 6, 3),
        (8, 8, 1, 1, 0, 5, 7),
        (6, 5, 1, 1, 0, 2, 2),
    ];
    for (i, &(cin, cout, k, s, p, h, w)) in cases.iter().enumerate() {
        let cv = qconv(
            cin,
            cout,
            k,
            s,
            p,
            [Act::Relu, Act::None, Act::Relu6][i % 3],
            i as u32 + 3,
        );
        // Values beyond the u8 range clamp; some land on .5 steps.
        let x: Vec<f32> = rnd(cin * h * w, i as u32 + 50)
            .map(|v| (v % 1400) as f32 * 0.005 - 1.5)
            .collect();
        let g = Geometry::of(&cv, h, w);
        let want = naive(&cv, &x, h, w);
        let q = cv.int8.as_ref().unwrap();
        let portable = ungrouped_on(&cv, q, &x, g, false, None);
        assert_eq!(portable, want, "case {i}: portable kernel");
        // With a residual add fused: act(conv + residual), as two layers.
        let res: Vec<f32> = rnd(want.len(), i as u32 + 90)
            .map(|v| (v % 400) as f32 / 100.0 - 2.0)
            .collect();
        let add = [Act::Relu, Act::None, Act::Relu6][(i + 1) % 3];
        let want_add: Vec<f32> = want
            .iter()
            .zip(&res)
            .map(|(a, r)| add.apply(a + r))
            .collect();
        let fused = ungrouped_on(&cv, q, &x, g, false, Some((&res, add)));
        assert_eq!(fused, want_add, "case {i}: portable kernel, residual add");
        if has_vnni() {
            assert_eq!(
                ungrouped_on(&cv, q, &x, g, true, None),
                want,
                "case {i}: VNNI kernel"
            );
            let fused = ungrouped_on(&cv, q, &x, g, true, Some((&res, add)));
            assert_eq!(fused, want_add, "case {i}: VNNI kernel, residual add");
        }
        // And close to the float convolution of the dequantised weights
        // on the input clamped to what u8 can hold.
        let (lo, hi) = (-37.0 * 0.02, 218.0 * 0.02);
        let xc: Vec<f32> = x.iter().map(|v| v.clamp(lo, hi)).collect();
        let f = super::super::gemm::ungrouped(
            &Conv {
                int8: None,
                winograd: Default::default(),
                ..cv.clone()
            },
            &xc,
            g,
            None,
        );
        let err = f
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let top = f.iter().map(|a| a.abs()).fold(0f32, f32::max);
        assert!(
            err <= 0.05 * top.max(1.0),
            "case {i}: int8 departs from f32 by {err} (max {top})"
        );
    }
}

//! ResNet-50 (SSCD's trunk and head) on the WGSL engine against the CPU
//! reference: the new kernels (max pool, ReLU after the residual sum,
//! shortcut convs that read an earlier layer, the projection) and the whole
//! architecture with seeded random weights. No downloaded weights needed.
//! LOOKALIKE_REQUIRE_GPU=1 turns "no adapter" into a failure, not a skip.

use std::sync::OnceLock;

use lookalike::cnn::model::Layer;
use lookalike::cnn::resnet::{architecture, RESNET50_BLOCKS};
use lookalike::cnn::{cosine, cpu, Tensor};
use lookalike::gpu::{DeviceChoice, GpuEngine, Precision};

fn engine() -> Option<&'static GpuEngine> {
    static E: OnceLock<Option<GpuEngine>> = OnceLock::new();
    E.get_or_init(|| match GpuEngine::new(DeviceChoice::Gpu) {
        // f32 storage whatever the adapter offers: these tolerances are f32's.
        Ok(e) => e.map(|e| e.with_cnn_precision(Precision::F32).unwrap()),
        Err(err) => {
            if std::env::var("LOOKALIKE_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("LOOKALIKE_REQUIRE_GPU=1 but no adapter: {err:#}");
            }
            eprintln!("resnet_parity: SKIPPED, no wgpu adapter ({err:#})");
            None
        }
    })
    .as_ref()
}

fn tensor(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..n * c * h * w)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    Tensor { n, c, h, w, data }
}

#[test]
fn max_pool_matches_cpu() {
    let Some(e) = engine() else { return };
    // Odd and even sides: the last window hangs over the padded edge.
    for (h, w) in [(9, 8), (7, 7), (2, 3)] {
        let x = tensor(2, 5, h, w, (h * w) as u64);
        let g = e.cnn_max_pool(&x, 3, 2, 1).unwrap();
        let per = x.c * h * w;
        let mut want = Vec::new();
        for i in 0..x.n {
            let (y, oh, ow) = cpu::max_pool(&x.data[i * per..(i + 1) * per], x.c, h, w, 3, 2, 1);
            assert_eq!((g.h, g.w), (oh, ow));
            want.extend(y);
        }
        assert_eq!(g.data, want, "max pool {h}x{w}");
    }
}

#[test]
fn small_resnet_with_shortcuts_and_projection_matches_cpu() {
    let Some(e) = engine() else { return };
    let net = architecture([2, 1, 1, 2], 8, 24).randomized(11);
    assert!(net
        .layers
        .iter()
        .any(|l| matches!(l, Layer::Conv(c) if c.from.is_some())));
    let x = tensor(3, 3, 45, 38, 3);
    let g = e.upload_network(&net);
    let (gf, cf) = (g.forward(e, &x).unwrap(), cpu::forward(&net, &x));
    assert_eq!((gf.c, gf.h, gf.w), (cf.c, cf.h, cf.w));
    let scale = cf.data.iter().fold(1f32, |m, v| m.max(v.abs()));
    let d = gf
        .data
        .iter()
        .zip(&cf.data)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    assert!(d <= 1e-4, "feature maps differ: {d}");
    let (ge, ce) = (g.embed(e, &x).unwrap(), cpu::embed(&net, &x));
    assert_eq!(ge[0].len(), 24);
    for (a, b) in ge.iter().zip(&ce) {
        let c = cosine(a, b);
        assert!(c >= 0.99999, "cosine {c}");
    }
    // The three images differ, so their embeddings must too.
    assert!(cosine(&ce[0], &ce[1]) < 0.9999);
}

#[test]
fn resnet50_random_weights_match_cpu() {
    let Some(e) = engine() else { return };
    // The real architecture at a small input (lavapipe is slow): 2 × 64².
    let net = architecture(RESNET50_BLOCKS, 64, 512).randomized(7);
    let x = tensor(2, 3, 64, 64, 9);
    let t = std::time::Instant::now();
    let ge = e.upload_network(&net).embed(e, &x).unwrap();
    let gpu_s = t.elapsed().as_secs_f64();
    let ce = cpu::embed(&net, &x);
    let cos: Vec<f32> = ge.iter().zip(&ce).map(|(a, b)| cosine(a, b)).collect();
    eprintln!(
        "resnet_parity: resnet50 random weights 2x3x64x64: cosines {cos:?}, gpu {gpu_s:.2} s"
    );
    assert!(cos.iter().all(|&c| c >= 0.9999), "cosines {cos:?}");
    assert!(
        cosine(&ce[0], &ce[1]) < 0.99999,
        "different inputs, same embedding"
    );
}

#[test]
fn implicit_gemm_convs_match_cpu() {
    use lookalike::cnn::model::{Act, Conv, Padding};
    let Some(e) = engine() else { return };
    // (cin, cout, k, stride, pad, h, w): the ResNet stem, a strided 3×3, a
    // strided 1×1 shortcut, and sizes that leave partial tiles everywhere;
    // 3×3 stride-1 ones the CPU runs by Winograd, F(2×2) on a small map
    // and F(4×4) on a large one, with ragged edges.
    let cases = [
        (3, 64, 7, 2, 3, 23, 18),
        (16, 20, 3, 2, 1, 11, 9),
        (24, 70, 1, 2, 0, 9, 10),
        (9, 5, 3, 1, 1, 7, 5),
        (16, 24, 3, 1, 1, 13, 10),
        (32, 40, 3, 1, 1, 26, 30),
    ];
    for (i, &(cin, cout, k, stride, pad, h, w)) in cases.iter().enumerate() {
        let wts = tensor(1, cout, cin, k * k, 100 + i as u64).data;
        let cv = Conv {
            name: format!("g{i}"),
            cin,
            cout,
            k,
            stride,
            groups: 1,
            padding: Padding::Explicit([pad; 4]),
            act: [Act::Relu, Act::None][i % 2],
            weight: wts,
            bias: tensor(1, 1, 1, cout, 200 + i as u64).data,
            from: None,
            int8: None,
            winograd: Default::default(),
        };
        let x = tensor(2, cin, h, w, 300 + i as u64);
        let g = e.cnn_conv(&cv, &x).unwrap();
        let per = cin * h * w;
        let mut want = Vec::new();
        for n in 0..x.n {
            let (y, oh, ow) = cpu::conv(&cv, &x.data[n * per..(n + 1) * per], h, w);
            assert_eq!((g.h, g.w), (oh, ow), "case {i}");
            want.extend(y);
        }
        let d = g
            .data
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // Within 1e-5 of the largest output: sums of up to 288 products
        // rounded in another order (and by Winograd's transforms).
        let scale = want.iter().fold(10f32, |m, v| m.max(v.abs()));
        eprintln!("case {i}: max diff {d}, largest output {scale}");
        assert!(
            d < 1e-5 * scale,
            "case {i}: max diff {d}, largest output {scale}"
        );
    }
}

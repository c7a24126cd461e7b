//! The WGSL CNN engine with f16 storage (SHADER_F16; f32 arithmetic and
//! accumulation) against the CPU reference (`cnn::cpu`, f32 throughout).
//!
//! Kernels are held to the CPU run on the same f16-rounded inputs and
//! weights, so what is left is the rounding of each stored output (half an
//! f16 ulp, 2^-11 relative) and summation order; whole networks (seeded
//! random weights, and the shipped Lite0 on a real image) to the plain f32
//! CPU embedding by cosine. On lavapipe when no GPU exists (it has
//! SHADER_F16): WGPU_BACKEND=vulkan
//! VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json.
//! LOOKALIKE_REQUIRE_GPU=1 turns "no adapter" and "adapter without
//! SHADER_F16" into failures instead of skips.

mod common;

use common::cnn::{rel_diff, rnd, tensor};
use std::path::Path;
use std::sync::OnceLock;

use lookalike::cnn::model::{Act, Conv, Layer, Network, Padding};
use lookalike::cnn::resnet::{architecture, RESNET50_BLOCKS};
use lookalike::cnn::{cosine, cpu, gem_l2, preprocess, Tensor};
use lookalike::gpu::{DeviceChoice, GpuEngine, Precision};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Embedding cosine to the f32 CPU reference that f16 storage must keep.
const MIN_COSINE: f32 = 0.999;
/// Max relative difference of one kernel's output to the CPU run on the
/// same f16 inputs: output rounding (4.9e-4) plus summation order.
const KERNEL_TOL: f32 = 1e-3;

fn require() -> bool {
    std::env::var("LOOKALIKE_REQUIRE_GPU").as_deref() == Ok("1")
}

/// An engine whose CNN stores f16, or None (skip) where none can be had.
fn engine() -> Option<&'static GpuEngine> {
    static E: OnceLock<Option<GpuEngine>> = OnceLock::new();
    E.get_or_init(|| {
        let e = match GpuEngine::new(DeviceChoice::Gpu) {
            Ok(e) => e.expect("DeviceChoice::Gpu never answers None"),
            Err(err) if require() => panic!("LOOKALIKE_REQUIRE_GPU=1 but no adapter: {err:#}"),
            Err(err) => {
                eprintln!("cnn_f16_parity: SKIPPED, no wgpu adapter ({err:#})");
                return None;
            }
        };
        if !e.supports_f16() {
            // lavapipe, the adapter these tests run on without a GPU, has it.
            assert!(
                !require(),
                "LOOKALIKE_REQUIRE_GPU=1 but {} has no SHADER_F16",
                e.describe()
            );
            eprintln!(
                "cnn_f16_parity: SKIPPED, {} has no SHADER_F16",
                e.describe()
            );
            return None;
        }
        eprintln!("cnn_f16_parity: adapter {}", e.describe());
        Some(e.with_cnn_precision(Precision::F16).unwrap())
    })
    .as_ref()
}

/// `v` rounded to f16 and back, as the GPU stores it.
fn f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| Precision::F16.round(x)).collect()
}

fn f16_tensor(t: &Tensor) -> Tensor {
    Tensor {
        data: f16(&t.data),
        ..t.clone()
    }
}

fn cpu_conv(cv: &Conv, x: &Tensor) -> Vec<f32> {
    (0..x.n)
        .flat_map(|i| cpu::conv(cv, x.image(i), x.h, x.w).0)
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    padding: Padding,
    act: Act,
    seed: u64,
) -> Conv {
    Conv {
        name: format!("f16test{seed}"),
        cin,
        cout,
        k,
        stride,
        groups,
        padding,
        act,
        weight: rnd(cout * cin / groups * k * k, seed),
        bias: rnd(cout, seed + 1000),
        from: None,
        int8: None,
        winograd: Default::default(),
    }
}

/// The f16 path really ran: the engine and the network say f16, and every
/// value read back is an f16 value, where the f32 CPU result is not.
#[test]
fn f16_storage_is_what_runs() {
    let Some(e) = engine() else { return };
    assert_eq!(e.cnn_precision(), Precision::F16);
    let net = architecture([1, 1, 1, 1], 8, 24).randomized(5);
    let g = e.upload_network(&net);
    assert_eq!(g.precision(), Precision::F16);
    // 3 × 15 × 15 = 675 values an image, 3 images: odd counts, so f16
    // buffers need their 4-byte padding.
    let x = tensor(3, 3, 15, 15, 1);
    let out = g.forward(e, &x).unwrap();
    let c = cpu::forward(&net, &x);
    assert!(
        out.data.iter().all(|&v| Precision::F16.round(v) == v),
        "a value read back is not an f16: f32 storage ran"
    );
    // ReLU zeros are f16 too: most of the nonzero reference values are not.
    let nonzero: Vec<f32> = c.data.iter().copied().filter(|&v| v != 0.0).collect();
    let not_f16 = nonzero
        .iter()
        .filter(|&&v| Precision::F16.round(v) != v)
        .count();
    eprintln!(
        "cnn_f16_parity: {} values, {} nonzero in the f32 reference, {not_f16} of them not f16",
        c.data.len(),
        nonzero.len()
    );
    assert!(not_f16 > nonzero.len() / 2, "reference proves nothing");
    let d = rel_diff(&out.data, &c.data);
    eprintln!("cnn_f16_parity: small resnet features, f16 vs f32 cpu: max rel diff {d:.2e}");
    assert!(d < 5e-3, "feature maps differ: {d}");
}

#[test]
fn convs_match_cpu_on_f16_inputs() {
    let Some(e) = engine() else { return };
    // Each kernel (conv_direct: stem, depthwise, grouped, strided 1×1;
    // conv_pointwise; conv_gemm: 7×7 stem, strided 3×3) on odd sizes.
    let cases = [
        (
            "direct stem k3 s2",
            conv(3, 8, 3, 2, 1, Padding::TfSame, Act::Relu6, 1),
            tensor(1, 3, 15, 15, 11),
        ),
        (
            "direct depthwise k5",
            conv(7, 7, 5, 1, 7, Padding::TfSame, Act::None, 2),
            tensor(2, 7, 9, 7, 12),
        ),
        (
            "direct grouped g2",
            conv(4, 6, 3, 1, 2, Padding::Explicit([1, 2, 0, 1]), Act::Relu, 3),
            tensor(1, 4, 7, 5, 13),
        ),
        (
            "direct 1x1 s2",
            conv(9, 3, 1, 2, 1, Padding::Explicit([0; 4]), Act::None, 4),
            tensor(3, 9, 7, 7, 14),
        ),
        (
            "pointwise 19->70",
            conv(19, 70, 1, 1, 1, Padding::TfSame, Act::None, 5),
            tensor(1, 19, 9, 11, 15),
        ),
        (
            "pointwise 130->37",
            conv(130, 37, 1, 1, 1, Padding::Explicit([0; 4]), Act::Relu, 6),
            tensor(3, 130, 13, 7, 16),
        ),
        (
            "gemm 7x7 s2 stem",
            conv(3, 64, 7, 2, 1, Padding::Explicit([3; 4]), Act::Relu, 7),
            tensor(1, 3, 23, 17, 17),
        ),
        (
            "gemm 3x3 s2",
            conv(16, 21, 3, 2, 1, Padding::Explicit([1; 4]), Act::None, 8),
            tensor(2, 16, 11, 9, 18),
        ),
    ];
    for (label, cv, x) in &cases {
        let g = e.cnn_conv(cv, x).unwrap();
        let cq = Conv {
            weight: f16(&cv.weight),
            ..cv.clone()
        };
        let want = cpu_conv(&cq, &f16_tensor(x));
        let d = rel_diff(&g.data, &want);
        let d32 = rel_diff(&g.data, &cpu_conv(cv, x));
        eprintln!(
            "cnn_f16_parity: {label}: max rel diff {d:.2e} vs cpu on f16 inputs, {d32:.2e} vs f32 cpu"
        );
        assert!(d <= KERNEL_TOL, "{label}: max rel diff {d}");
    }
}

#[test]
fn add_max_pool_gem_match_cpu_on_f16_inputs() {
    let Some(e) = engine() else { return };
    // Odd element counts: 2 × 5 × 7 × 9 = 630 is even, 1 × 5 × 7 × 9 is not.
    for n in [1, 2] {
        let (a, b) = (
            f16_tensor(&tensor(n, 5, 7, 9, 41)),
            f16_tensor(&tensor(n, 5, 7, 9, 42)),
        );
        let g = e.cnn_add(&a, &b).unwrap();
        assert_eq!(g.data.len(), a.data.len());
        // An f16 neighbour of the f32 sum (WGSL lets f16() round either way).
        for (i, (v, s)) in g
            .data
            .iter()
            .zip(a.data.iter().zip(&b.data).map(|(x, y)| x + y))
            .enumerate()
        {
            let ulp = s.abs().max(6.1e-5) / 1024.0;
            assert!(
                Precision::F16.round(*v) == *v && (v - s).abs() <= ulp,
                "add, n = {n}, element {i}: {v} for {s}"
            );
        }
    }
    for (h, w) in [(9, 8), (7, 7), (2, 3)] {
        let x = f16_tensor(&tensor(1, 5, h, w, (h * w) as u64));
        let g = e.cnn_max_pool(&x, 3, 2, 1).unwrap();
        let (want, _, _) = cpu::max_pool(&x.data, x.c, h, w, 3, 2, 1);
        assert_eq!(g.data, want, "max pool {h}x{w}");
    }
    for (x, p, clamp) in [
        (tensor(3, 40, 7, 7, 51), 3.0, 1e-6),
        (tensor(1, 17, 1, 1, 52), 3.0, 1e-6),
        (tensor(2, 9, 5, 3, 53), 2.5, 1e-3),
    ] {
        let x = f16_tensor(&x);
        let g = e.cnn_gem(&x, p, clamp).unwrap();
        for (a, b) in g.iter().zip(&gem_l2(&x, p, clamp)) {
            let d = rel_diff(a, b);
            assert!(d <= KERNEL_TOL, "gem p={p}: max rel diff {d}");
        }
    }
}

/// Embeds `x` with `net` stored f16 and compares with the f32 CPU embedding.
fn check_embedding(label: &str, net: &Network, x: &Tensor) -> Vec<f32> {
    let e = engine().expect("checked by the caller");
    let t = std::time::Instant::now();
    let g = e.upload_network(net);
    assert_eq!(g.precision(), Precision::F16);
    let ge = g.embed(e, x).unwrap();
    let gpu_s = t.elapsed().as_secs_f64();
    let ce = cpu::embed(net, x);
    let cos: Vec<f32> = ge.iter().zip(&ce).map(|(a, b)| cosine(a, b)).collect();
    eprintln!("cnn_f16_parity: {label}: cosines f16 gpu vs f32 cpu {cos:?}, gpu {gpu_s:.2} s");
    assert!(
        cos.iter().all(|&c| c >= MIN_COSINE),
        "{label}: cosines {cos:?}"
    );
    // f16 must move an embedding less than a different input does (random
    // weights make all embeddings alike, so this is the meaningful scale).
    let apart = cosine(&ce[0], &ce[1]);
    eprintln!("cnn_f16_parity: {label}: cosine between images 0 and 1 (cpu) {apart}");
    let worst = cos.iter().copied().fold(1f32, f32::min);
    assert!(
        1.0 - worst < (1.0 - apart) / 10.0,
        "{label}: f16 moved an embedding by {} ≥ a tenth of the distance between images {}",
        1.0 - worst,
        1.0 - apart
    );
    cos
}

fn shipped() -> Network {
    Network::load(Path::new(&format!(
        "{ROOT}/models/efficientnet_lite0/model.safetensors"
    )))
    .unwrap()
}

#[test]
fn lite0_random_weights_f16_matches_cpu() {
    if engine().is_none() {
        return;
    }
    let net = shipped().randomized(7);
    check_embedding(
        "lite0 random weights 2x3x64x64",
        &net,
        &tensor(2, 3, 64, 64, 61),
    );
}

#[test]
fn lite0_shipped_weights_real_image_f16_matches_cpu() {
    if engine().is_none() {
        return;
    }
    let net = shipped();
    let imgs: Vec<image::RgbImage> = ["train_11.jpg", "train_18.jpg"]
        .iter()
        .map(|f| {
            image::open(format!("{ROOT}/examples/sample/training/{f}"))
                .unwrap()
                .to_rgb8()
        })
        .collect();
    let refs: Vec<&image::RgbImage> = imgs.iter().collect();
    let x = preprocess::input_batch(&net, &refs);
    check_embedding(
        "lite0 shipped weights, 2 sample images at 224x224",
        &net,
        &x,
    );
}

#[test]
fn small_resnet_with_shortcuts_and_projection_f16_matches_cpu() {
    if engine().is_none() {
        return;
    }
    let net = architecture([2, 1, 1, 2], 8, 24).randomized(11);
    assert!(net
        .layers
        .iter()
        .any(|l| matches!(l, Layer::Conv(c) if c.from.is_some())));
    assert!(net.projection.is_some());
    check_embedding("small resnet 3x3x45x38", &net, &tensor(3, 3, 45, 38, 3));
}

#[test]
fn resnet50_random_weights_f16_matches_cpu() {
    if engine().is_none() {
        return;
    }
    let net = architecture(RESNET50_BLOCKS, 64, 512).randomized(7);
    check_embedding(
        "resnet50 random weights 2x3x64x64",
        &net,
        &tensor(2, 3, 64, 64, 9),
    );
}

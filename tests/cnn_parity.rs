//! The WGSL CNN engine (src/gpu/cnn.rs, shaders/cnn.wgsl) against the CPU
//! reference (`cnn::cpu`): each kernel on small random shapes, the whole
//! EfficientNet-Lite0 architecture with seeded random weights, and the
//! shipped weights on a real image. On lavapipe when no GPU exists:
//! WGPU_BACKEND=vulkan VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json.
//! LOOKALIKE_REQUIRE_GPU=1 turns "no adapter" into a failure instead of a skip.

mod common;

use common::cnn::{rel_diff, rnd, tensor};

use std::path::Path;
use std::sync::OnceLock;

use lookalike::cnn::model::{Act, Conv, Network, Padding};
use lookalike::cnn::{cosine, cpu, gem_l2, preprocess, Tensor};
use lookalike::gpu::{DeviceChoice, GpuEngine, Precision};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn engine() -> Option<&'static GpuEngine> {
    static E: OnceLock<Option<GpuEngine>> = OnceLock::new();
    E.get_or_init(|| match GpuEngine::new(DeviceChoice::Gpu) {
        Ok(e) => {
            // f32 storage whatever the adapter offers: these tolerances are
            // f32's (f16 storage: tests/cnn_f16_parity.rs).
            let e = e
                .expect("DeviceChoice::Gpu never answers None")
                .with_cnn_precision(Precision::F32)
                .unwrap();
            eprintln!("cnn_parity: adapter {}", e.describe());
            Some(e)
        }
        Err(err) => {
            if std::env::var("LOOKALIKE_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("LOOKALIKE_REQUIRE_GPU=1 but no adapter: {err:#}");
            }
            eprintln!("cnn_parity: SKIPPED, no wgpu adapter ({err:#}); set LOOKALIKE_REQUIRE_GPU=1 to fail instead");
            None
        }
    })
    .as_ref()
}

/// Uniform in [-1, 1), xorshift.
/// The CPU reference of one conv on every image of a batch.
fn cpu_conv(cv: &Conv, x: &Tensor) -> Tensor {
    let mut data = Vec::new();
    let (mut oh, mut ow) = (0, 0);
    for i in 0..x.n {
        let (y, h, w) = cpu::conv(cv, x.image(i), x.h, x.w);
        (oh, ow) = (h, w);
        data.extend(y);
    }
    Tensor {
        n: x.n,
        c: cv.cout,
        h: oh,
        w: ow,
        data,
    }
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
        name: format!("test{seed}"),
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

fn check_conv(label: &str, cv: &Conv, x: &Tensor) {
    let Some(e) = engine() else { return };
    let g = e.cnn_conv(cv, x).unwrap();
    let c = cpu_conv(cv, x);
    assert_eq!((g.n, g.c, g.h, g.w), (c.n, c.c, c.h, c.w), "{label}: shape");
    let d = rel_diff(&g.data, &c.data);
    eprintln!(
        "cnn_parity: {label}: {}x{}x{}x{} -> {}x{}x{}, max rel diff {d:.2e}",
        x.n, x.c, x.h, x.w, c.c, c.h, c.w
    );
    assert!(d <= 1e-4, "{label}: GPU vs CPU max rel diff {d}");
}

#[test]
fn conv_direct_matches_cpu() {
    // (label, conv, input)
    let cases = [
        (
            "stem k3 s2 tf-same",
            conv(3, 8, 3, 2, 1, Padding::TfSame, Act::Relu6, 1),
            tensor(2, 3, 17, 12, 11),
        ),
        (
            "depthwise k3 s1",
            conv(8, 8, 3, 1, 8, Padding::TfSame, Act::Relu6, 2),
            tensor(2, 8, 9, 10, 12),
        ),
        (
            "depthwise k5 s2 tf-same",
            conv(6, 6, 5, 2, 6, Padding::TfSame, Act::None, 3),
            tensor(2, 6, 10, 7, 13),
        ),
        (
            "grouped g2 explicit pads",
            conv(4, 6, 3, 1, 2, Padding::Explicit([1, 2, 0, 1]), Act::Relu, 4),
            tensor(2, 4, 8, 6, 14),
        ),
        (
            "k7 s2 explicit pads",
            conv(3, 4, 7, 2, 1, Padding::Explicit([3, 3, 3, 3]), Act::None, 5),
            tensor(1, 3, 15, 16, 15),
        ),
        (
            "1x1 s2 (direct)",
            conv(
                9,
                3,
                1,
                2,
                1,
                Padding::Explicit([0, 0, 0, 0]),
                Act::Relu6,
                6,
            ),
            tensor(3, 9, 7, 7, 16),
        ),
    ];
    for (label, cv, x) in &cases {
        check_conv(label, cv, x);
    }
}

#[test]
fn conv_pointwise_matches_cpu() {
    // Channels and pixels not multiples of the 64 × 64 tile or the 16-deep k step.
    let cases = [
        (
            "pointwise 7->5",
            conv(7, 5, 1, 1, 1, Padding::TfSame, Act::Relu6, 21),
            tensor(2, 7, 6, 5, 31),
        ),
        (
            "pointwise 19->70",
            conv(19, 70, 1, 1, 1, Padding::TfSame, Act::None, 22),
            tensor(2, 19, 9, 11, 32),
        ),
        (
            "pointwise 130->37",
            conv(130, 37, 1, 1, 1, Padding::Explicit([0; 4]), Act::Relu, 23),
            tensor(3, 130, 13, 7, 33),
        ),
        (
            "pointwise 16->144 (lite0)",
            conv(16, 144, 1, 1, 1, Padding::TfSame, Act::Relu6, 24),
            tensor(1, 16, 16, 16, 34),
        ),
    ];
    for (label, cv, x) in &cases {
        check_conv(label, cv, x);
    }
}

#[test]
fn add_matches_cpu() {
    let Some(e) = engine() else { return };
    let a = tensor(2, 5, 7, 9, 41);
    let b = tensor(2, 5, 7, 9, 42);
    let g = e.cnn_add(&a, &b).unwrap();
    assert_eq!(g.data.len(), a.data.len());
    for (i, v) in g.data.iter().enumerate() {
        assert_eq!(*v, a.data[i] + b.data[i], "element {i}");
    }
}

#[test]
fn gem_matches_cpu() {
    let Some(e) = engine() else { return };
    // Negative values exercise the clamp; a 1×1 map and a 7×7 one.
    for (x, p, clamp) in [
        (tensor(3, 40, 7, 7, 51), 3.0, 1e-6),
        (tensor(2, 17, 1, 1, 52), 3.0, 1e-6),
        (tensor(2, 9, 5, 3, 53), 2.5, 1e-3),
    ] {
        let g = e.cnn_gem(&x, p, clamp).unwrap();
        let c = gem_l2(&x, p, clamp);
        assert_eq!(g.len(), c.len());
        for (a, b) in g.iter().zip(&c) {
            let d = rel_diff(a, b);
            assert!(d <= 1e-4, "gem p={p}: max diff {d}");
        }
    }
}

fn shipped() -> Network {
    Network::load(Path::new(&format!(
        "{ROOT}/models/efficientnet_lite0/model.safetensors"
    )))
    .unwrap()
}

#[test]
fn lite0_random_weights_batch_matches_cpu() {
    let Some(e) = engine() else { return };
    let net = shipped().randomized(7);
    let x = tensor(2, 3, 64, 64, 61);
    let gnet = e.upload_network(&net);
    let t = std::time::Instant::now();
    let g = gnet.forward(e, &x).unwrap();
    let gpu_s = t.elapsed().as_secs_f64();
    let c = cpu::forward(&net, &x);
    assert_eq!((g.n, g.c, g.h, g.w), (c.n, c.c, c.h, c.w));
    let d = rel_diff(&g.data, &c.data);
    let ge = gnet.embed(e, &x).unwrap();
    let ce = gem_l2(&c, net.gem_p, net.gem_clamp);
    let cos: Vec<f32> = ge.iter().zip(&ce).map(|(a, b)| cosine(a, b)).collect();
    eprintln!(
        "cnn_parity: lite0 random weights, 2x3x64x64 -> {}x{}x{}: max rel diff {d:.2e}, cosines {cos:?}, gpu {gpu_s:.2} s",
        c.c, c.h, c.w
    );
    assert!(d <= 1e-3, "feature maps differ: max rel diff {d}");
    assert!(cos.iter().all(|&c| c >= 0.9999), "cosines {cos:?}");
}

#[test]
fn lite0_shipped_weights_real_image_matches_cpu() {
    let Some(e) = engine() else { return };
    let net = shipped();
    let img = image::open(format!("{ROOT}/examples/sample/training/train_11.jpg"))
        .unwrap()
        .to_rgb8();
    let x = preprocess::input_batch(&net, &[&img]);
    assert_eq!((x.h, x.w), (224, 224));
    let t = std::time::Instant::now();
    let g = e.cnn_embed(&net, &x).unwrap();
    let gpu_s = t.elapsed().as_secs_f64();
    let c = cpu::embed(&net, &x);
    let cos = cosine(&g[0], &c[0]);
    eprintln!("cnn_parity: lite0 shipped weights, train_11.jpg at 224x224: cosine {cos:.7}, gpu {gpu_s:.2} s");
    assert!(cos >= 0.9999, "cosine {cos}");
}

/// The wiring: `index --device gpu` embeds on the WGSL engine
/// (LOOKALIKE_GPU_CNN=1 asks for it on a software adapter), queries embedded
/// by the CPU engine find each image with similarity 1.
#[test]
fn gpu_embedded_index_agrees_with_cpu_embedded_queries() {
    if engine().is_none() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let train = t.path().join("train");
    std::fs::create_dir_all(&train).unwrap();
    for name in ["train_11.jpg", "train_18.jpg"] {
        std::fs::copy(
            format!("{}/training/{name}", common::SAMPLE),
            train.join(name),
        )
        .unwrap();
    }
    let idx = t.path().join("idx");
    let (tr, ix) = (train.to_str().unwrap(), idx.to_str().unwrap());
    let o = common::bin()
        .args(["index", tr, "--index", ix, "--device", "gpu", "-q"])
        .env("LOOKALIKE_GPU_CNN", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = common::run(&[
        "check", tr, "--index", ix, "--device", "cpu", "--json", "-q",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for q in r["results"].as_array().unwrap() {
        let top = &q["matches"][0];
        let name = Path::new(q["query"].as_str().unwrap()).file_name().unwrap();
        assert!(top["candidate"]
            .as_str()
            .unwrap()
            .ends_with(name.to_str().unwrap()));
        let sim = top["similarity"].as_f64().expect("embeddings compared");
        assert!(sim > 0.999, "{name:?}: similarity {sim}");
    }
}

//! The learned embedding (shipped EfficientNet-Lite0 at 224×224, GeM + L2):
//! embeddings per second on the CPU engine (`cnn::cpu`, rayon across the
//! batch) and on the WGSL engine (`GpuNetwork`, weights uploaded once, any
//! adapter — lavapipe when no GPU exists), and their agreement (cosine).
//! The WGSL engine runs once per storage precision the adapter has: f32,
//! and f16 (f32 accumulation) where it has SHADER_F16; the engine's default
//! (what `index`/`check` use) is marked.
//! `cargo bench --bench cnn` (plain main). Env: BENCH_CNN_BATCH (default 16);
//! BENCH_CNN_MODEL = `lite0` (default), `resnet50` (SSCD's architecture at
//! 288², seeded random weights: the same work as real SSCD weights) or the
//! path of a `--model` file (SSCD safetensors or ONNX); BENCH_CNN_CPU_ONLY=1
//! stops after the CPU engine (no adapter needed; `benches/ort_compare.sh`).
//! A quantised ONNX model runs in int8 on the CPU engine (the line says
//! which precision ran; `LOOKALIKE_CNN_F32=1` runs it in f32), and the
//! GPU's agreement is then taken against a CPU run in f32;
//! BENCH_CNN_RUNS=N times N calls after a warm-up call, best taken
//! (default 1), and the `preprocess:` line times the input's resize; BENCH_CNN_INPUT=SIDE runs the network on SIDE×SIDE inputs instead of its
//! own size (`benches/gpu-suite.sh`'s quick mode: less work, same layers).

use std::path::Path;
use std::time::Instant;

use lookalike::cnn::{cosine, cpu, preprocess, resnet, Network};
use lookalike::gpu::{DeviceChoice, GpuEngine, Precision};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() {
    let batch: usize = std::env::var("BENCH_CNN_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mut net = match std::env::var("BENCH_CNN_MODEL").as_deref() {
        Err(_) | Ok("lite0") => Network::load(Path::new(&format!(
            "{ROOT}/models/efficientnet_lite0/model.safetensors"
        )))
        .expect("shipped model"),
        Ok("resnet50") => {
            let mut n = resnet::architecture(resnet::RESNET50_BLOCKS, 64, 512).randomized(1);
            n.name = "resnet50 (SSCD architecture, random weights)".into();
            n
        }
        Ok(path) => lookalike::descriptors::embedding::select(Path::new(path))
            .expect("model file")
            .clone(),
    };
    if let Some(side) = std::env::var("BENCH_CNN_INPUT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        net.input = (side, side);
    }
    let mut files: Vec<_> = std::fs::read_dir(format!("{ROOT}/examples/sample/training"))
        .expect("sample images")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    let imgs: Vec<image::RgbImage> = files
        .iter()
        .cycle()
        .take(batch)
        .map(|p| image::open(p).unwrap().to_rgb8())
        .collect();
    let refs: Vec<&image::RgbImage> = imgs.iter().collect();
    let x = preprocess::input_batch(&net, &refs);
    let (w, h) = net.input;
    println!("model: {} ({w}x{h}), batch of {batch}", net.name);
    println!("cpu threads: {}", rayon::current_num_threads());
    // The network's input as `index` makes it from a decoded image
    // (Pillow-exact bilinear resize, then normalised), on one thread.
    let side = imgs.iter().map(|i| i.width().max(i.height())).max();
    let mut prep_s = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        std::hint::black_box(preprocess::input_batch(&net, &refs));
        prep_s = prep_s.min(t.elapsed().as_secs_f64());
    }
    println!(
        "  preprocess: {:8.2} ms an image (the sample's images, up to {} px a side, to {w}x{h}; one thread, best of 3)",
        prep_s * 1e3 / batch as f64,
        side.unwrap_or(0)
    );

    // As ONNX Runtime's side of benches/ort_compare.sh: the whole batch
    // once to warm up, then the best of BENCH_CNN_RUNS timed calls.
    let runs: usize = std::env::var("BENCH_CNN_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let c = cpu::embed(&net, &x);
    let mut cpu_s = f64::MAX;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        std::hint::black_box(cpu::embed(&net, &x));
        cpu_s = cpu_s.min(t.elapsed().as_secs_f64());
    }
    let precision = cpu::precision_label(&net);
    println!(
        "  cpu engine: {:8.2} embeddings/s ({cpu_s:.2} s, {precision}, best of {})",
        batch as f64 / cpu_s,
        runs.max(1)
    );

    if std::env::var("BENCH_CNN_CPU_ONLY").is_ok_and(|v| v == "1") {
        return;
    }
    let e = match GpuEngine::new(DeviceChoice::Gpu) {
        Ok(Some(e)) => e,
        Ok(None) => unreachable!(),
        Err(err) => {
            eprintln!("no wgpu adapter: {err:#}");
            std::process::exit(1);
        }
    };
    println!("adapter: {}", e.describe());
    // The GPU runs a quantised model's dequantised weights: its reference
    // is the CPU engine in f32, not the int8 run timed above.
    let c = match net.is_int8() {
        true => cpu::embed(&net.clone().float_only(), &x),
        false => c,
    };
    let mut precisions = vec![Precision::F32];
    if e.supports_f16() {
        precisions.push(Precision::F16);
    }
    let mut failed = false;
    for p in precisions {
        let default = if p == e.cnn_precision() {
            " (default)"
        } else {
            ""
        };
        println!("gpu precision: {p}{default}");
        let t = Instant::now();
        let gnet = e.upload_network_as(&net, p);
        println!("  weight upload: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        let _ = gnet.embed(&e, &preprocess::input_batch(&net, &refs[..1])); // warm-up
        let t = Instant::now();
        let g = gnet.embed(&e, &x).expect("GPU readback");
        let gpu_s = t.elapsed().as_secs_f64();
        println!(
            "  gpu engine: {:8.2} embeddings/s ({gpu_s:.2} s)",
            batch as f64 / gpu_s
        );
        let cos: Vec<f32> = g.iter().zip(&c).map(|(a, b)| cosine(a, b)).collect();
        let min = cos.iter().copied().fold(1f32, f32::min);
        println!("  agreement: min cosine gpu vs cpu {min:.7} over {batch}");
        // The parity tests' floors: f32 0.9999, f16 storage 0.999.
        let floor = if p == Precision::F16 { 0.999 } else { 0.9999 };
        if min < floor {
            eprintln!("GPU ({p}) and CPU embeddings disagree");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}

//! The shipped EfficientNet-Lite0 on the CPU engine against the numpy
//! reference's golden vector (tests/data/efficientnet_golden.json, made by
//! scripts/efficientnet_reference.py): same decoded pixels, same resized
//! input, same embedding (cosine) and same ImageNet top-1.

use lookalike::cnn::{cosine, cpu, preprocess, Network};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn shipped_model_matches_the_numpy_reference() {
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/tests/data/efficientnet_golden.json")).unwrap(),
    )
    .unwrap();
    let net = Network::load(std::path::Path::new(&format!(
        "{ROOT}/models/efficientnet_lite0/model.safetensors"
    )))
    .unwrap();
    assert_eq!(net.embedding_dim(), 1280);
    assert_eq!(net.input, (224, 224));
    // Decoded as `index` decodes (libjpeg-turbo when linked, as Pillow uses).
    let bytes = std::fs::read(format!("{ROOT}/{}", g["image"].as_str().unwrap())).unwrap();
    let img = lookalike::ingest::decode::decode(
        &bytes,
        lookalike::ingest::DecodeMode::Exact,
        &lookalike::ingest::Limits::default(),
    )
    .unwrap()
    .rgb;
    let decoded: u64 = img.as_raw().iter().map(|&v| v as u64).sum();
    let want = g["decoded_checksum"].as_u64().unwrap();
    // JPEG decoders may differ by a rounding here and there.
    assert!(
        decoded.abs_diff(want) * 1_000 < want,
        "decoded {decoded} vs {want}"
    );
    let x = preprocess::input_batch(&net, &[&img]);
    let sum: f64 = x.data.iter().map(|&v| v as f64).sum();
    let want = g["input_checksum"].as_f64().unwrap();
    assert!(
        (sum - want).abs() < 0.01 * want.abs().max(1.0),
        "input {sum} vs {want}"
    );
    let features = cpu::forward(&net, &x);
    assert_eq!((features.c, features.h, features.w), (1280, 7, 7));
    let emb = lookalike::cnn::gem_l2(&features, net.gem_p, net.gem_clamp);
    let golden: Vec<f32> = g["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let cos = cosine(&emb[0], &golden);
    assert!(cos > 0.999, "cosine {cos}");
    let logits = cpu::logits(&net, &features).unwrap();
    let top = (0..1000)
        .max_by(|&a, &b| logits[0][a].total_cmp(&logits[0][b]))
        .unwrap();
    assert_eq!(top as u64, g["logits_top5"][0][0].as_u64().unwrap());
}

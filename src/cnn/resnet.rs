//! ResNet-50 (He et al. 2016, torchvision's v1.5 layout: stride on the 3×3
//! conv of each bottleneck) as a layer list, for SSCD (Pizzi et al. 2022):
//! the trunk, GeM (p = 3) over its last map, a 2048 → 512 projection, L2.
//!
//! Weights come from a user's safetensors file with torchvision names
//! (`conv1.weight`, `bn1.*`, `layer{1..4}.{i}.conv{1,2,3}.weight`,
//! `bn{1,2,3}.*`, `downsample.{0,1}.*`) and the projection as
//! `projection.{weight,bias}` (or SSCD's own `embeddings.1.*`). BatchNorm is
//! folded into each convolution at load; files whose convolutions already
//! carry a bias and no BatchNorm (folded by an exporter) load as they are.
//! `scripts/convert_sscd.py` writes such files from Meta's checkpoints.

use super::model::{Act, Conv, Layer, Network, Padding};
use super::safetensors::{ModelError, SafeTensors};

/// Bottlenecks per stage of ResNet-50.
pub const RESNET50_BLOCKS: [usize; 4] = [3, 4, 6, 3];
/// SSCD's input: ImageNet mean and std, in 0–255 pixel units.
pub const IMAGENET_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
/// SSCD's input std, in 0–255 pixel units (see [`IMAGENET_MEAN`]).
pub const IMAGENET_STD: [f32; 3] = [58.395, 57.12, 57.375];
/// The one resize policy of SSCD indexes and queries: the whole image to a
/// 288 × 288 square (SSCD evaluates at short side 288; a fixed square keeps
/// batches same-size on the GPU, and index and query always agree).
pub const SSCD_INPUT: (usize, usize) = (288, 288);
/// torchvision's BatchNorm epsilon.
const BN_EPS: f32 = 1e-5;

/// A layer's weights (flat, in the layer's layout) and bias.
type WeightBias = (Vec<f32>, Vec<f32>);

/// Where a convolution's weights come from: named tensors, or zeros of a
/// shape (the architecture alone, for random-weight tests).
trait Weights {
    /// OIHW weight and bias of the conv named `conv`, BatchNorm `bn` folded.
    fn conv(&self, conv: &str, bn: &str, shape: [usize; 4]) -> Result<WeightBias, ModelError>;
    fn linear(&self, cout: usize, cin: usize) -> Result<Option<WeightBias>, ModelError>;
}

struct Zeros;

impl Weights for Zeros {
    fn conv(&self, _: &str, _: &str, s: [usize; 4]) -> Result<WeightBias, ModelError> {
        Ok((vec![0.0; s.iter().product()], vec![0.0; s[0]]))
    }
    fn linear(&self, cout: usize, cin: usize) -> Result<Option<WeightBias>, ModelError> {
        Ok(Some((vec![0.0; cout * cin], vec![0.0; cout])))
    }
}

struct Named<'a> {
    st: &'a SafeTensors,
    /// Prefix of every name (e.g. "backbone."), found from `conv1.weight`.
    prefix: String,
}

impl Named<'_> {
    fn bad(&self, why: String) -> ModelError {
        ModelError::Invalid {
            path: self.st.path.clone(),
            why,
        }
    }

    fn get(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>, ModelError> {
        let full = format!("{}{name}", self.prefix);
        if !self.st.has(&full) {
            return Ok(None);
        }
        let (shape, v) = self.st.get(&full)?;
        if v.len() != len {
            return Err(self.bad(format!("{full} has shape {shape:?}, expected {len} values")));
        }
        Ok(Some(v))
    }
}

impl Weights for Named<'_> {
    fn conv(&self, conv: &str, bn: &str, s: [usize; 4]) -> Result<WeightBias, ModelError> {
        let (cout, per) = (s[0], s[1] * s[2] * s[3]);
        let mut w = self
            .get(&format!("{conv}.weight"), cout * per)?
            .ok_or_else(|| self.bad(format!("no tensor {}{conv}.weight", self.prefix)))?;
        let mut b = self
            .get(&format!("{conv}.bias"), cout)?
            .unwrap_or_else(|| vec![0.0; cout]);
        let bn_part = |k: &str| self.get(&format!("{bn}.{k}"), cout);
        if let Some(gamma) = bn_part("weight")? {
            let missing = |k: &str| self.bad(format!("{}{bn}.{k} is missing", self.prefix));
            let beta = bn_part("bias")?.ok_or_else(|| missing("bias"))?;
            let mean = bn_part("running_mean")?.ok_or_else(|| missing("running_mean"))?;
            let var = bn_part("running_var")?.ok_or_else(|| missing("running_var"))?;
            for o in 0..cout {
                let g = gamma[o] / (var[o] + BN_EPS).sqrt();
                w[o * per..(o + 1) * per].iter_mut().for_each(|x| *x *= g);
                b[o] = (b[o] - mean[o]) * g + beta[o];
            }
        }
        Ok((w, b))
    }

    fn linear(&self, cout: usize, cin: usize) -> Result<Option<WeightBias>, ModelError> {
        for stem in ["projection", "embeddings.1"] {
            if let Some(w) = self.get(&format!("{stem}.weight"), cout * cin)? {
                let b = self
                    .get(&format!("{stem}.bias"), cout)?
                    .unwrap_or_else(|| vec![0.0; cout]);
                return Ok(Some((w, b)));
            }
        }
        Ok(None)
    }
}

/// ResNet-50 with SSCD's head from a torchvision-named safetensors file.
pub fn from_torchvision(st: &SafeTensors) -> Result<Network, ModelError> {
    let prefix = ["", "backbone.", "model.", "module."]
        .into_iter()
        .find(|p| st.has(&format!("{p}conv1.weight")))
        .ok_or_else(|| ModelError::Invalid {
            path: st.path.clone(),
            why: "no conv1.weight: not a torchvision-style ResNet".into(),
        })?;
    let named = Named {
        st,
        prefix: prefix.to_string(),
    };
    let mut net = build(&named, RESNET50_BLOCKS, 64, 512)?;
    net.name = "sscd-resnet50".into();
    net.fingerprint = st.fingerprint();
    Ok(net)
}

/// The architecture with zero weights: `blocks` bottlenecks per stage,
/// stem width `width` (64 for ResNet-50), projection to `dim`. Tests give it
/// random weights with [`Network::randomized`].
pub fn architecture(blocks: [usize; 4], width: usize, dim: usize) -> Network {
    build(&Zeros, blocks, width, dim).expect("zero weights always fit")
}

fn build(
    wts: &dyn Weights,
    blocks: [usize; 4],
    width: usize,
    dim: usize,
) -> Result<Network, ModelError> {
    let mut layers = Vec::new();
    let conv = |layers: &mut Vec<Layer>, name: &str, bn: &str, cin, cout, k, stride, act, from| {
        let (weight, bias) = wts.conv(name, bn, [cout, cin, k, k])?;
        layers.push(Layer::Conv(Conv {
            name: name.to_string(),
            cin,
            cout,
            k,
            stride,
            groups: 1,
            padding: Padding::Explicit([k / 2; 4]),
            act,
            weight,
            bias,
            from,
            int8: None,
            winograd: Default::default(),
        }));
        Ok::<usize, ModelError>(layers.len() - 1)
    };
    conv(&mut layers, "conv1", "bn1", 3, width, 7, 2, Act::Relu, None)?;
    layers.push(Layer::MaxPool {
        k: 3,
        stride: 2,
        pad: 1,
    });
    let mut input = layers.len() - 1; // the layer whose output enters the block
    let mut cin = width;
    for (stage, &n) in blocks.iter().enumerate() {
        let mid = width << stage;
        let cout = mid * 4;
        for i in 0..n {
            let p = format!("layer{}.{i}", stage + 1);
            let stride = if i == 0 && stage > 0 { 2 } else { 1 };
            conv(
                &mut layers,
                &format!("{p}.conv1"),
                &format!("{p}.bn1"),
                cin,
                mid,
                1,
                1,
                Act::Relu,
                None,
            )?;
            conv(
                &mut layers,
                &format!("{p}.conv2"),
                &format!("{p}.bn2"),
                mid,
                mid,
                3,
                stride,
                Act::Relu,
                None,
            )?;
            let main = conv(
                &mut layers,
                &format!("{p}.conv3"),
                &format!("{p}.bn3"),
                mid,
                cout,
                1,
                1,
                Act::None,
                None,
            )?;
            let from = if i == 0 {
                // The shortcut's 1×1 (strided) conv reads the block input;
                // the sum adds the main branch back to its output.
                let (ds, bn) = (format!("{p}.downsample.0"), format!("{p}.downsample.1"));
                conv(
                    &mut layers,
                    &ds,
                    &bn,
                    cin,
                    cout,
                    1,
                    stride,
                    Act::None,
                    Some(input),
                )?;
                main
            } else {
                input
            };
            layers.push(Layer::Add {
                from,
                act: Act::Relu,
            });
            input = layers.len() - 1;
            cin = cout;
        }
    }
    let projection = wts.linear(dim, cin)?.map(|(weight, bias)| Conv {
        name: "projection".into(),
        cin,
        cout: dim,
        k: 1,
        stride: 1,
        groups: 1,
        padding: Padding::Explicit([0; 4]),
        act: Act::None,
        weight,
        bias,
        from: None,
        int8: None,
        winograd: Default::default(),
    });
    let net = Network {
        name: "resnet".into(),
        layers,
        input: SSCD_INPUT,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        gem_p: 3.0,
        gem_clamp: 1e-6,
        classifier: None,
        projection,
        fingerprint: String::new(),
    };
    net.check_channels().map_err(|why| ModelError::Invalid {
        path: "<resnet>".into(),
        why,
    })?;
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::cpu;
    use crate::cnn::safetensors::write_f32;

    #[test]
    fn resnet50_has_the_published_shape() {
        let net = architecture(RESNET50_BLOCKS, 64, 512);
        let convs = net
            .layers
            .iter()
            .filter(|l| matches!(l, Layer::Conv(_)))
            .count();
        let adds = net
            .layers
            .iter()
            .filter(|l| matches!(l, Layer::Add { .. }))
            .count();
        assert_eq!((convs, adds), (53, 16));
        let params: usize = net
            .layers
            .iter()
            .filter_map(|l| match l {
                Layer::Conv(c) => Some(c.weight.len()),
                _ => None,
            })
            .sum();
        // torchvision's ResNet-50 trunk: 23.45 M conv weights (25.56 M with
        // BatchNorm and the 1000-class fc).
        assert_eq!(params, 23_454_912);
        assert_eq!(net.embedding_dim(), 512);
    }

    #[test]
    fn batchnorm_is_folded_into_the_stem() {
        // A stem-only file: conv1 with random weights, bn1 with known stats.
        let (cout, k) = (64usize, 7usize);
        let w: Vec<f32> = (0..cout * 3 * k * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 500.0)
            .collect();
        let gamma: Vec<f32> = (0..cout).map(|i| 0.5 + i as f32 / 64.0).collect();
        let beta: Vec<f32> = (0..cout).map(|i| i as f32 / 10.0 - 3.0).collect();
        let mean: Vec<f32> = (0..cout).map(|i| (i % 7) as f32 / 7.0).collect();
        let var: Vec<f32> = (0..cout).map(|i| 0.2 + (i % 5) as f32).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stem.safetensors");
        write_f32(
            &path,
            &[
                ("conv1.weight", vec![cout, 3, k, k], &w),
                ("bn1.weight", vec![cout], &gamma),
                ("bn1.bias", vec![cout], &beta),
                ("bn1.running_mean", vec![cout], &mean),
                ("bn1.running_var", vec![cout], &var),
            ],
        )
        .unwrap();
        let st = SafeTensors::open(&path).unwrap();
        let named = Named {
            st: &st,
            prefix: String::new(),
        };
        let (fw, fb) = named.conv("conv1", "bn1", [cout, 3, k, k]).unwrap();
        // conv(x) with folded weights = γ·(conv(x) − μ)/√(σ² + ε) + β.
        let x: Vec<f32> = (0..3 * 9 * 9).map(|i| (i % 13) as f32 / 13.0).collect();
        let mk = |weight: Vec<f32>, bias: Vec<f32>| Conv {
            name: "c".into(),
            cin: 3,
            cout,
            k,
            stride: 2,
            groups: 1,
            padding: Padding::Explicit([3; 4]),
            act: Act::None,
            weight,
            bias,
            from: None,
            int8: None,
            winograd: Default::default(),
        };
        let (raw, ..) = cpu::conv(&mk(w.clone(), vec![0.0; cout]), &x, 9, 9);
        let (folded, ..) = cpu::conv(&mk(fw, fb), &x, 9, 9);
        let hw = raw.len() / cout;
        for o in 0..cout {
            for p in 0..hw {
                let want =
                    gamma[o] * (raw[o * hw + p] - mean[o]) / (var[o] + BN_EPS).sqrt() + beta[o];
                assert!((folded[o * hw + p] - want).abs() < 1e-4, "channel {o}");
            }
        }
        // The rest of the network is missing: a clear error, not a panic.
        let err = from_torchvision(&st).expect_err("incomplete file");
        assert!(err.to_string().contains("layer1.0.conv1.weight"), "{err}");
    }

    #[test]
    fn a_small_resnet_runs_and_its_shortcuts_matter() {
        let net = architecture([1, 1, 1, 1], 8, 16).randomized(5);
        let x = crate::cnn::Tensor {
            n: 1,
            c: 3,
            h: 40,
            w: 36,
            data: (0..3 * 40 * 36)
                .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
                .collect(),
        };
        let e = cpu::embed(&net, &x);
        assert_eq!(e[0].len(), 16);
        assert!((e[0].iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-4);
        // Dropping the first shortcut conv's input changes the result: the
        // `from` wiring is live, not ignored.
        let mut cut = net.clone();
        for l in &mut cut.layers {
            if let Layer::Conv(c) = l {
                if c.from.is_some() {
                    c.weight.iter_mut().for_each(|w| *w = 0.0);
                    break;
                }
            }
        }
        let e2 = cpu::embed(&cut, &x);
        assert!(crate::cnn::cosine(&e[0], &e2[0]) < 0.9999);
    }
}

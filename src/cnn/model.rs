//! The network as data, loaded from a safetensors file whose metadata
//! describes it (`lookalike.arch`: the layer list; `lookalike.input`:
//! preprocessing; `lookalike.embedding`: which layer is pooled). See
//! `models/efficientnet_lite0/README.md` for the schema.

use std::path::Path;

use serde_json::Value;

use super::safetensors::{ModelError, SafeTensors};

/// Activation applied after a convolution or residual sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Identity.
    None,
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6), as in MobileNet and EfficientNet-Lite.
    Relu6,
}

impl Act {
    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::None => x,
            Act::Relu => x.max(0.0),
            Act::Relu6 => x.clamp(0.0, 6.0),
        }
    }

    /// The code the WGSL kernels take.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// How a convolution pads its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// TensorFlow "SAME": out = ceil(in / stride); the total padding
    /// max((out − 1)·stride + k − in, 0) splits with the smaller half first
    /// (top/left). Asymmetric for even inputs and stride 2.
    TfSame,
    /// Fixed [top, left, bottom, right] whatever the input size.
    Explicit([usize; 4]),
}

impl Padding {
    /// The padding [top, left, bottom, right] and the output size (h, w) for
    /// an input h × w.
    pub fn resolve(
        self,
        h: usize,
        w: usize,
        k: usize,
        stride: usize,
    ) -> ([usize; 4], usize, usize) {
        match self {
            Padding::TfSame => {
                let axis = |n: usize| {
                    let out = n.div_ceil(stride);
                    let total = ((out - 1) * stride + k).saturating_sub(n);
                    (total / 2, total - total / 2, out)
                };
                let (t, b, oh) = axis(h);
                let (l, r, ow) = axis(w);
                ([t, l, b, r], oh, ow)
            }
            Padding::Explicit(p) => {
                let oh = (h + p[0] + p[2] - k) / stride + 1;
                let ow = (w + p[1] + p[3] - k) / stride + 1;
                (p, oh, ow)
            }
        }
    }
}

/// A convolution with its weights, BatchNorm already folded in.
#[derive(Clone, Debug)]
pub struct Conv {
    /// Layer name from the weight file, for error messages.
    pub name: String,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side (square kernels only).
    pub k: usize,
    /// Stride along both axes.
    pub stride: usize,
    /// Channel groups (`cin` for a depthwise convolution).
    pub groups: usize,
    /// How the input is padded.
    pub padding: Padding,
    /// Activation after the bias.
    pub act: Act,
    /// OIHW: cout × (cin / groups) × k × k, BatchNorm folded in.
    pub weight: Vec<f32>,
    /// One bias per output channel.
    pub bias: Vec<f32>,
    /// Reads the output of layer `from` instead of the previous layer's
    /// (a ResNet shortcut's downsample convolution reads the block input).
    pub from: Option<usize>,
    /// The integer form of a quantised model's convolution, which the CPU
    /// engine runs instead of `weight` (see [`Int8Conv`]); `None` for float
    /// models and for what the int8 kernels do not cover.
    pub int8: Option<std::sync::Arc<Int8Conv>>,
    /// The weights as the CPU engine's Winograd convolutions read them,
    /// made on first use (empty until then; see `cnn::cpu`).
    pub winograd: crate::cnn::cpu::WinogradWeights,
}

/// A convolution of an int8 QDQ model as its integers: the input is
/// quantised to u8 at `in_scale` / `in_zero` (the QuantizeLinear that feeds
/// the convolution in the model file), the weights are symmetric i8 with
/// one scale per output channel. The product is exact in i32; then
/// `(acc − in_zero·Σw) · in_scale · w_scale[o] + bias[o]` and the
/// activation give f32 (ONNX Runtime's QLinearConv arithmetic, without
/// rounding the output to u8).
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Conv {
    /// Input scale: real = (q − in_zero) · in_scale.
    pub in_scale: f32,
    /// Input zero point (u8).
    pub in_zero: u8,
    /// OIHW like [`Conv::weight`], as the model stores them.
    pub weight: Vec<i8>,
    /// One scale per output channel: real weight = q · `w_scale[o]`.
    pub w_scale: Vec<f32>,
    /// `weight` in the CPU kernels' layout.
    pub packed: crate::cnn::cpu::PackedInt8,
}

impl Int8Conv {
    /// The integer form of a `cout × cin × k × k` convolution (`cout` is
    /// `w_scale.len()`), packed for the CPU kernels.
    pub fn new(
        in_scale: f32,
        in_zero: u8,
        weight: Vec<i8>,
        w_scale: Vec<f32>,
        cin: usize,
        k: usize,
    ) -> Int8Conv {
        let mut q = Int8Conv {
            in_scale,
            in_zero,
            weight,
            w_scale,
            packed: Default::default(),
        };
        q.packed = crate::cnn::cpu::PackedInt8::new(&q, q.w_scale.len(), cin, k);
        q
    }
}

/// One layer of the feature network, in execution order.
#[derive(Clone, Debug)]
pub enum Layer {
    /// A convolution.
    Conv(Conv),
    /// Residual: this layer's input plus the output of layer `from`, then
    /// `act` (ResNet applies ReLU after the sum; MobileNet-style nets none).
    Add {
        /// Index of the earlier layer whose output is added.
        from: usize,
        /// Activation after the sum.
        act: Act,
    },
    /// k×k max pooling, padded with −∞ on every side by `pad`.
    MaxPool {
        /// Window side.
        k: usize,
        /// Step between windows.
        stride: usize,
        /// Padding on every side.
        pad: usize,
    },
}

impl Layer {
    /// The earlier layer whose output this one reads besides its input.
    pub fn reads(&self) -> Option<usize> {
        match self {
            Layer::Conv(c) => c.from,
            Layer::Add { from, .. } => Some(*from),
            Layer::MaxPool { .. } => None,
        }
    }
}

/// Output side of a max pool (floor mode, as torchvision's and ONNX's default).
pub fn pool_out(n: usize, k: usize, stride: usize, pad: usize) -> usize {
    (n + 2 * pad).saturating_sub(k) / stride + 1
}

/// A fully connected layer: `weight` is `cout × cin`, row-major.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Input features.
    pub cin: usize,
    /// Output features.
    pub cout: usize,
    /// Weights, `cout × cin`, row-major.
    pub weight: Vec<f32>,
    /// One bias per output.
    pub bias: Vec<f32>,
}

/// A whole embedding network: layers, input preprocessing and pooling.
#[derive(Clone, Debug)]
pub struct Network {
    /// e.g. "efficientnet-lite0".
    pub name: String,
    /// Feature layers up to and including the pooled one.
    pub layers: Vec<Layer>,
    /// Input (width, height) in pixels, RGB.
    pub input: (usize, usize),
    /// Per-channel mean subtracted from 0–255 RGB values.
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean.
    pub std: [f32; 3],
    /// GeM exponent and clamp of the embedding.
    pub gem_p: f32,
    /// Lower clamp of activations before the GeM power.
    pub gem_clamp: f32,
    /// ImageNet classifier after global average pooling (sanity checks only).
    pub classifier: Option<Linear>,
    /// Projection of the pooled vector (SSCD: 2048 → 512) as a 1×1
    /// convolution of a C×1×1 map, before the final L2 normalisation.
    pub projection: Option<Conv>,
    /// Identity of the weights (xxh3-128 of the file, hex), so an index can
    /// refuse queries embedded by another model.
    pub fingerprint: String,
}

impl Network {
    /// Reads and parses a safetensors model file.
    pub fn load(path: &Path) -> Result<Network, ModelError> {
        let st = SafeTensors::open(path)?;
        Self::from_safetensors(&st)
    }

    /// Builds the network from a parsed safetensors file, following the layer
    /// list and preprocessing its metadata describe.
    pub fn from_safetensors(st: &SafeTensors) -> Result<Network, ModelError> {
        let bad = |why: String| ModelError::Invalid {
            path: st.path.clone(),
            why,
        };
        let meta = |k: &str| -> Result<Value, ModelError> {
            let s = st
                .metadata
                .get(k)
                .ok_or_else(|| bad(format!("metadata has no {k}")))?;
            serde_json::from_str(s).map_err(|e| bad(format!("metadata {k} is not JSON: {e}")))
        };
        let arch = meta("lookalike.arch")?;
        let input = meta("lookalike.input")?;
        let emb = meta("lookalike.embedding")?;
        let rule = st
            .metadata
            .get("lookalike.padding")
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|v| v["rule"].as_str().map(str::to_string))
            .unwrap_or_else(|| "explicit".into());
        let pooled = emb["layer"].as_str().unwrap_or("head").to_string();
        let num = |v: &Value, k: &str| -> Result<usize, ModelError> {
            v[k].as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| bad(format!("layer {} lacks {k}", v["name"])))
        };
        let mut layers = Vec::new();
        let mut classifier = None;
        let mut done = false;
        for l in arch
            .as_array()
            .ok_or_else(|| bad("lookalike.arch is not a list".into()))?
        {
            let kind = l["type"].as_str().unwrap_or_default();
            match kind {
                "conv" if !done => {
                    let name = l["name"].as_str().unwrap_or_default().to_string();
                    let (cin, cout, k) = (num(l, "in")?, num(l, "out")?, num(l, "k")?);
                    let (stride, groups) = (num(l, "stride")?, num(l, "groups")?);
                    let padding = if rule == "tf_same" {
                        Padding::TfSame
                    } else {
                        let p = super::safetensors::usize_list(&l["pad"]);
                        if p.len() != 4 {
                            return Err(bad(format!("conv {name}: pad must be [t, l, b, r]")));
                        }
                        Padding::Explicit([p[0], p[1], p[2], p[3]])
                    };
                    let act = match l["act"].as_str().unwrap_or("none") {
                        "relu6" => Act::Relu6,
                        "relu" => Act::Relu,
                        "none" => Act::None,
                        a => return Err(bad(format!("conv {name}: activation {a} unknown"))),
                    };
                    if groups == 0
                        || cin % groups != 0
                        || cout % groups != 0
                        || stride == 0
                        || k == 0
                    {
                        return Err(bad(format!("conv {name}: inconsistent shape")));
                    }
                    let (ws, weight) = st.get(l["weight"].as_str().unwrap_or_default())?;
                    let (_, bias) = st.get(l["bias"].as_str().unwrap_or_default())?;
                    if ws != [cout, cin / groups, k, k] || bias.len() != cout {
                        return Err(bad(format!(
                            "conv {name}: weight shape {ws:?} does not match"
                        )));
                    }
                    layers.push(Layer::Conv(Conv {
                        name: name.clone(),
                        cin,
                        cout,
                        k,
                        stride,
                        groups,
                        padding,
                        act,
                        weight,
                        bias,
                        from: None,
                        int8: None,
                        winograd: Default::default(),
                    }));
                    done = name == pooled;
                }
                "add" if !done => {
                    let from = num(l, "from")?;
                    if from >= layers.len() {
                        return Err(bad(format!(
                            "add {}: from {from} is not an earlier layer",
                            l["name"]
                        )));
                    }
                    layers.push(Layer::Add {
                        from,
                        act: Act::None,
                    });
                }
                "linear" => {
                    let (ws, weight) = st.get(l["weight"].as_str().unwrap_or_default())?;
                    let (_, bias) = st.get(l["bias"].as_str().unwrap_or_default())?;
                    let (cin, cout) = (num(l, "in")?, num(l, "out")?);
                    if ws != [cout, cin] || bias.len() != cout {
                        return Err(bad("classifier shape does not match".into()));
                    }
                    classifier = Some(Linear {
                        cin,
                        cout,
                        weight,
                        bias,
                    });
                }
                _ => {}
            }
        }
        if !done {
            return Err(bad(format!(
                "no conv layer named {pooled} (the embedding layer)"
            )));
        }
        let arr3 = |v: &Value| -> [f32; 3] {
            std::array::from_fn(|i| v[i].as_f64().unwrap_or(0.0) as f32)
        };
        let size = &input["size"];
        let name = st
            .metadata
            .get("lookalike.model")
            .cloned()
            .unwrap_or_else(|| "unnamed".into());
        let net = Network {
            name,
            layers,
            input: (
                size[1].as_u64().unwrap_or(224) as usize,
                size[0].as_u64().unwrap_or(224) as usize,
            ),
            mean: arr3(&input["mean"]),
            std: arr3(&input["std"]),
            gem_p: emb["p"].as_f64().unwrap_or(3.0) as f32,
            gem_clamp: emb["clamp_min"].as_f64().unwrap_or(1e-6) as f32,
            classifier,
            projection: None,
            fingerprint: st.fingerprint(),
        };
        net.check_channels().map_err(bad)?;
        Ok(net)
    }

    /// Every layer's input channels equal the previous output (3 at first).
    pub fn check_channels(&self) -> Result<(), String> {
        let mut c = 3;
        let mut outs = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            if let Some(f) = l.reads() {
                if f >= i {
                    return Err(format!("layer {i} reads layer {f}, not an earlier one"));
                }
            }
            match l {
                Layer::Conv(cv) => {
                    if let Some(f) = cv.from {
                        c = outs[f];
                    }
                    if cv.cin != c {
                        return Err(format!(
                            "conv {} takes {} channels, gets {c}",
                            cv.name, cv.cin
                        ));
                    }
                    c = cv.cout;
                }
                Layer::Add { from, .. } => {
                    if outs.get(*from) != Some(&c) {
                        return Err(format!("residual add from layer {from} has other channels"));
                    }
                }
                Layer::MaxPool { k, stride, .. } => {
                    if *k == 0 || *stride == 0 {
                        return Err(format!("max pool {i}: zero kernel or stride"));
                    }
                }
            }
            outs.push(c);
        }
        if let Some(p) = &self.projection {
            if p.cin != c || p.k != 1 || p.groups != 1 {
                return Err(format!(
                    "projection takes {} channels as a 1×1 conv, the trunk gives {c}",
                    p.cin
                ));
            }
        }
        Ok(())
    }

    /// Whether the CPU engine runs this network's convolutions in int8
    /// (a quantised model with its [`Int8Conv`]s kept).
    pub fn is_int8(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l, Layer::Conv(c) if c.int8.is_some()))
    }

    /// The same network with every [`Int8Conv`] dropped: the CPU engine then
    /// runs the dequantised f32 weights, as the WGSL engine always does
    /// (`LOOKALIKE_CNN_F32=1`, and the reference of the parity tests).
    pub fn float_only(mut self) -> Network {
        for l in &mut self.layers {
            if let Layer::Conv(c) = l {
                c.int8 = None;
            }
        }
        self
    }

    /// Channels of the embedding.
    pub fn embedding_dim(&self) -> usize {
        if let Some(p) = &self.projection {
            return p.cout;
        }
        self.layers
            .iter()
            .rev()
            .find_map(|l| match l {
                Layer::Conv(c) => Some(c.cout),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// The same architecture with seeded random weights (He-scaled), for
    /// tests that need no downloaded or shipped weights.
    pub fn randomized(&self, seed: u64) -> Network {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let mut net = self.clone();
        let convs = net.layers.iter_mut().filter_map(|l| match l {
            Layer::Conv(c) => Some(c),
            _ => None,
        });
        for c in convs.chain(net.projection.as_mut()) {
            let fan_in = (c.cin / c.groups * c.k * c.k) as f64;
            let scale = (3.0 / fan_in).sqrt();
            c.weight
                .iter_mut()
                .for_each(|w| *w = (rnd() * scale) as f32);
            c.bias.iter_mut().for_each(|b| *b = (rnd() * 0.1) as f32);
            c.int8 = None;
        }
        net.classifier = None;
        net.fingerprint = format!("random-{seed}");
        net
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_same_padding_matches_the_recorded_pads() {
        // From models/efficientnet_lite0 metadata at 224: stride-2 k3 pads
        // [0, 0, 1, 1], stride-2 k5 [1, 1, 2, 2], stride 1 k//2 all round.
        assert_eq!(
            Padding::TfSame.resolve(224, 224, 3, 2),
            ([0, 0, 1, 1], 112, 112)
        );
        assert_eq!(
            Padding::TfSame.resolve(56, 56, 5, 2),
            ([1, 1, 2, 2], 28, 28)
        );
        assert_eq!(Padding::TfSame.resolve(7, 7, 3, 1), ([1, 1, 1, 1], 7, 7));
        assert_eq!(Padding::TfSame.resolve(7, 9, 3, 2), ([1, 1, 1, 1], 4, 5));
        assert_eq!(
            Padding::Explicit([3, 3, 3, 3]).resolve(224, 224, 7, 2),
            ([3, 3, 3, 3], 112, 112)
        );
    }
}

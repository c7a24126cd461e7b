//! A network uploaded to the device: its convolutions' weights and biases in
//! GPU buffers, the layer list as the recorder walks it, and the shape
//! bookkeeping (output shapes, largest feature map, images per chunk).

use super::{Precision, BUFFER_BUDGET, MAX_CHUNK_IMAGES};
use crate::cnn::model::{pool_out, Act, Conv, Layer, Padding};
use crate::gpu::pipelines::storage_init;
use crate::gpu::GpuEngine;

/// A convolution whose weights (stored as the network's precision) and
/// biases (f32) live on the device.
pub(super) struct GpuConv {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub groups: usize,
    pub padding: Padding,
    pub act: Act,
    pub weight: wgpu::Buffer,
    pub bias: wgpu::Buffer,
}

impl GpuConv {
    /// Weights stored as `p`; biases always f32 (one value per output channel).
    pub fn upload(e: &GpuEngine, c: &Conv, p: Precision) -> GpuConv {
        GpuConv {
            cin: c.cin,
            cout: c.cout,
            k: c.k,
            stride: c.stride,
            groups: c.groups,
            padding: c.padding,
            act: c.act,
            weight: storage_init(&e.device, &p.encode(&c.weight)),
            bias: storage_init(&e.device, bytemuck::cast_slice(&c.bias)),
        }
    }

    /// Whether `conv_pointwise` runs it: 1×1, stride 1, ungrouped, unpadded.
    pub fn pointwise(&self, pad: [usize; 4]) -> bool {
        self.k == 1 && self.stride == 1 && self.groups == 1 && pad == [0; 4]
    }
}

/// One layer of an uploaded network.
pub(super) enum GpuLayer {
    /// The convolution and the earlier layer it reads (None: the previous).
    Conv(GpuConv, Option<usize>),
    /// The residual sum with layer `from`'s output, then `act`.
    Add { from: usize, act: Act },
    /// k×k max pooling.
    MaxPool { k: usize, stride: usize, pad: usize },
}

impl GpuLayer {
    /// The earlier layer this one reads again (as `Layer::reads`).
    pub fn reads(&self) -> Option<usize> {
        match self {
            GpuLayer::Conv(_, from) => *from,
            GpuLayer::Add { from, .. } => Some(*from),
            GpuLayer::MaxPool { .. } => None,
        }
    }
}

/// A network whose weights live on one [`GpuEngine`]'s device; use it only
/// with the engine that uploaded it.
pub struct GpuNetwork {
    /// How its weights and feature maps are stored.
    pub(super) precision: Precision,
    pub(super) layers: Vec<GpuLayer>,
    pub(super) gem_p: f32,
    pub(super) gem_clamp: f32,
    /// SSCD's projection of the pooled vector, run as a 1×1 conv.
    pub(super) projection: Option<GpuConv>,
    /// Per layer: the index of the last layer that reads its output again
    /// (a residual add or a shortcut conv), if any.
    pub(super) last_use: Vec<Option<usize>>,
}

impl GpuNetwork {
    /// Uploads `layers` (no projection). Panics for f16 on a device
    /// without SHADER_F16, or for a layer that reads a later one: both are
    /// caller errors, not input.
    pub(super) fn new(
        e: &GpuEngine,
        layers: &[Layer],
        gem_p: f32,
        gem_clamp: f32,
        precision: Precision,
    ) -> GpuNetwork {
        assert!(
            precision == Precision::F32 || e.supports_f16(),
            "f16 CNN storage needs SHADER_F16, which {} lacks",
            e.describe()
        );
        let mut last_use = vec![None; layers.len()];
        for (i, l) in layers.iter().enumerate() {
            if let Some(from) = l.reads() {
                assert!(from < i, "layer {i} reads a later layer {from}");
                last_use[from] = Some(i);
            }
        }
        let layers = layers
            .iter()
            .map(|l| match l {
                Layer::Conv(c) => GpuLayer::Conv(GpuConv::upload(e, c, precision), c.from),
                &Layer::Add { from, act } => GpuLayer::Add { from, act },
                &Layer::MaxPool { k, stride, pad } => GpuLayer::MaxPool { k, stride, pad },
            })
            .collect();
        GpuNetwork {
            precision,
            layers,
            gem_p,
            gem_clamp,
            projection: None,
            last_use,
        }
    }

    /// How this network's weights and feature maps are stored.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Output shape (c, h, w) for one input image of c × h × w, and the
    /// largest feature map (values per image) on the way, input included.
    pub(super) fn shapes(&self, c: usize, h: usize, w: usize) -> ((usize, usize, usize), usize) {
        let mut cur = (c, h, w);
        let mut outs = Vec::with_capacity(self.layers.len());
        let mut most = c * h * w;
        for l in &self.layers {
            cur = match l {
                GpuLayer::Conv(cv, from) => {
                    let (c, h, w) = from.map_or(cur, |f| outs[f]);
                    assert_eq!(c, cv.cin, "conv takes {} channels, gets {c}", cv.cin);
                    let (_, oh, ow) = cv.padding.resolve(h, w, cv.k, cv.stride);
                    (cv.cout, oh, ow)
                }
                GpuLayer::Add { .. } => cur,
                &GpuLayer::MaxPool { k, stride, pad } => (
                    cur.0,
                    pool_out(cur.1, k, stride, pad),
                    pool_out(cur.2, k, stride, pad),
                ),
            };
            most = most.max(cur.0 * cur.1 * cur.2);
            outs.push(cur);
        }
        (cur, most)
    }

    /// Images per chunk so that no feature-map buffer passes the binding limit.
    pub(super) fn chunk_images(&self, e: &GpuEngine, per_image: usize) -> usize {
        let bytes = (per_image * self.precision.bytes()) as u64;
        let limit = e.max_binding_bytes();
        assert!(
            bytes <= limit,
            "one image's feature map ({bytes} bytes) exceeds the storage binding limit ({limit})"
        );
        ((limit.min(BUFFER_BUDGET) / bytes.max(1)) as usize).clamp(1, MAX_CHUNK_IMAGES)
    }
}

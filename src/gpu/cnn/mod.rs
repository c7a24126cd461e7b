//! Host side of the CNN kernels (`shaders/cnn.wgsl`): the network of
//! [`crate::cnn`] run on the GPU, held against `cnn::cpu` by
//! `tests/cnn_parity.rs`.
//!
//! [`GpuEngine::upload_network`] copies the weights to the device once; a
//! [`GpuNetwork`] then runs any number of batches. Per batch, every layer is
//! encoded into one compute pass (one command buffer): general convolutions
//! (depthwise, grouped, few-channel) by `conv_direct`, 1×1 stride-1 ones by
//! the tiled GEMM `conv_pointwise`, other ungrouped ones (ResNet's 7×7 stem,
//! 3×3 and strided 1×1 convs) by the implicit GEMM `conv_gemm`, residual adds by `add` (out of place), and
//! the embedding's GeM pooling by `gem`. Intermediate feature maps come from a
//! small pool of equal-size buffers, recycled as soon as no later layer reads
//! them (residual sources are held until their last `Add`). Big batches are
//! split so no feature-map buffer exceeds the storage binding limit.
//!
//! ResNets add shortcut convolutions that read an earlier layer (`Conv.from`),
//! ReLU after the residual sum, a `max_pool`, and SSCD's projection of the
//! pooled vector, run by `conv_pointwise` as a 1×1 conv of an n × c × 1 × 1 map.
//!
//! Precision: arithmetic and accumulation are f32 always. Weights and
//! feature maps (the GeM output and the projection included) are stored as
//! f16 where the device has SHADER_F16 ([`Precision::F16`], half the memory
//! traffic), else as f32; biases stay f32. The engine's default is f16 where
//! possible, unless the engine asks for f32; [`GpuEngine::upload_network_as`]
//! picks per network. Both precisions compile from one WGSL source written
//! against a storage type `S` (see `pipelines::cnn_family`). The host
//! converts to f16 on upload (round to nearest even) and back on readback.
//! The final L2 normalisation of each embedding (512–2048 floats) is done on
//! the CPU after readback.
//!
//! Files: `precision` (f32 or f16 storage, upload and readback
//! conversions), `network` (weights on the device, shapes), `record` (one
//! batch's dispatches, buffer pool, the pass and its readback).

mod network;
mod precision;
mod record;

use std::collections::HashMap;

use super::pipelines::{grid, storage, storage_init};
use super::GpuEngine;
use crate::cnn::model::{Conv, Layer, Network};
use crate::cnn::{l2_normalize, Tensor};
pub use network::GpuNetwork;
use network::{GpuConv, GpuLayer};
pub use precision::Precision;
use record::{Dispatch, Map, Params, Recorder};

/// Images per chunk at most (bounds memory; the GPU is full long before).
const MAX_CHUNK_IMAGES: usize = 64;
/// Bytes per feature-map buffer we aim to stay under.
const BUFFER_BUDGET: u64 = 256 << 20;
/// Ungrouped convolutions with at least this many products per output go to
/// the implicit GEMM `conv_gemm` (ResNet's 7×7 stem: 147; its 3×3: ≥ 576);
/// the few-channel ones stay on `conv_direct`, whose tiles would be empty.
const GEMM_MIN_REDUCTION: usize = 64;
/// Output tile of `conv_pointwise` and `conv_gemm` (channels × batch-folded pixels), as in cnn.wgsl.
pub(super) const PW_TILE: usize = 64;

/// A batch whose results could not be read back from the device (a lost
/// device, a failed mapping): the caller decides, nothing panics.
#[derive(Debug, thiserror::Error)]
pub enum ReadbackError {
    /// Waiting for the GPU to finish failed.
    #[error("waiting for the GPU failed: {0}")]
    Poll(#[from] wgpu::PollError),
    /// Mapping the readback buffer failed.
    #[error("mapping the CNN readback buffer failed: {0}")]
    Map(#[from] wgpu::BufferAsyncError),
    /// The mapped buffer could not be viewed.
    #[error("reading the mapped CNN readback buffer failed: {0}")]
    Range(#[from] wgpu::MapRangeError),
    /// The GPU was done but the buffer's mapping never completed.
    #[error("the CNN readback buffer was not mapped within 60 s of the GPU finishing")]
    NotMapped,
}

/// What a batch run reads back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Features,
    Gem,
}

impl GpuEngine {
    /// Uploads the weights of `net` once, for any number of batches, stored
    /// in the engine's [`GpuEngine::cnn_precision`].
    pub fn upload_network(&self, net: &Network) -> GpuNetwork {
        self.upload_network_as(net, self.cnn_precision())
    }

    /// [`GpuEngine::upload_network`] with an explicit storage precision.
    /// Panics for f16 where [`GpuEngine::supports_f16`] is false.
    pub fn upload_network_as(&self, net: &Network, p: Precision) -> GpuNetwork {
        let mut g = GpuNetwork::new(self, &net.layers, net.gem_p, net.gem_clamp, p);
        g.projection = net.projection.as_ref().map(|c| GpuConv::upload(self, c, p));
        g
    }

    /// The pooled layer's feature maps, as `cnn::cpu::forward` computes them.
    /// Uploads the weights each call: reuse [`GpuEngine::upload_network`]
    /// for more than one batch.
    pub fn cnn_forward(&self, net: &Network, x: &Tensor) -> Result<Tensor, ReadbackError> {
        self.upload_network(net).forward(self, x)
    }

    /// GeM + L2 embeddings, as `cnn::cpu::embed` computes them.
    pub fn cnn_embed(&self, net: &Network, x: &Tensor) -> Result<Vec<Vec<f32>>, ReadbackError> {
        self.upload_network(net).embed(self, x)
    }

    /// One convolution of a batch (the kernel `cnn::cpu::conv` would pick:
    /// `conv_pointwise` for 1×1 stride-1 unpadded ungrouped, `conv_gemm` for
    /// other ungrouped ones with ≥ 64 products per output, else `conv_direct`).
    pub fn cnn_conv(&self, cv: &Conv, x: &Tensor) -> Result<Tensor, ReadbackError> {
        let layers = [Layer::Conv(cv.clone())];
        GpuNetwork::new(self, &layers, 1.0, 0.0, self.cnn_precision()).forward(self, x)
    }

    /// k×k max pooling of a batch (the `max_pool` kernel).
    pub fn cnn_max_pool(
        &self,
        x: &Tensor,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Tensor, ReadbackError> {
        let layers = [Layer::MaxPool { k, stride, pad }];
        GpuNetwork::new(self, &layers, 1.0, 0.0, self.cnn_precision()).forward(self, x)
    }

    /// a + b elementwise on the GPU (the residual kernel; equal shapes).
    pub fn cnn_add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor, ReadbackError> {
        assert_eq!(
            (a.n, a.c, a.h, a.w),
            (b.n, b.c, b.h, b.w),
            "cnn_add: shapes differ"
        );
        let dev = &self.device;
        let p = self.cnn_precision();
        let len = a.data.len();
        let total = u32::try_from(len).expect("cnn_add: too many elements");
        let ab = storage_init(dev, &p.encode(&a.data));
        let bb = storage_init(dev, &p.encode(&b.data));
        let out = storage(dev, (len * p.bytes()) as u64, true);
        let params = self.cnn_params(Params {
            total,
            ..Default::default()
        });
        let group = self
            .cnn_family(p)
            .bind(dev, &[&params, &ab, &bb, &bb, &out]);
        let d = Dispatch {
            entry: "add",
            group,
            grid: grid(total, self.max_dim()),
        };
        let data = self.run_and_read(p, &[d], &out, len)?;
        Ok(Tensor {
            n: a.n,
            c: a.c,
            h: a.h,
            w: a.w,
            data,
        })
    }

    /// GeM pooling on the GPU, L2 normalisation on the CPU (as `cnn::gem_l2`).
    pub fn cnn_gem(
        &self,
        t: &Tensor,
        p: f32,
        clamp_min: f32,
    ) -> Result<Vec<Vec<f32>>, ReadbackError> {
        GpuNetwork::new(self, &[], p, clamp_min, self.cnn_precision()).embed(self, t)
    }
}

impl GpuNetwork {
    /// The last layer's feature maps, NCHW (as `cnn::cpu::forward`).
    pub fn forward(&self, e: &GpuEngine, x: &Tensor) -> Result<Tensor, ReadbackError> {
        let ((c, h, w), most) = self.shapes(x.c, x.h, x.w);
        let mut out = Tensor::zeros(x.n, c, h, w);
        let chunk = self.chunk_images(e, most);
        let per_out = c * h * w;
        for start in (0..x.n).step_by(chunk) {
            let n = chunk.min(x.n - start);
            let data = self.run(e, x, start, n, most, Want::Features)?;
            out.data[start * per_out..(start + n) * per_out].copy_from_slice(&data);
        }
        Ok(out)
    }

    /// The embedding of every image (as `cnn::cpu::embed`): GeM, the
    /// projection if any, then L2 (on the host: 512–1280 floats an image).
    pub fn embed(&self, e: &GpuEngine, x: &Tensor) -> Result<Vec<Vec<f32>>, ReadbackError> {
        let ((c, _, _), most) = self.shapes(x.c, x.h, x.w);
        let dim = self.projection.as_ref().map_or(c, |p| p.cout);
        let chunk = self.chunk_images(e, most);
        let mut out = Vec::with_capacity(x.n);
        for start in (0..x.n).step_by(chunk) {
            let n = chunk.min(x.n - start);
            let data = self.run(e, x, start, n, most, Want::Gem)?;
            out.extend(data.chunks_exact(dim).map(|v| {
                let mut v = v.to_vec();
                l2_normalize(&mut v);
                v
            }));
        }
        Ok(out)
    }

    /// Images `start..start + n` of `x` through every layer in one pass
    /// (`most`: the largest feature map, values per image).
    fn run(
        &self,
        e: &GpuEngine,
        x: &Tensor,
        start: usize,
        n: usize,
        most: usize,
        want: Want,
    ) -> Result<Vec<f32>, ReadbackError> {
        let mut r = Recorder::new(e, self.precision, n, most, self.layers.len());
        let per_in = x.c * x.h * x.w;
        let batch = &x.data[start * per_in..(start + n) * per_in];
        let input = r.input(batch, x.c, x.h, x.w);
        let features = self.record_layers(&mut r, input);
        match want {
            Want::Features => r.read_map(features),
            Want::Gem => self.record_embedding(r, features),
        }
    }

    /// Records every layer from `input`; returns the last layer's output.
    fn record_layers(&self, r: &mut Recorder, input: Map) -> Map {
        let mut cur = input;
        // Layer index → its output, held for the layers that read it again.
        let mut saved: HashMap<usize, Map> = HashMap::new();
        for (i, l) in self.layers.iter().enumerate() {
            let (next, src) = match l {
                GpuLayer::Conv(cv, from) => {
                    let src = from.map_or(cur, |f| saved[&f]);
                    (r.conv(cv, src), from.map(|_| src))
                }
                &GpuLayer::Add { from, act } => {
                    let src = saved[&from];
                    (r.add(cur, src, act), Some(src))
                }
                &GpuLayer::MaxPool { k, stride, pad } => (r.max_pool(cur, k, stride, pad), None),
            };
            self.release_inputs(r, &mut saved, i, src, cur);
            cur = next;
            if self.last_use[i].is_some() {
                saved.insert(i, cur);
            }
        }
        cur
    }

    /// After layer `i`, which read `cur` and (again) `src`: returns to the
    /// pool the re-read source once its last reader ran, and `cur` unless a
    /// later layer reads it again.
    fn release_inputs(
        &self,
        r: &mut Recorder,
        saved: &mut HashMap<usize, Map>,
        i: usize,
        src: Option<Map>,
        cur: Map,
    ) {
        let held = |saved: &HashMap<usize, Map>, b: usize| saved.values().any(|m| m.buf == b);
        if let (Some(src), Some(from)) = (src, self.layers[i].reads()) {
            if self.last_use[from] == Some(i) {
                saved.remove(&from);
                if src.buf != cur.buf && !held(saved, src.buf) {
                    r.release(src);
                }
            }
        }
        if !held(saved, cur.buf) {
            r.release(cur);
        }
    }

    /// Records GeM pooling of `features` and the projection if any, runs
    /// the batch and reads back the vectors (L2 is the caller's).
    fn record_embedding(&self, mut r: Recorder, features: Map) -> Result<Vec<f32>, ReadbackError> {
        let pooled = r.gem(features, self.gem_p, self.gem_clamp);
        let Some(p) = &self.projection else {
            return r.read(&pooled, features.c);
        };
        let projected = r.project(p, &pooled, features.c);
        r.read(&projected, p.cout)
    }
}

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
//! possible, unless LOOKALIKE_CNN_F32=1; [`GpuEngine::upload_network_as`]
//! picks per network. Both precisions compile from one WGSL source written
//! against a storage type `S` (see `pipelines::cnn_family`). The host
//! converts to f16 on upload (round to nearest even) and back on readback.
//! The final L2 normalisation of each embedding (512–2048 floats) is done on
//! the CPU after readback.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use wgpu::util::DeviceExt;

use super::pipelines::{storage, storage_init, Family};
use super::GpuEngine;
use crate::cnn::model::{pool_out, Act, Conv, Layer, Network, Padding};
use crate::cnn::safetensors::{f16_to_f32, f32_to_f16};
use crate::cnn::{l2_normalize, Tensor};

/// Images per chunk at most (bounds memory; the GPU is full long before).
const MAX_CHUNK_IMAGES: usize = 64;
/// Bytes per feature-map buffer we aim to stay under.
const BUFFER_BUDGET: u64 = 256 << 20;
/// Ungrouped convolutions with at least this many products per output go to
/// the implicit GEMM `conv_gemm` (ResNet's 7×7 stem: 147; its 3×3: ≥ 576);
/// the few-channel ones stay on `conv_direct`, whose tiles would be empty.
const GEMM_MIN_REDUCTION: usize = 64;
/// Output tile of `conv_pointwise` and `conv_gemm` (channels × batch-folded
/// pixels); cnn.wgsl gets it as `PT` and `CT` (pipelines.rs).
pub(super) const PW_TILE: usize = 64;

/// How the CNN stores weights and feature maps on the device (the `S` of
/// cnn.wgsl). Arithmetic and accumulation are f32 in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// IEEE binary16 storage (needs SHADER_F16): 11 significant bits per
    /// stored value, finite up to 65 504.
    F16,
}

impl Precision {
    /// f16 where the device has it, unless LOOKALIKE_CNN_F32=1.
    pub(super) fn default_for(f16: bool) -> Precision {
        if f16 && std::env::var("LOOKALIKE_CNN_F32").as_deref() != Ok("1") {
            Precision::F16
        } else {
            Precision::F32
        }
    }

    /// `x` as this precision stores it (f16: nearest, ties to even).
    pub fn round(self, x: f32) -> f32 {
        match self {
            Precision::F32 => x,
            Precision::F16 => f16_to_f32(f32_to_f16(x)),
        }
    }

    /// Bytes per stored value.
    fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    /// `v` as the device stores it, padded to a multiple of 4 bytes (wgpu's
    /// copy alignment) for odd f16 counts.
    fn encode(self, v: &[f32]) -> Cow<'_, [u8]> {
        match self {
            Precision::F32 => Cow::Borrowed(bytemuck::cast_slice(v)),
            Precision::F16 => {
                let mut out = Vec::with_capacity((v.len() * 2).next_multiple_of(4));
                for &x in v {
                    out.extend_from_slice(&f32_to_f16(x).to_ne_bytes());
                }
                out.resize(out.len().next_multiple_of(4), 0);
                Cow::Owned(out)
            }
        }
    }

    /// The first `len` stored values of `bytes`, widened to f32.
    fn decode(self, bytes: &[u8], len: usize) -> Vec<f32> {
        match self {
            Precision::F32 => bytemuck::cast_slice::<u8, f32>(bytes)[..len].to_vec(),
            Precision::F16 => bytes[..len * 2]
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_ne_bytes([b[0], b[1]])))
                .collect(),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16 storage, f32 accumulation",
        })
    }
}

/// The uniform block of every kernel (`CnnParams` in cnn.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    oh: u32,
    ow: u32,
    k: u32,
    stride: u32,
    groups: u32,
    act: u32,
    total: u32,
    pad: [u32; 4],
    f: [f32; 4],
}

struct GpuConv {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    padding: Padding,
    act: Act,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
}

impl GpuConv {
    fn pointwise(&self, pad: [usize; 4]) -> bool {
        self.k == 1 && self.stride == 1 && self.groups == 1 && pad == [0; 4]
    }
}

enum GpuLayer {
    /// The convolution and the earlier layer it reads (None: the previous).
    Conv(GpuConv, Option<usize>),
    Add {
        from: usize,
        act: Act,
    },
    MaxPool {
        k: usize,
        stride: usize,
        pad: usize,
    },
}

impl GpuLayer {
    /// The earlier layer this one reads again (as `Layer::reads`).
    fn reads(&self) -> Option<usize> {
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
    precision: Precision,
    layers: Vec<GpuLayer>,
    gem_p: f32,
    gem_clamp: f32,
    /// SSCD's projection of the pooled vector, run as a 1×1 conv.
    projection: Option<GpuConv>,
    /// Per layer: the index of the last layer that reads its output again
    /// (a residual add or a shortcut conv), if any.
    last_use: Vec<Option<usize>>,
}

/// What a batch run reads back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Features,
    Gem,
}

/// One dispatch, recorded before the pass is encoded.
struct Dispatch {
    entry: &'static str,
    group: wgpu::BindGroup,
    grid: (u32, u32),
}

/// Feature-map buffers of one size, reused once no later layer reads them.
struct Pool<'a> {
    device: &'a wgpu::Device,
    bytes: u64,
    bufs: Vec<wgpu::Buffer>,
    free: Vec<usize>,
}

impl Pool<'_> {
    fn take(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.bufs
                .push(self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("cnn feature map"),
                    size: self.bytes.max(4).next_multiple_of(4),
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }));
            self.bufs.len() - 1
        })
    }

    fn give(&mut self, i: usize) {
        self.free.push(i);
    }
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
        g.projection = net.projection.as_ref().map(|c| upload_conv(self, c, p));
        g
    }

    /// The pooled layer's feature maps, as `cnn::cpu::forward` computes them.
    /// Uploads the weights each call: reuse [`GpuEngine::upload_network`]
    /// for more than one batch.
    pub fn cnn_forward(&self, net: &Network, x: &Tensor) -> Tensor {
        self.upload_network(net).forward(self, x)
    }

    /// GeM + L2 embeddings, as `cnn::cpu::embed` computes them.
    pub fn cnn_embed(&self, net: &Network, x: &Tensor) -> Vec<Vec<f32>> {
        self.upload_network(net).embed(self, x)
    }

    /// One convolution of a batch (the kernel `cnn::cpu::conv` would pick:
    /// `conv_pointwise` for 1×1 stride-1 unpadded ungrouped, `conv_gemm` for
    /// other ungrouped ones with ≥ 64 products per output, else `conv_direct`).
    pub fn cnn_conv(&self, cv: &Conv, x: &Tensor) -> Tensor {
        let layers = [Layer::Conv(cv.clone())];
        GpuNetwork::new(self, &layers, 1.0, 0.0, self.cnn_precision()).forward(self, x)
    }

    /// k×k max pooling of a batch (the `max_pool` kernel).
    pub fn cnn_max_pool(&self, x: &Tensor, k: usize, stride: usize, pad: usize) -> Tensor {
        let layers = [Layer::MaxPool { k, stride, pad }];
        GpuNetwork::new(self, &layers, 1.0, 0.0, self.cnn_precision()).forward(self, x)
    }

    /// a + b elementwise on the GPU (the residual kernel; equal shapes).
    pub fn cnn_add(&self, a: &Tensor, b: &Tensor) -> Tensor {
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
            grid: super::pipelines::grid(total, self.max_dim()),
        };
        let data = self.run_and_read(p, &[d], &out, len);
        Tensor {
            n: a.n,
            c: a.c,
            h: a.h,
            w: a.w,
            data,
        }
    }

    /// GeM pooling on the GPU, L2 normalisation on the CPU (as `cnn::gem_l2`).
    pub fn cnn_gem(&self, t: &Tensor, p: f32, clamp_min: f32) -> Vec<Vec<f32>> {
        GpuNetwork::new(self, &[], p, clamp_min, self.cnn_precision()).embed(self, t)
    }

    /// The CNN pipelines storing `p`.
    fn cnn_family(&self, p: Precision) -> &Family {
        self.pipes.cnn_family(&self.device, p == Precision::F16)
    }

    fn max_dim(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }

    fn cnn_params(&self, p: Params) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("cnn params"),
                contents: bytemuck::bytes_of(&p),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Encodes `steps` (bound for `p`'s pipelines) into one compute pass,
    /// copies the first `len` values of `out` back, waits for them and
    /// widens them to f32.
    fn run_and_read(
        &self,
        p: Precision,
        steps: &[Dispatch],
        out: &wgpu::Buffer,
        len: usize,
    ) -> Vec<f32> {
        let dev = &self.device;
        let fam = self.cnn_family(p);
        // Copies go in multiples of 4 bytes; every buffer here is padded so.
        let bytes = ((len * p.bytes()) as u64).max(4).next_multiple_of(4);
        let readback = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cnn readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc =
            dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("cnn") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("cnn"),
                timestamp_writes: None,
            });
            for s in steps {
                pass.set_pipeline(fam.pipe(s.entry));
                pass.set_bind_group(0, &s.group, &[]);
                pass.dispatch_workgroups(s.grid.0, s.grid.1, 1);
            }
        }
        enc.copy_buffer_to_buffer(out, 0, &readback, 0, bytes);
        let sub = self.queue.submit([enc.finish()]);
        readback.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        dev.poll(wgpu::PollType::Wait {
            submission_index: Some(sub),
            timeout: None,
        })
        .expect("GPU poll failed");
        let data = {
            let view = readback.get_mapped_range(..).expect("mapped");
            p.decode(&view, len)
        };
        readback.unmap();
        data
    }
}

/// Workgroup counts for `groups` workgroups, spilling into y past the
/// per-dimension limit (kernels rebuild the linear workgroup index).
fn group_grid(groups: usize, max_dim: u32) -> (u32, u32) {
    let groups = groups.max(1);
    let x = groups.min(max_dim as usize);
    let y = groups.div_ceil(x);
    assert!(y <= max_dim as usize, "dispatch too large");
    (x as u32, y as u32)
}

impl GpuNetwork {
    fn new(
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
                Layer::Conv(c) => GpuLayer::Conv(upload_conv(e, c, precision), c.from),
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
    fn shapes(&self, c: usize, h: usize, w: usize) -> ((usize, usize, usize), usize) {
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
    fn chunk_images(&self, e: &GpuEngine, per_image: usize) -> usize {
        let bytes = (per_image * self.precision.bytes()) as u64;
        let limit = e.max_binding_bytes();
        assert!(
            bytes <= limit,
            "one image's feature map ({bytes} bytes) exceeds the storage binding limit ({limit})"
        );
        ((limit.min(BUFFER_BUDGET) / bytes.max(1)) as usize).clamp(1, MAX_CHUNK_IMAGES)
    }

    /// The last layer's feature maps, NCHW (as `cnn::cpu::forward`).
    pub fn forward(&self, e: &GpuEngine, x: &Tensor) -> Tensor {
        let ((c, h, w), most) = self.shapes(x.c, x.h, x.w);
        let mut out = Tensor::zeros(x.n, c, h, w);
        let chunk = self.chunk_images(e, most);
        let per_out = c * h * w;
        for start in (0..x.n).step_by(chunk) {
            let n = chunk.min(x.n - start);
            let data = self.run(e, x, start, n, most, Want::Features);
            out.data[start * per_out..(start + n) * per_out].copy_from_slice(&data);
        }
        out
    }

    /// The embedding of every image (as `cnn::cpu::embed`): GeM, the
    /// projection if any, then L2 (on the host: 512–1280 floats an image).
    pub fn embed(&self, e: &GpuEngine, x: &Tensor) -> Vec<Vec<f32>> {
        let ((c, _, _), most) = self.shapes(x.c, x.h, x.w);
        let dim = self.projection.as_ref().map_or(c, |p| p.cout);
        let chunk = self.chunk_images(e, most);
        let mut out = Vec::with_capacity(x.n);
        for start in (0..x.n).step_by(chunk) {
            let n = chunk.min(x.n - start);
            let data = self.run(e, x, start, n, most, Want::Gem);
            out.extend(data.chunks_exact(dim).map(|v| {
                let mut v = v.to_vec();
                l2_normalize(&mut v);
                v
            }));
        }
        out
    }

    /// Images `start..start + n` of `x` through every layer in one pass.
    fn run(
        &self,
        e: &GpuEngine,
        x: &Tensor,
        start: usize,
        n: usize,
        most: usize,
        want: Want,
    ) -> Vec<f32> {
        let dev = &e.device;
        let prec = self.precision;
        let fam = e.cnn_family(prec);
        let per_in = x.c * x.h * x.w;
        let mut pool = Pool {
            device: dev,
            bytes: (n * most * prec.bytes()) as u64,
            bufs: Vec::new(),
            free: Vec::new(),
        };
        // The input gets a pool-size buffer too, so it is recycled like any other.
        let input = pool.take();
        e.queue.write_buffer(
            &pool.bufs[input],
            0,
            &prec.encode(&x.data[start * per_in..(start + n) * per_in]),
        );
        let mut cur = Map {
            buf: input,
            c: x.c,
            h: x.h,
            w: x.w,
        };
        // Layer index → its output, held for the layers that read it again.
        let mut saved: HashMap<usize, Map> = HashMap::new();
        let held = |saved: &HashMap<usize, Map>, b: usize| saved.values().any(|m| m.buf == b);
        let mut steps = Vec::with_capacity(self.layers.len() + 2);
        for (i, l) in self.layers.iter().enumerate() {
            let (next, src) = match l {
                GpuLayer::Conv(cv, from) => {
                    let src = from.map_or(cur, |f| saved[&f]);
                    let out = pool.take();
                    let (step, (c, h, w)) =
                        conv_step(e, fam, cv, n, src, &pool.bufs[src.buf], &pool.bufs[out]);
                    steps.push(step);
                    (Map { buf: out, c, h, w }, from.map(|_| src))
                }
                &GpuLayer::Add { from, act } => {
                    let src = saved[&from];
                    let total = count(n * cur.c * cur.h * cur.w);
                    let params = e.cnn_params(Params {
                        total,
                        act: act.code(),
                        ..Default::default()
                    });
                    let out = pool.take();
                    let (a, b) = (&pool.bufs[cur.buf], &pool.bufs[src.buf]);
                    steps.push(Dispatch {
                        entry: "add",
                        group: fam.bind(dev, &[&params, a, b, b, &pool.bufs[out]]),
                        grid: super::pipelines::grid(total, e.max_dim()),
                    });
                    (Map { buf: out, ..cur }, Some(src))
                }
                &GpuLayer::MaxPool { k, stride, pad } => {
                    let (oh, ow) = (
                        pool_out(cur.h, k, stride, pad),
                        pool_out(cur.w, k, stride, pad),
                    );
                    let total = count(n * cur.c * oh * ow);
                    let params = e.cnn_params(Params {
                        n: count(n),
                        cin: count(cur.c),
                        h: count(cur.h),
                        w: count(cur.w),
                        oh: count(oh),
                        ow: count(ow),
                        k: count(k),
                        stride: count(stride),
                        total,
                        pad: [pad as u32; 4],
                        ..Default::default()
                    });
                    let out = pool.take();
                    let a = &pool.bufs[cur.buf];
                    steps.push(Dispatch {
                        entry: "max_pool",
                        group: fam.bind(dev, &[&params, a, a, a, &pool.bufs[out]]),
                        grid: super::pipelines::grid(total, e.max_dim()),
                    });
                    (
                        Map {
                            buf: out,
                            h: oh,
                            w: ow,
                            ..cur
                        },
                        None,
                    )
                }
            };
            // Release what no later layer reads: the re-read source once its
            // last reader ran, and the previous output unless it is held.
            if let (Some(src), Some(from)) = (src, l.reads()) {
                if self.last_use[from] == Some(i) {
                    saved.remove(&from);
                    if src.buf != cur.buf && !held(&saved, src.buf) {
                        pool.give(src.buf);
                    }
                }
            }
            if !held(&saved, cur.buf) {
                pool.give(cur.buf);
            }
            cur = next;
            if self.last_use[i].is_some() {
                saved.insert(i, cur);
            }
        }
        let Map { c, h, w, .. } = cur;
        if want == Want::Features {
            return e.run_and_read(prec, &steps, &pool.bufs[cur.buf], n * c * h * w);
        }
        let total = count(n * c);
        let params = e.cnn_params(Params {
            n: count(n),
            cin: count(c),
            h: count(h),
            w: count(w),
            total,
            f: [self.gem_p, self.gem_clamp, 0.0, 0.0],
            ..Default::default()
        });
        // Pooled (and projected) vectors are stored as S too: one binding
        // layout for every kernel; widened on the host before L2.
        let pooled = storage(dev, (n * c * prec.bytes()) as u64, true);
        let feat = &pool.bufs[cur.buf];
        steps.push(Dispatch {
            entry: "gem",
            group: fam.bind(dev, &[&params, feat, feat, feat, &pooled]),
            grid: super::pipelines::grid(total, e.max_dim()),
        });
        let Some(p) = &self.projection else {
            return e.run_and_read(prec, &steps, &pooled, n * c);
        };
        // The pooled vectors are an n × c × 1 × 1 map: project with the GEMM kernel.
        let projected = storage(dev, (n * p.cout * prec.bytes()) as u64, true);
        let one = Map {
            buf: usize::MAX,
            c,
            h: 1,
            w: 1,
        };
        let (step, _) = conv_step(e, fam, p, n, one, &pooled, &projected);
        steps.push(step);
        e.run_and_read(prec, &steps, &projected, n * p.cout)
    }
}

/// A feature map of the batch in flight: its pool buffer and per-image shape.
#[derive(Clone, Copy)]
struct Map {
    buf: usize,
    c: usize,
    h: usize,
    w: usize,
}

fn count(v: usize) -> u32 {
    u32::try_from(v).expect("dispatch too large")
}

/// Weights stored as `p`; biases always f32 (one value per output channel).
fn upload_conv(e: &GpuEngine, c: &Conv, p: Precision) -> GpuConv {
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

/// One convolution of `n` images of `src` (shape only; its buffer is
/// `input`) into `output`, bound for `fam`: the dispatch and the output shape.
fn conv_step(
    e: &GpuEngine,
    fam: &Family,
    cv: &GpuConv,
    n: usize,
    src: Map,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> (Dispatch, (usize, usize, usize)) {
    let (c, h, w) = (src.c, src.h, src.w);
    let (pad, oh, ow) = cv.padding.resolve(h, w, cv.k, cv.stride);
    let total = n * cv.cout * oh * ow;
    let params = e.cnn_params(Params {
        n: count(n),
        cin: count(c),
        h: count(h),
        w: count(w),
        cout: count(cv.cout),
        oh: count(oh),
        ow: count(ow),
        k: count(cv.k),
        stride: count(cv.stride),
        groups: count(cv.groups),
        act: cv.act.code(),
        total: count(total),
        pad: pad.map(|p| p as u32),
        f: [0.0; 4],
    });
    let group = fam.bind(&e.device, &[&params, input, &cv.weight, &cv.bias, output]);
    let max_dim = e.max_dim();
    let step = if cv.pointwise(pad) {
        let tiles = cv.cout.div_ceil(PW_TILE) * (n * h * w).div_ceil(PW_TILE);
        Dispatch {
            entry: "conv_pointwise",
            group,
            grid: group_grid(tiles, max_dim),
        }
    } else if cv.groups == 1 && cv.cin * cv.k * cv.k >= GEMM_MIN_REDUCTION {
        let tiles = cv.cout.div_ceil(PW_TILE) * (n * oh * ow).div_ceil(PW_TILE);
        Dispatch {
            entry: "conv_gemm",
            group,
            grid: group_grid(tiles, max_dim),
        }
    } else {
        Dispatch {
            entry: "conv_direct",
            group,
            grid: super::pipelines::grid(count(total), max_dim),
        }
    };
    (step, (cv.cout, oh, ow))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let x = f16_to_f32(h);
            if x.is_nan() {
                assert!(f16_to_f32(f32_to_f16(x)).is_nan(), "{h:#06x}");
            } else {
                assert_eq!(f32_to_f16(x), h, "{h:#06x} -> {x}");
            }
        }
    }

    #[test]
    fn f16_rounds_to_nearest_even() {
        // Between each pair of neighbours (normal, subnormal, across the
        // normal/subnormal edge, to the largest finite): ties go to the even one,
        // anything past the midpoint to the nearer one.
        for h in (0u16..0x7bff).step_by(7).chain([0x3ff, 0x400, 0x7bfe]) {
            let (a, b) = (f16_to_f32(h) as f64, f16_to_f32(h + 1) as f64);
            let mid = ((a + b) / 2.0) as f32; // exact: f32 has the bits
            let even = if h % 2 == 0 { h } else { h + 1 };
            assert_eq!(f32_to_f16(mid), even, "tie after {h:#06x}");
            assert_eq!(f32_to_f16(-mid), even | 0x8000, "-tie after {h:#06x}");
            let up = f32::from_bits(mid.to_bits() + 1);
            let down = f32::from_bits(mid.to_bits() - 1);
            assert_eq!(f32_to_f16(up), h + 1, "above the tie after {h:#06x}");
            assert_eq!(f32_to_f16(down), h, "below the tie after {h:#06x}");
        }
        assert_eq!(f32_to_f16(65520.0), 0x7c00, "past the largest finite: inf");
        assert_eq!(f32_to_f16(65519.0), 0x7bff);
        assert_eq!(f32_to_f16(1e-8), 0, "below half the smallest subnormal");
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xfc00);
    }

    #[test]
    fn f16_buffers_are_padded_to_four_bytes() {
        let v = [1.0f32, -2.0, 0.5];
        let b = Precision::F16.encode(&v);
        assert_eq!(b.len(), 8);
        assert_eq!(Precision::F16.decode(&b, 3), v);
        assert_eq!(Precision::F32.decode(&Precision::F32.encode(&v), 3), v);
    }
}

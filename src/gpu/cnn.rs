//! Host side of the CNN kernels (`shaders/cnn.wgsl`): the network of
//! [`crate::cnn`] run on the GPU, held against `cnn::cpu` by
//! `tests/cnn_parity.rs`.
//!
//! [`GpuEngine::upload_network`] copies the weights to the device once; a
//! [`GpuNetwork`] then runs any number of batches. Per batch, every layer is
//! encoded into one compute pass (one command buffer): general convolutions
//! (stem, depthwise, grouped, strided) by `conv_direct`, 1×1 stride-1 ones by
//! the tiled GEMM `conv_pointwise`, residual adds by `add` (out of place), and
//! the embedding's GeM pooling by `gem`. Intermediate feature maps come from a
//! small pool of equal-size buffers, recycled as soon as no later layer reads
//! them (residual sources are held until their last `Add`). Big batches are
//! split so no feature-map buffer exceeds the storage binding limit.
//!
//! Storage and accumulation are f32 throughout: f16 storage (SHADER_F16) is
//! not implemented. The final L2 normalisation of each embedding (1 280
//! floats) is done on the CPU after readback.

use std::collections::HashMap;

use wgpu::util::DeviceExt;

use super::pipelines::{storage, storage_init};
use super::GpuEngine;
use crate::cnn::model::{Act, Conv, Layer, Network, Padding};
use crate::cnn::{l2_normalize, Tensor};

/// Images per chunk at most (bounds memory; the GPU is full long before).
const MAX_CHUNK_IMAGES: usize = 64;
/// Bytes per feature-map buffer we aim to stay under.
const BUFFER_BUDGET: u64 = 256 << 20;
/// Output tile of `conv_pointwise` (channels × batch-folded pixels), as in cnn.wgsl.
const PW_TILE: usize = 64;

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
    Conv(GpuConv),
    Add { from: usize },
}

/// A network whose weights live on one [`GpuEngine`]'s device; use it only
/// with the engine that uploaded it.
pub struct GpuNetwork {
    layers: Vec<GpuLayer>,
    gem_p: f32,
    gem_clamp: f32,
    /// Per layer: the index of the last `Add` that reads its output, if any.
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
    /// Uploads the weights of `net` once, for any number of batches.
    pub fn upload_network(&self, net: &Network) -> GpuNetwork {
        GpuNetwork::new(self, &net.layers, net.gem_p, net.gem_clamp)
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
    /// `conv_pointwise` for 1×1 stride-1 unpadded ungrouped, else `conv_direct`).
    pub fn cnn_conv(&self, cv: &Conv, x: &Tensor) -> Tensor {
        GpuNetwork::new(self, &[Layer::Conv(cv.clone())], 1.0, 0.0).forward(self, x)
    }

    /// a + b elementwise on the GPU (the residual kernel; equal shapes).
    pub fn cnn_add(&self, a: &Tensor, b: &Tensor) -> Tensor {
        assert_eq!(
            (a.n, a.c, a.h, a.w),
            (b.n, b.c, b.h, b.w),
            "cnn_add: shapes differ"
        );
        let dev = &self.device;
        let len = a.data.len();
        let total = u32::try_from(len).expect("cnn_add: too many elements");
        let ab = storage_init(dev, bytemuck::cast_slice(&a.data));
        let bb = storage_init(dev, bytemuck::cast_slice(&b.data));
        let out = storage(dev, len as u64 * 4, true);
        let params = self.cnn_params(Params {
            total,
            ..Default::default()
        });
        let group = self.pipes.cnn.bind(dev, &[&params, &ab, &bb, &bb, &out]);
        let d = Dispatch {
            entry: "add",
            group,
            grid: super::pipelines::grid(total, self.max_dim()),
        };
        let data = self.run_and_read(&[d], &out, len);
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
        GpuNetwork::new(self, &[], p, clamp_min).embed(self, t)
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

    /// Encodes `steps` into one compute pass, copies the first `len` floats
    /// of `out` back and waits for them.
    fn run_and_read(&self, steps: &[Dispatch], out: &wgpu::Buffer, len: usize) -> Vec<f32> {
        let dev = &self.device;
        let bytes = (len as u64 * 4).max(4);
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
                pass.set_pipeline(self.pipes.cnn.pipe(s.entry));
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
            bytemuck::cast_slice::<u8, f32>(&view)[..len].to_vec()
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
    fn new(e: &GpuEngine, layers: &[Layer], gem_p: f32, gem_clamp: f32) -> GpuNetwork {
        let dev = &e.device;
        let mut last_use = vec![None; layers.len()];
        for (i, l) in layers.iter().enumerate() {
            if let Layer::Add { from } = l {
                assert!(*from < i, "add at layer {i} reads a later layer {from}");
                last_use[*from] = Some(i);
            }
        }
        let layers = layers
            .iter()
            .map(|l| match l {
                Layer::Conv(c) => GpuLayer::Conv(GpuConv {
                    cin: c.cin,
                    cout: c.cout,
                    k: c.k,
                    stride: c.stride,
                    groups: c.groups,
                    padding: c.padding,
                    act: c.act,
                    weight: storage_init(dev, bytemuck::cast_slice(&c.weight)),
                    bias: storage_init(dev, bytemuck::cast_slice(&c.bias)),
                }),
                Layer::Add { from } => GpuLayer::Add { from: *from },
            })
            .collect();
        GpuNetwork {
            layers,
            gem_p,
            gem_clamp,
            last_use,
        }
    }

    /// Output shape (c, h, w) for one input image of c × h × w, and the
    /// largest feature map (values per image) on the way, input included.
    fn shapes(&self, c: usize, h: usize, w: usize) -> ((usize, usize, usize), usize) {
        let (mut c, mut h, mut w) = (c, h, w);
        let mut most = c * h * w;
        for l in &self.layers {
            if let GpuLayer::Conv(cv) = l {
                assert_eq!(c, cv.cin, "conv takes {} channels, gets {c}", cv.cin);
                let (_, oh, ow) = cv.padding.resolve(h, w, cv.k, cv.stride);
                (c, h, w) = (cv.cout, oh, ow);
                most = most.max(c * h * w);
            }
        }
        ((c, h, w), most)
    }

    /// Images per chunk so that no feature-map buffer passes the binding limit.
    fn chunk_images(&self, e: &GpuEngine, per_image: usize) -> usize {
        let bytes = per_image as u64 * 4;
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

    /// GeM + L2 embedding of every image (as `cnn::cpu::embed`).
    pub fn embed(&self, e: &GpuEngine, x: &Tensor) -> Vec<Vec<f32>> {
        let ((c, _, _), most) = self.shapes(x.c, x.h, x.w);
        let chunk = self.chunk_images(e, most);
        let mut out = Vec::with_capacity(x.n);
        for start in (0..x.n).step_by(chunk) {
            let n = chunk.min(x.n - start);
            let data = self.run(e, x, start, n, most, Want::Gem);
            out.extend(data.chunks_exact(c).map(|v| {
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
        let fam = &e.pipes.cnn;
        let max_dim = e.max_dim();
        let per_in = x.c * x.h * x.w;
        let mut pool = Pool {
            device: dev,
            bytes: (n * most * 4) as u64,
            bufs: Vec::new(),
            free: Vec::new(),
        };
        // The input gets a pool-size buffer too, so it is recycled like any other.
        let input = pool.take();
        e.queue.write_buffer(
            &pool.bufs[input],
            0,
            bytemuck::cast_slice(&x.data[start * per_in..(start + n) * per_in]),
        );
        let (mut cur, mut c, mut h, mut w) = (input, x.c, x.h, x.w);
        // Layer index → buffer holding its output, for residual adds to come.
        let mut saved: HashMap<usize, usize> = HashMap::new();
        let held = |saved: &HashMap<usize, usize>, b: usize| saved.values().any(|&s| s == b);
        let mut steps = Vec::with_capacity(self.layers.len() + 1);
        let count = |v: usize| u32::try_from(v).expect("dispatch too large");
        for (i, l) in self.layers.iter().enumerate() {
            match l {
                GpuLayer::Conv(cv) => {
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
                    let out = pool.take();
                    let group = fam.bind(
                        dev,
                        &[
                            &params,
                            &pool.bufs[cur],
                            &cv.weight,
                            &cv.bias,
                            &pool.bufs[out],
                        ],
                    );
                    steps.push(if cv.pointwise(pad) {
                        let tiles = cv.cout.div_ceil(PW_TILE) * (n * h * w).div_ceil(PW_TILE);
                        Dispatch {
                            entry: "conv_pointwise",
                            group,
                            grid: group_grid(tiles, max_dim),
                        }
                    } else {
                        Dispatch {
                            entry: "conv_direct",
                            group,
                            grid: super::pipelines::grid(count(total), max_dim),
                        }
                    });
                    if !held(&saved, cur) {
                        pool.give(cur);
                    }
                    (cur, c, h, w) = (out, cv.cout, oh, ow);
                }
                GpuLayer::Add { from } => {
                    let src = *saved
                        .get(from)
                        .expect("residual source kept until its last add");
                    let total = count(n * c * h * w);
                    let params = e.cnn_params(Params {
                        total,
                        ..Default::default()
                    });
                    let out = pool.take();
                    let group = fam.bind(
                        dev,
                        &[
                            &params,
                            &pool.bufs[cur],
                            &pool.bufs[src],
                            &pool.bufs[src],
                            &pool.bufs[out],
                        ],
                    );
                    steps.push(Dispatch {
                        entry: "add",
                        group,
                        grid: super::pipelines::grid(total, max_dim),
                    });
                    if self.last_use[*from] == Some(i) {
                        saved.remove(from);
                        if src != cur && !held(&saved, src) {
                            pool.give(src);
                        }
                    }
                    if !held(&saved, cur) {
                        pool.give(cur);
                    }
                    cur = out;
                }
            }
            if self.last_use[i].is_some() {
                saved.insert(i, cur);
            }
        }
        match want {
            Want::Features => e.run_and_read(&steps, &pool.bufs[cur], n * c * h * w),
            Want::Gem => {
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
                let pooled = storage(dev, (n * c * 4) as u64, true);
                let feat = &pool.bufs[cur];
                let group = fam.bind(dev, &[&params, feat, feat, feat, &pooled]);
                steps.push(Dispatch {
                    entry: "gem",
                    group,
                    grid: super::pipelines::grid(total, max_dim),
                });
                e.run_and_read(&steps, &pooled, n * c)
            }
        }
    }
}

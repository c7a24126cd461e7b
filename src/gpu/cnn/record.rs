//! Recording one batch: each layer becomes a dispatch (bind group, grid)
//! reading and writing feature maps from a pool of equal-size buffers; the
//! dispatches are then encoded into one compute pass, and the result copied
//! back and widened to f32.

use wgpu::util::DeviceExt;

use super::network::GpuConv;
use super::{Precision, ReadbackError, GEMM_MIN_REDUCTION, PW_TILE};
use crate::cnn::model::{pool_out, Act};
use crate::gpu::pipelines::{grid, storage, Family};
use crate::gpu::GpuEngine;

/// The uniform block of every kernel (`CnnParams` in cnn.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Params {
    pub n: u32,
    pub cin: u32,
    pub h: u32,
    pub w: u32,
    pub cout: u32,
    pub oh: u32,
    pub ow: u32,
    pub k: u32,
    pub stride: u32,
    pub groups: u32,
    pub act: u32,
    pub total: u32,
    pub pad: [u32; 4],
    pub f: [f32; 4],
}

/// One dispatch, recorded before the pass is encoded.
pub(super) struct Dispatch {
    pub entry: &'static str,
    pub group: wgpu::BindGroup,
    pub grid: (u32, u32),
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

/// A feature map of the batch in flight: its pool buffer and per-image shape.
#[derive(Clone, Copy)]
pub(super) struct Map {
    pub buf: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

/// The dispatches of one batch of `n` images, with the buffers they use.
pub(super) struct Recorder<'a> {
    e: &'a GpuEngine,
    fam: &'a Family,
    prec: Precision,
    n: usize,
    pool: Pool<'a>,
    steps: Vec<Dispatch>,
}

impl<'a> Recorder<'a> {
    /// A batch of `n` images whose largest feature map holds `most` values
    /// an image; room for `layers` dispatches plus the tail's.
    pub fn new(e: &'a GpuEngine, prec: Precision, n: usize, most: usize, layers: usize) -> Self {
        Recorder {
            e,
            fam: e.cnn_family(prec),
            prec,
            n,
            pool: Pool {
                device: &e.device,
                bytes: (n * most * prec.bytes()) as u64,
                bufs: Vec::new(),
                free: Vec::new(),
            },
            steps: Vec::with_capacity(layers + 2),
        }
    }

    /// Uploads the batch's input (`data`: n images of c × h × w) into a
    /// pool buffer, so that it is recycled like any other feature map.
    pub fn input(&mut self, data: &[f32], c: usize, h: usize, w: usize) -> Map {
        let buf = self.pool.take();
        self.e
            .queue
            .write_buffer(&self.pool.bufs[buf], 0, &self.prec.encode(data));
        Map { buf, c, h, w }
    }

    /// Returns a feature map's buffer to the pool.
    pub fn release(&mut self, m: Map) {
        self.pool.give(m.buf);
    }

    /// `cv` of the feature map `src`.
    pub fn conv(&mut self, cv: &GpuConv, src: Map) -> Map {
        let out = self.pool.take();
        let (input, output) = (&self.pool.bufs[src.buf], &self.pool.bufs[out]);
        let (step, (c, h, w)) = conv_step(self.e, self.fam, cv, self.n, src, input, output);
        self.steps.push(step);
        Map { buf: out, c, h, w }
    }

    /// The residual sum `cur + src`, then `act`.
    pub fn add(&mut self, cur: Map, src: Map, act: Act) -> Map {
        let total = count(self.n * cur.c * cur.h * cur.w);
        let params = self.e.cnn_params(Params {
            total,
            act: act.code(),
            ..Default::default()
        });
        let out = self.pool.take();
        let (a, b) = (&self.pool.bufs[cur.buf], &self.pool.bufs[src.buf]);
        let group = self.bind(&[&params, a, b, b, &self.pool.bufs[out]]);
        self.push("add", group, grid(total, self.e.max_dim()));
        Map { buf: out, ..cur }
    }

    /// k×k max pooling of `cur`.
    pub fn max_pool(&mut self, cur: Map, k: usize, stride: usize, pad: usize) -> Map {
        let (oh, ow) = (
            pool_out(cur.h, k, stride, pad),
            pool_out(cur.w, k, stride, pad),
        );
        let total = count(self.n * cur.c * oh * ow);
        let params = self.e.cnn_params(Params {
            n: count(self.n),
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
        let out = self.pool.take();
        let a = &self.pool.bufs[cur.buf];
        let group = self.bind(&[&params, a, a, a, &self.pool.bufs[out]]);
        self.push("max_pool", group, grid(total, self.e.max_dim()));
        Map {
            buf: out,
            h: oh,
            w: ow,
            ..cur
        }
    }

    /// GeM pooling (exponent `p`, clamp `clamp`) of `cur` into a new
    /// n × c buffer. Pooled vectors are stored as S too: one binding layout
    /// for every kernel; widened on the host before L2.
    pub fn gem(&mut self, cur: Map, p: f32, clamp: f32) -> wgpu::Buffer {
        let Map { c, h, w, .. } = cur;
        let total = count(self.n * c);
        let params = self.e.cnn_params(Params {
            n: count(self.n),
            cin: count(c),
            h: count(h),
            w: count(w),
            total,
            f: [p, clamp, 0.0, 0.0],
            ..Default::default()
        });
        let pooled = storage(
            &self.e.device,
            (self.n * c * self.prec.bytes()) as u64,
            true,
        );
        let feat = &self.pool.bufs[cur.buf];
        let group = self.bind(&[&params, feat, feat, feat, &pooled]);
        self.push("gem", group, grid(total, self.e.max_dim()));
        pooled
    }

    /// The projection `p` of the `c`-wide pooled vectors: an n × c × 1 × 1
    /// map, run by the GEMM kernel, into a new n × p.cout buffer.
    pub fn project(&mut self, p: &GpuConv, pooled: &wgpu::Buffer, c: usize) -> wgpu::Buffer {
        let projected = storage(
            &self.e.device,
            (self.n * p.cout * self.prec.bytes()) as u64,
            true,
        );
        let one = Map {
            buf: usize::MAX,
            c,
            h: 1,
            w: 1,
        };
        let (step, _) = conv_step(self.e, self.fam, p, self.n, one, pooled, &projected);
        self.steps.push(step);
        projected
    }

    /// Runs the recorded dispatches and reads back the feature map `m`.
    pub fn read_map(self, m: Map) -> Result<Vec<f32>, ReadbackError> {
        let len = self.n * m.c * m.h * m.w;
        self.e
            .run_and_read(self.prec, &self.steps, &self.pool.bufs[m.buf], len)
    }

    /// Runs the recorded dispatches and reads back `per_image` values an
    /// image of `out`.
    pub fn read(self, out: &wgpu::Buffer, per_image: usize) -> Result<Vec<f32>, ReadbackError> {
        let len = self.n * per_image;
        self.e.run_and_read(self.prec, &self.steps, out, len)
    }

    fn bind(&self, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        self.fam.bind(&self.e.device, buffers)
    }

    fn push(&mut self, entry: &'static str, group: wgpu::BindGroup, grid: (u32, u32)) {
        self.steps.push(Dispatch { entry, group, grid });
    }
}

impl GpuEngine {
    /// The CNN pipelines storing `p`.
    pub(super) fn cnn_family(&self, p: Precision) -> &Family {
        self.pipes.cnn_family(&self.device, p == Precision::F16)
    }

    pub(super) fn max_dim(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }

    pub(super) fn cnn_params(&self, p: Params) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("cnn params"),
                contents: bytemuck::bytes_of(&p),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Encodes `steps` (bound for `p`'s pipelines) into one compute pass,
    /// copies the first `len` values of `out` back, waits for them and
    /// widens them to f32. A failed poll or map is an error, not a panic.
    pub(super) fn run_and_read(
        &self,
        p: Precision,
        steps: &[Dispatch],
        out: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<f32>, ReadbackError> {
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
        let (tx, rx) = std::sync::mpsc::channel();
        readback.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        dev.poll(wgpu::PollType::Wait {
            submission_index: Some(sub),
            timeout: None,
        })?;
        // Another thread polling the same device may have taken the map
        // callback off the queue and not yet run it when our wait returns:
        // wait for the answer itself (bounded), not just for the submission.
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .map_err(|_| ReadbackError::NotMapped)??;
        let data = {
            let view = readback.get_mapped_range(..)?;
            p.decode(&view, len)
        };
        readback.unmap();
        Ok(data)
    }
}

/// `v` as a kernel parameter.
pub(super) fn count(v: usize) -> u32 {
    u32::try_from(v).expect("dispatch too large")
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
            grid: grid(count(total), max_dim),
        }
    };
    (step, (cv.cout, oh, ow))
}

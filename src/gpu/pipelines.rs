//! Shader modules, bind group layouts and compute pipelines, built once.
//!
//! Each WGSL file is compiled as: its header (directives and constants
//! generated here from the Rust values the host uses, so the two cannot
//! drift), the shared prelude ([`prelude`] + shaders/common.wgsl), then the
//! file itself.

use wgpu::util::DeviceExt;

const COMMON: &str = include_str!("../../shaders/common.wgsl");

/// Invocations per workgroup of the 1-D kernels (`@workgroup_size`), which
/// [`grid`] and the Hamming dispatch count in; WGSL `WORKGROUP_SIZE`.
pub(crate) const WORKGROUP_SIZE: u32 = 64;

/// Constants of every kernel file, from their Rust definitions.
fn prelude() -> String {
    format!("const WORKGROUP_SIZE: u32 = {WORKGROUP_SIZE}u;\n")
}

/// One WGSL file: its layout (every binding of the file, shared by its entry
/// points) and one pipeline per entry point.
pub(crate) struct Family {
    pub layout: wgpu::BindGroupLayout,
    pub pipes: Vec<(&'static str, wgpu::ComputePipeline)>,
}

impl Family {
    fn new(
        device: &wgpu::Device,
        name: &str,
        src: &str,
        bindings: &[Binding],
        entries: &[&'static str],
    ) -> Family {
        Self::with_header(device, name, "", src, bindings, entries)
    }

    /// `header` goes first, ahead of the shared prelude: WGSL wants
    /// directives such as `enable f16;` before any declaration.
    fn with_header(
        device: &wgpu::Device,
        name: &str,
        header: &str,
        src: &str,
        bindings: &[Binding],
        entries: &[&'static str],
    ) -> Family {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(
                format!("{header}{}{COMMON}\n{src}", prelude()).into(),
            ),
        });
        let layout_entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match b {
                        Binding::Uniform => wgpu::BufferBindingType::Uniform,
                        Binding::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Binding::Write => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &layout_entries,
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipes = entries
            .iter()
            .map(|e| {
                let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(e),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(e),
                    compilation_options: Default::default(),
                    cache: None,
                });
                (*e, p)
            })
            .collect();
        Family { layout, pipes }
    }

    pub fn pipe(&self, entry: &str) -> &wgpu::ComputePipeline {
        &self
            .pipes
            .iter()
            .find(|(e, _)| *e == entry)
            .expect("known entry point")
            .1
    }

    pub fn bind(&self, device: &wgpu::Device, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &entries,
        })
    }
}

#[derive(Clone, Copy)]
enum Binding {
    Uniform,
    Read,
    Write,
}

pub(crate) struct Pipelines {
    pub downsample: Family,
    pub dct: Family,
    pub resize: Family,
    pub hamming: Family,
    /// CNN inference: conv_direct, conv_pointwise, add, gem, max_pool, conv_gemm
    /// (src/gpu/cnn.rs), with f32 storage.
    pub cnn: Family,
    /// The same kernels with f16 storage, built on first use (only devices
    /// opened with SHADER_F16 can compile them).
    cnn16: std::sync::OnceLock<Family>,
    /// PDQ's 16×64 DCT matrix, uploaded once.
    pub dct_matrix: wgpu::Buffer,
}

impl Pipelines {
    pub fn new(device: &wgpu::Device) -> Pipelines {
        use Binding::*;
        let downsample = Family::new(
            device,
            "pdq_downsample",
            include_str!("../../shaders/pdq_downsample.wgsl"),
            &[Uniform, Read, Read, Read, Write, Write, Write, Write],
            &["rows1", "cols1", "rows2", "cols2"],
        );
        let dct = Family::new(
            device,
            "pdq_dct",
            include_str!("../../shaders/pdq_dct.wgsl"),
            &[Uniform, Read, Read, Write, Write, Write, Write],
            &["quality", "dct_rows", "dct_cols", "threshold"],
        );
        let resize = Family::new(
            device,
            "phash_resize",
            include_str!("../../shaders/phash_resize.wgsl"),
            &[Uniform, Read, Read, Read, Read, Write, Write],
            &["resize_rows", "resize_cols"],
        );
        let hamming = Family::with_header(
            device,
            "hamming",
            &format!("const KMAX: u32 = {}u;\n", super::hamming::KMAX),
            include_str!("../../shaders/hamming.wgsl"),
            &[Uniform, Read, Read, Read, Write, Uniform],
            &["topk"],
        );
        let cnn = cnn_family(device, false);
        let dct_matrix = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dct16x64"),
            contents: bytemuck::cast_slice(crate::descriptors::pdq::dct_matrix_16x64()),
            usage: wgpu::BufferUsages::STORAGE,
        });
        Pipelines {
            downsample,
            dct,
            resize,
            hamming,
            cnn,
            cnn16: std::sync::OnceLock::new(),
            dct_matrix,
        }
    }

    /// The CNN kernels storing f16 (`f16`) or f32; `device` must be the one
    /// these pipelines were built on, opened with SHADER_F16 for f16.
    pub fn cnn_family(&self, device: &wgpu::Device, f16: bool) -> &Family {
        if f16 {
            self.cnn16.get_or_init(|| cnn_family(device, true))
        } else {
            &self.cnn
        }
    }
}

/// shaders/cnn.wgsl is written against a storage type `S`, defined here so
/// both precisions compile from one source, and against the GEMM tile size
/// the host dispatches for (`PT` columns × `CT` channels, both `PW_TILE`).
fn cnn_family(device: &wgpu::Device, f16: bool) -> Family {
    use Binding::*;
    let storage = if f16 {
        "enable f16;\nalias S = f16;\n"
    } else {
        "alias S = f32;\n"
    };
    let tile = super::cnn::PW_TILE;
    let header = format!("{storage}const PT: u32 = {tile}u;\nconst CT: u32 = {tile}u;\n");
    Family::with_header(
        device,
        if f16 { "cnn f16" } else { "cnn" },
        &header,
        include_str!("../../shaders/cnn.wgsl"),
        &[Uniform, Read, Read, Read, Write],
        &[
            "conv_direct",
            "conv_pointwise",
            "add",
            "gem",
            "max_pool",
            "conv_gemm",
        ],
    )
}

/// Workgroup counts for `n` invocations of a 1-D kernel (`WORKGROUP_SIZE`
/// wide), spilling into y past the per-dimension limit (kernels rebuild the
/// linear index).
pub(crate) fn grid(n: u32, max_dim: u32) -> (u32, u32) {
    let groups = n.div_ceil(WORKGROUP_SIZE).max(1);
    if groups <= max_dim {
        (groups, 1)
    } else {
        let y = groups.div_ceil(max_dim);
        (groups.div_ceil(y), y)
    }
}

pub(crate) fn uniform(device: &wgpu::Device, words: [u32; 4]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: bytemuck::cast_slice(&words),
        usage: wgpu::BufferUsages::UNIFORM,
    })
}

/// A storage buffer with `contents` (at least 4 bytes: empty bindings are invalid).
pub(crate) fn storage_init(device: &wgpu::Device, contents: &[u8]) -> wgpu::Buffer {
    let pad = [0u8; 4];
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: if contents.is_empty() { &pad } else { contents },
        usage: wgpu::BufferUsages::STORAGE,
    })
}

pub(crate) fn storage(device: &wgpu::Device, bytes: u64, copy_src: bool) -> wgpu::Buffer {
    let mut usage = wgpu::BufferUsages::STORAGE;
    if copy_src {
        usage |= wgpu::BufferUsages::COPY_SRC;
    }
    device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes.max(4).next_multiple_of(4),
        usage,
        mapped_at_creation: false,
    })
}

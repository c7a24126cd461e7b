//! WGSL compute engine on wgpu: the CPU descriptors (PDQ with its 8 dihedral
//! variants and quality, pHash) computed in batches on a GPU, bit for bit,
//! plus a brute-force Hamming top-k kernel for batch checks.
//!
//! What runs where: luma, Jarosz downsample, quality gradients, the PDQ DCT,
//! medians and thresholds (all 8 variants), Pillow's Lanczos resize to 32×32
//! for pHash, and the Hamming scan run on the GPU. The CPU adds the 64
//! per-row quality partial sums and does pHash's final 32→8 DCT + median in
//! f64 (WGSL has no f64; that step is ~2 µs per image), and merges per-tile
//! top-k lists. Kernels live in `shaders/*.wgsl`.
//!
//! `cnn` runs the learned-embedding network of [`crate::cnn`] (convolutions,
//! residual adds, GeM pooling) with f32 arithmetic, storing weights and
//! feature maps as f16 where the adapter has SHADER_F16 (else f32; see
//! [`Precision`]); see [`GpuEngine::upload_network`].

mod adapter;
pub mod cnn;
mod describe;
mod hamming;
mod pipelines;

pub use adapter::{AdapterReport, DeviceChoice};
pub use cnn::{GpuNetwork, Precision, ReadbackError};
pub use describe::{Pending, PendingKind};
pub use hamming::KMAX;

use crate::descriptors::{Descriptors, QueryDescriptors};

/// A GPU operation that failed (a lost device, a readback that never came):
/// an error value for the caller, never a panic.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GpuError(pub String);

/// A ready GPU device with every pipeline built once.
pub struct GpuEngine {
    device: wgpu::Device,
    queue: wgpu::Queue,
    report: AdapterReport,
    limits: wgpu::Limits,
    pipes: pipelines::Pipelines,
    /// Whether the device was opened with SHADER_F16 (f16 CNN storage possible).
    f16: bool,
    /// What `upload_network` and the `cnn_*` helpers store (see `Precision`).
    cnn_precision: Precision,
    /// The shipped embedding network, uploaded on first use.
    embedder: std::sync::OnceLock<GpuNetwork>,
    /// Run the CNN on a software adapter too (see `embeds_on_gpu`).
    cnn_on_software: bool,
}

impl GpuEngine {
    /// `Ok(None)`: use the CPU engine (`Cpu`, or `Auto` with no hardware
    /// adapter). `Err`: `Gpu` was asked for and no adapter (or device) exists.
    pub fn new(choice: DeviceChoice) -> anyhow::Result<Option<GpuEngine>> {
        let Some((adapter, report)) = adapter::choose(choice)? else {
            return Ok(None);
        };
        let limits = adapter.limits();
        // Asked for whenever offered, even if the engine is told to store
        // f32, so both precisions stay available (benches compare).
        let f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        let features = if f16 {
            wgpu::Features::SHADER_F16
        } else {
            wgpu::Features::empty()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("lookalike"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| anyhow::anyhow!("cannot open GPU device {}: {e}", report.name))?;
        let pipes = pipelines::Pipelines::new(&device);
        Ok(Some(GpuEngine {
            device,
            queue,
            report,
            limits,
            pipes,
            f16,
            cnn_precision: Precision::default_for(f16),
            embedder: std::sync::OnceLock::new(),
            cnn_on_software: false,
        }))
    }

    /// Whether the CNN can store f16 here (the adapter has SHADER_F16).
    pub fn supports_f16(&self) -> bool {
        self.f16
    }

    /// What `upload_network`, `embed_images` and the `cnn_*` helpers store:
    /// f16 where supported, unless [`GpuEngine::with_cnn_precision`] asks
    /// for f32.
    pub fn cnn_precision(&self) -> Precision {
        self.cnn_precision
    }

    /// This engine with `p` as its CNN precision; an error for f16 on a
    /// device without SHADER_F16.
    pub fn with_cnn_precision(mut self, p: Precision) -> anyhow::Result<GpuEngine> {
        if p == Precision::F16 && !self.f16 {
            anyhow::bail!("{}: no SHADER_F16, so no f16 CNN storage", self.report.name);
        }
        self.cnn_precision = p;
        Ok(self)
    }

    /// Adapter name, backend and device type, e.g. "llvmpipe (vulkan, Cpu)".
    pub fn describe(&self) -> String {
        self.report.to_string()
    }

    /// This engine, running the CNN even on a software adapter when `yes`
    /// (see [`GpuEngine::embeds_on_gpu`]; tests of the wiring use it).
    pub fn with_cnn_on_software(mut self, yes: bool) -> GpuEngine {
        self.cnn_on_software = yes;
        self
    }

    /// The adapter this engine runs on.
    pub fn adapter(&self) -> &AdapterReport {
        &self.report
    }

    /// PDQ (8 dihedral variants) + quality + pHash of every image, as
    /// [`crate::descriptors::describe_query`] computes them. Sizes may differ.
    pub fn describe_batch(
        &self,
        images: &[image::RgbImage],
    ) -> Result<Vec<QueryDescriptors>, GpuError> {
        self.finish_views_query(self.submit_views(
            images,
            PendingKind::Query,
            crate::descriptors::Extras::HASHES_AND_KEYPOINTS,
        ))
    }

    /// `describe_batch`'s hashes plus the `extras` asked for.
    pub fn describe_batch_with(
        &self,
        images: &[image::RgbImage],
        extras: crate::descriptors::Extras,
    ) -> Result<Vec<QueryDescriptors>, GpuError> {
        self.finish_views_query(self.submit_views(images, PendingKind::Query, extras))
    }

    /// Submits the images and, as a second batch, their trimmed views
    /// (borders and caption bars found by the CPU scan in `descriptors::trim`,
    /// which is cheap next to hashing).
    /// `describe_index_batch` in two halves, so the caller can decode the
    /// next batch on the CPU while this one runs on the GPU.
    pub fn submit_index(
        &self,
        images: &[image::RgbImage],
        extras: crate::descriptors::Extras,
    ) -> InFlight {
        InFlight(self.submit_views(images, PendingKind::Index, extras))
    }

    /// Waits for a batch from `submit_index`; results in input order.
    pub fn finish_index_batch(&self, f: InFlight) -> Result<Vec<Descriptors>, GpuError> {
        self.finish_views_index(f.0)
    }

    fn submit_views(
        &self,
        images: &[image::RgbImage],
        kind: PendingKind,
        extras: crate::descriptors::Extras,
    ) -> Views {
        use rayon::prelude::*;
        let crops: Vec<Option<image::RgbImage>> = images
            .par_iter()
            .map(crate::descriptors::trim::trimmed)
            .collect();
        let (at, crops): (Vec<usize>, Vec<image::RgbImage>) = crops
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| c.map(|c| (i, c)))
            .unzip();
        let trims = (!crops.is_empty()).then(|| self.submit(&crops, kind));
        let main = self.submit(images, kind);
        // Keypoints have no WGSL path yet: the CPU extracts them while the
        // GPU hashes.
        let max = match kind {
            PendingKind::Query => crate::descriptors::keypoints::QUERY_KEYPOINTS,
            PendingKind::Index => crate::descriptors::keypoints::INDEX_KEYPOINTS,
        };
        let keypoints = if extras.keypoints {
            images
                .par_iter()
                .map(|im| crate::descriptors::keypoints::extract(im, max))
                .collect()
        } else {
            vec![]
        };
        let embeddings = if extras.embedding {
            self.embed_images(images)
        } else {
            vec![]
        };
        Views {
            main,
            trims,
            at,
            keypoints,
            embeddings,
        }
    }

    fn finish_views_query(&self, v: Views) -> Result<Vec<QueryDescriptors>, GpuError> {
        let mut out = self.finish_query(v.main)?;
        for (d, k) in out.iter_mut().zip(v.keypoints) {
            d.keypoints = k;
        }
        for (d, e) in out.iter_mut().zip(v.embeddings) {
            d.embedding = Some(e);
        }
        if let Some(t) = v.trims {
            for (i, d) in v.at.into_iter().zip(self.finish_query(t)?) {
                out[i].pdq_trim = Some(d.pdq);
            }
        }
        Ok(out)
    }

    fn finish_views_index(&self, v: Views) -> Result<Vec<Descriptors>, GpuError> {
        let mut out = self.finish_index(v.main)?;
        for (d, k) in out.iter_mut().zip(&v.keypoints) {
            d.keypoints = crate::descriptors::IndexKeypoints::from_points(k);
        }
        for (d, e) in out.iter_mut().zip(&v.embeddings) {
            d.embedding = crate::descriptors::Embedding::from_f32(e);
        }
        if let Some(t) = v.trims {
            for (i, d) in v.at.into_iter().zip(self.finish_index(t)?) {
                out[i].pdq_trim = d.pdq;
            }
        }
        Ok(out)
    }

    /// What the index stores, as [`crate::descriptors::describe`] computes it
    /// (differs from `describe_batch(..)[i].pdq[0]` only for 64×64 inputs,
    /// which the reference hashes unfiltered).
    pub fn describe_index_batch(
        &self,
        images: &[image::RgbImage],
    ) -> Result<Vec<Descriptors>, GpuError> {
        self.finish_views_index(self.submit_views(
            images,
            PendingKind::Index,
            crate::descriptors::Extras::HASHES_AND_KEYPOINTS,
        ))
    }

    /// Double-buffered streaming: `batches.next()` (typically CPU decoding)
    /// runs while the previous batch executes on the GPU; `sink` gets each
    /// batch's results in order.
    pub fn describe_stream<I, F>(&self, batches: I, mut sink: F) -> Result<(), GpuError>
    where
        I: IntoIterator<Item = Vec<image::RgbImage>>,
        F: FnMut(Vec<QueryDescriptors>),
    {
        let mut in_flight: Option<Views> = None;
        for b in batches {
            let next = self.submit_views(
                &b,
                PendingKind::Query,
                crate::descriptors::Extras::HASHES_AND_KEYPOINTS,
            );
            if let Some(p) = in_flight.replace(next) {
                sink(self.finish_views_query(p)?);
            }
        }
        if let Some(p) = in_flight {
            sink(self.finish_views_query(p)?);
        }
        Ok(())
    }

    /// Whether the learned embedding runs on this device: yes on hardware;
    /// on a software adapter (lavapipe) the CPU engine is ~50× faster, so
    /// only when [`GpuEngine::with_cnn_on_software`] asks for it (tests of
    /// the wiring; the CLI's `LOOKALIKE_GPU_CNN=1`).
    pub fn embeds_on_gpu(&self) -> bool {
        !self.report.software || self.cnn_on_software
    }

    /// Embeddings of the shipped network (`descriptors::embedding`) for a
    /// batch: WGSL engine (see `embeds_on_gpu`) or the CPU engine. A GPU
    /// run whose results cannot be read back is redone by the CPU engine
    /// (the reference the GPU one is held to) rather than a panic.
    pub fn embed_images(&self, images: &[image::RgbImage]) -> Vec<Vec<f32>> {
        use crate::descriptors::embedding;
        let refs: Vec<&image::RgbImage> = images.iter().collect();
        if images.is_empty() || !self.embeds_on_gpu() {
            return embedding::embed_batch(&refs);
        }
        let net = embedding::model();
        let x = crate::cnn::preprocess::input_batch(net, &refs);
        self.embedder
            .get_or_init(|| self.upload_network(net))
            .embed(self, &x)
            .unwrap_or_else(|e| {
                // A lost readback must not lose the batch: the CPU engine
                // redoes it (close to the GPU's f16 result, not bit-equal),
                // and says so.
                eprintln!(
                    "warning: GPU embedding failed on {} ({e}); this batch was embedded on the CPU",
                    self.report.name
                );
                embedding::embed_batch(&refs)
            })
    }

    /// For each query (8 orientation variants), the `k` nearest live db rows:
    /// (row, distance, orientation) sorted by distance then row; the same as
    /// the CPU scan (`search::hamming::column_topk`). None where the kernel
    /// declines: `k` > [`KMAX`] (its per-tile list length), or the device
    /// failed; the caller then runs the CPU scan.
    pub fn hamming_topk(
        &self,
        db: &[crate::descriptors::Hash256],
        live: &[bool],
        queries: &[[crate::descriptors::Hash256; 8]],
        k: usize,
    ) -> Option<Vec<Vec<(u32, u16, u8)>>> {
        hamming::topk(self, db, live, queries, k)
    }
}

/// A batch in flight: the images, their trimmed views, and which image each view belongs to.
struct Views {
    main: Pending,
    trims: Option<Pending>,
    at: Vec<usize>,
    /// Per image, computed on the CPU, when asked for (else empty).
    keypoints: Vec<Vec<crate::descriptors::KeyPoint>>,
    /// Per image when asked for (else empty).
    embeddings: Vec<Vec<f32>>,
}

/// An index batch submitted to the GPU (see `GpuEngine::submit_index`).
pub struct InFlight(Views);

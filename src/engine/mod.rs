//! One interface, two engines: what the pipeline asks of the hardware that
//! describes images and scans hashes. The CPU engine ([`CpuEngine`]) is the
//! reference and runs everywhere; the GPU engine ([`crate::gpu::GpuEngine`],
//! WGSL on wgpu) gives bit-identical descriptors and search results (tests
//! hold the two against each other). The pipeline (`crate::pipeline`) is
//! written once, against [`Engine`].
//!
//! The interface follows how each engine wants its work: the CPU describes
//! each image on the worker that decoded it, while it is hot in cache
//! ([`Engine::prepare_index`] returns [`Deferred::Ready`]); the GPU keeps the
//! pixels ([`Deferred::Pixels`]) and describes a whole batch in one dispatch,
//! overlapping the next batch's decoding ([`Engine::submit_index`] /
//! [`Engine::finish_index`]).

mod cpu;
mod gpu;

use std::sync::Arc;

use image::RgbImage;

use crate::descriptors::{Descriptors, Extras, Hash256, QueryDescriptors};
pub use crate::error::EngineError;
pub use cpu::CpuEngine;

/// A descriptor computed now, or the decoded pixels kept for a batch.
#[derive(Clone)]
pub enum Deferred<T> {
    /// Already computed.
    Ready(T),
    /// Decoded pixels to describe with the rest of the batch.
    Pixels(Arc<RgbImage>),
}

/// A batch of index images submitted to an engine; [`Engine::finish_index`]
/// waits for it. Opaque: each engine keeps its own state inside.
pub struct InFlight(pub(crate) Box<dyn std::any::Any + Send>);

/// Rows, distances and orientation codes of a Hamming top-k, per query:
/// `(row, distance, orientation)` sorted by distance, then row.
pub type TopK = Vec<Vec<(u32, u16, u8)>>;

/// What the pipeline needs from an engine.
pub trait Engine: Send + Sync {
    /// Where descriptors run and the CNN's precision, for the `device:`
    /// line, e.g. "CPU engine (CNN: f32)".
    fn label(&self) -> String;

    /// The arithmetic of the CNN that computes embeddings here: "f32",
    /// "f16" (GPU storage) or "int8" (a quantised model on the CPU); the
    /// index lists what was not f32 (`Manifest::embedding_precisions`).
    fn cnn_precision(&self) -> String;

    /// Whether describing many queries in one [`Engine::describe_queries`]
    /// call costs much less than one call each (a GPU dispatch): the
    /// server then batches concurrent requests.
    fn batches_queries(&self) -> bool {
        false
    }

    /// Called on the decoding worker for each new index image: its
    /// descriptors now, or its pixels kept for [`Engine::submit_index`].
    fn prepare_index(&self, img: &RgbImage, extras: Extras) -> Deferred<Descriptors>;

    /// As [`Engine::prepare_index`], for a query image (all 8 orientations).
    fn prepare_query(&self, img: &RgbImage, extras: Extras) -> Deferred<QueryDescriptors>;

    /// Starts describing the images that `prepare_index` kept; returns at
    /// once so the caller can decode the next batch meanwhile.
    fn submit_index(&self, images: &[RgbImage], extras: Extras) -> InFlight;

    /// Waits for a batch from `submit_index`; results in input order.
    fn finish_index(&self, batch: InFlight) -> Result<Vec<Descriptors>, EngineError>;

    /// Describes the query images that `prepare_query` kept, in input order.
    fn describe_queries(
        &self,
        images: &[RgbImage],
        extras: Extras,
    ) -> Result<Vec<QueryDescriptors>, EngineError>;

    /// For each query (8 orientation variants), the `k` nearest live rows of
    /// `db`, as the CPU scan (`search::hamming`) orders them. `None`: the
    /// engine declines (too few queries to be worth a dispatch, `k` over its
    /// list size, or no batch kernel at all), and the caller scans on the CPU.
    fn hamming_topk(
        &self,
        db: &[Hash256],
        live: &[bool],
        queries: &[[Hash256; 8]],
        k: usize,
    ) -> Option<TopK>;
}

/// The engine for a `--device` choice: the GPU engine when one is chosen
/// (`gpu`, or `auto` with a hardware adapter), else the CPU engine.
/// `Err`: `gpu` was asked for and there is no adapter.
pub fn choose(
    choice: crate::gpu::DeviceChoice,
    options: GpuOptions,
) -> anyhow::Result<Arc<dyn Engine>> {
    Ok(match crate::gpu::GpuEngine::new(choice)? {
        Some(g) => {
            let mut g = g.with_cnn_on_software(options.cnn_on_software);
            if options.cnn_f32 {
                g = g.with_cnn_precision(crate::gpu::Precision::F32)?;
            }
            Arc::new(g)
        }
        None => Arc::new(CpuEngine),
    })
}

/// Settings of the GPU engine that tests and benchmarks change.
#[derive(Clone, Copy, Debug, Default)]
pub struct GpuOptions {
    /// Store the CNN's weights and activations as f32 even where f16 is supported.
    pub cnn_f32: bool,
    /// Run the CNN on a software adapter too (lavapipe: ~50× slower than the
    /// CPU engine; for tests of the wiring).
    pub cnn_on_software: bool,
}

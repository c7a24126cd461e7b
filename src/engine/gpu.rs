//! [`Engine`] for the WGSL engine ([`GpuEngine`]): pixels are kept on the
//! decoding workers and described a batch per dispatch; batch checks of at
//! least [`GPU_MIN_BATCH`] images scan hashes with the Hamming kernel.

use std::sync::Arc;

use image::RgbImage;

use super::{Deferred, Engine, EngineError, InFlight, TopK};
use crate::descriptors::{Descriptors, Extras, Hash256, QueryDescriptors};
use crate::gpu::{GpuEngine, GpuError};

/// Below this many query images the CPU scan is as fast as a GPU round trip.
pub const GPU_MIN_BATCH: usize = 64;

impl GpuEngine {
    fn engine_error(&self, e: GpuError) -> EngineError {
        EngineError {
            engine: self.describe(),
            why: e.0,
        }
    }
}

impl Engine for GpuEngine {
    fn label(&self) -> String {
        format!("{} (CNN: {})", self.describe(), self.cnn_precision())
    }

    fn cnn_precision(&self) -> String {
        match GpuEngine::cnn_precision(self) {
            crate::gpu::Precision::F16 => "f16".into(),
            crate::gpu::Precision::F32 => "f32".into(),
        }
    }

    fn batches_queries(&self) -> bool {
        true
    }

    fn prepare_index(&self, img: &RgbImage, _: Extras) -> Deferred<Descriptors> {
        Deferred::Pixels(Arc::new(img.clone()))
    }

    fn prepare_query(&self, img: &RgbImage, _: Extras) -> Deferred<QueryDescriptors> {
        Deferred::Pixels(Arc::new(img.clone()))
    }

    fn submit_index(&self, images: &[RgbImage], extras: Extras) -> InFlight {
        InFlight(Box::new(GpuEngine::submit_index(self, images, extras)))
    }

    fn finish_index(&self, batch: InFlight) -> Result<Vec<Descriptors>, EngineError> {
        let f = batch
            .0
            .downcast::<crate::gpu::InFlight>()
            .map_err(|_| EngineError {
                engine: self.describe(),
                why: "a batch submitted to another engine".into(),
            })?;
        self.finish_index_batch(*f)
            .map_err(|e| self.engine_error(e))
    }

    fn describe_queries(
        &self,
        images: &[RgbImage],
        extras: Extras,
    ) -> Result<Vec<QueryDescriptors>, EngineError> {
        let plain = extras.for_regions();
        let mut out = self
            .describe_batch_with(images, plain)
            .map_err(|e| self.engine_error(e))?;
        if extras.regions {
            // Proposed on the CPU (as the reference does), described here.
            let found = crate::descriptors::regions::describe_all(images, |crops| {
                self.describe_batch_with(crops, plain)
            })
            .map_err(|e| self.engine_error(e))?;
            for (q, rs) in out.iter_mut().zip(found) {
                q.regions = rs;
            }
        }
        Ok(out)
    }

    fn hamming_topk(
        &self,
        db: &[Hash256],
        live: &[bool],
        queries: &[[Hash256; 8]],
        k: usize,
    ) -> Option<TopK> {
        if queries.len() < GPU_MIN_BATCH {
            return None;
        }
        GpuEngine::hamming_topk(self, db, live, queries, k)
    }
}

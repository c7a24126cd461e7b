//! The CPU engine: the reference descriptors of [`crate::descriptors`],
//! computed on the worker that decoded each image (rayon spreads the batch
//! over all cores). It has no batch Hamming kernel: the pipeline's CPU scan
//! (`search::hamming`) is the search.

use image::RgbImage;

use super::{Deferred, Engine, EngineError, InFlight, TopK};
use crate::descriptors::{self, Descriptors, Extras, Hash256, QueryDescriptors};

/// Descriptors on the CPU (the reference every other engine is held to).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuEngine;

impl Engine for CpuEngine {
    fn label(&self) -> String {
        // The built-in model (nothing selected) is f32.
        let net = crate::descriptors::embedding::selected();
        let precision = net.map_or("f32", crate::cnn::cpu::precision_label);
        format!("CPU engine (CNN: {precision})")
    }

    fn cnn_precision(&self) -> String {
        let net = crate::descriptors::embedding::selected();
        match net.is_some_and(|n| n.is_int8()) {
            true => "int8".into(),
            false => "f32".into(),
        }
    }

    fn prepare_index(&self, img: &RgbImage, extras: Extras) -> Deferred<Descriptors> {
        Deferred::Ready(descriptors::describe_with(img, extras))
    }

    fn prepare_query(&self, img: &RgbImage, extras: Extras) -> Deferred<QueryDescriptors> {
        Deferred::Ready(descriptors::describe_query_with(img, extras))
    }

    fn submit_index(&self, images: &[RgbImage], extras: Extras) -> InFlight {
        // `prepare_index` never keeps pixels, so this sees none in practice;
        // described here all the same so the contract holds for any caller.
        let done: Vec<Descriptors> = images
            .iter()
            .map(|i| descriptors::describe_with(i, extras))
            .collect();
        InFlight(Box::new(done))
    }

    fn finish_index(&self, batch: InFlight) -> Result<Vec<Descriptors>, EngineError> {
        batch
            .0
            .downcast::<Vec<Descriptors>>()
            .map(|b| *b)
            .map_err(|_| EngineError {
                engine: self.label(),
                why: "a batch submitted to another engine".into(),
            })
    }

    fn describe_queries(
        &self,
        images: &[RgbImage],
        extras: Extras,
    ) -> Result<Vec<QueryDescriptors>, EngineError> {
        Ok(images
            .iter()
            .map(|i| descriptors::describe_query_with(i, extras))
            .collect())
    }

    fn hamming_topk(
        &self,
        _: &[Hash256],
        _: &[bool],
        _: &[[Hash256; 8]],
        _: usize,
    ) -> Option<TopK> {
        None
    }
}

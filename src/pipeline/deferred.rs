//! Glue between the ingest batches and an engine: `process_batch` leaves
//! each image's descriptors computed or its decoded pixels kept
//! ([`Deferred`]); the kept pixels are then described in one engine batch.

use std::sync::Arc;

use image::RgbImage;

use crate::engine::Deferred;
use crate::ingest::{Outcome, Processed};

/// Replaces every `Pixels` with `describe`'s result for it (an image shared by
/// exact duplicates is described once). `describe` is not called when no
/// pixels were kept.
pub fn resolve<T: Clone, E>(
    results: Vec<Processed<Deferred<T>>>,
    describe: impl FnOnce(&[RgbImage]) -> Result<Vec<T>, E>,
) -> Result<Vec<Processed<T>>, E> {
    let (imgs, slots) = gather(&results);
    let described = if imgs.is_empty() {
        Vec::new()
    } else {
        describe(&imgs)?
    };
    Ok(apply(results, &slots, &described))
}

/// Which image of the batch each `Pixels` is (images shared by exact
/// duplicates appear once).
pub type Slots = std::collections::HashMap<*const RgbImage, usize>;

/// The distinct images to describe, and where each `Pixels` finds its result.
pub fn gather<T>(results: &[Processed<Deferred<T>>]) -> (Vec<RgbImage>, Slots) {
    let mut imgs: Vec<RgbImage> = Vec::new();
    let mut slot: std::collections::HashMap<*const RgbImage, usize> = Default::default();
    for p in results {
        if let Outcome::Done(Deferred::Pixels(a)) | Outcome::Duplicate(Deferred::Pixels(a)) =
            &p.outcome
        {
            slot.entry(Arc::as_ptr(a)).or_insert_with(|| {
                imgs.push(RgbImage::clone(a));
                imgs.len() - 1
            });
        }
    }
    (imgs, slot)
}

/// Fills in the described results gathered by `gather`.
pub fn apply<T: Clone>(
    results: Vec<Processed<Deferred<T>>>,
    slot: &Slots,
    described: &[T],
) -> Vec<Processed<T>> {
    let get = |d: Deferred<T>| match d {
        Deferred::Ready(t) => t,
        Deferred::Pixels(a) => described[slot[&Arc::as_ptr(&a)]].clone(),
    };
    results
        .into_iter()
        .map(|p| Processed {
            entry: p.entry,
            content_hash: p.content_hash,
            outcome: match p.outcome {
                Outcome::Done(d) => Outcome::Done(get(d)),
                Outcome::Duplicate(d) => Outcome::Duplicate(get(d)),
                Outcome::Skipped(s) => Outcome::Skipped(s),
            },
        })
        .collect()
}

//! Ingest: find image files, read and decode them within limits, in parallel
//! batches so memory stays flat whatever the corpus size.

pub mod decode;
pub mod exif;
pub mod pipeline;
pub mod turbo;
pub mod walk;

pub use decode::{DecodeMode, Decoded, Limits};
pub use pipeline::{process_batch, Outcome, Processed};
pub use walk::{FileEntry, Walker};

/// A file that was not indexed or checked, and why. Reported, never fatal.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

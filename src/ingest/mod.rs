//! Ingest: find image files, read and decode them within limits, in parallel
//! batches so memory stays flat whatever the corpus size.

pub mod batch;
pub mod braces;
pub mod decode;
pub mod exif;
pub mod names;
pub mod shard;
pub mod source;
pub mod turbo;
pub mod walk;

pub use batch::{process_batch, Outcome, Processed, BATCH};
pub use decode::{DecodeMode, Decoded, Limits};
pub use source::{Inputs, Visit};
pub use walk::{FileEntry, Walker};

/// Why a file could not be described, and whose fault that was: it decides
/// whether a later `index` run tries the unchanged file again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Human-readable reason, as the skip report prints it.
    pub reason: String,
    /// What kind of failure it was.
    pub kind: FailureKind,
}

/// The kinds of [`Failure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The file's own bytes are bad (corrupt, truncated, not an image): the
    /// same bytes fail the same way, so an unchanged file is not retried.
    Content,
    /// Over a limit of this run (`--max-pixels`, `--max-mib`, the aspect
    /// ratio): a run with other limits may read it, so it is retried.
    Limit,
    /// The file could not be read (permissions, an I/O error, it vanished):
    /// not the file's fault, so it is retried.
    Io,
}

impl Failure {
    /// A failure caused by the file's bytes.
    pub fn content(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            kind: FailureKind::Content,
        }
    }

    /// A failure caused by a limit of this run.
    pub fn limit(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            kind: FailureKind::Limit,
        }
    }

    /// A failure to read the file.
    pub fn io(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            kind: FailureKind::Io,
        }
    }
}

/// Decoder messages are about the file's bytes unless said otherwise.
impl From<String> for Failure {
    fn from(reason: String) -> Failure {
        Failure::content(reason)
    }
}

impl From<&str> for Failure {
    fn from(reason: &str) -> Failure {
        Failure::content(reason)
    }
}

impl From<Failure> for String {
    fn from(f: Failure) -> String {
        f.reason
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A file that was not indexed or checked, and why. Reported, never fatal.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Skipped {
    /// The file's path as text (see [`names::path_text`]).
    pub path: String,
    /// Why it was skipped, for the user.
    pub reason: String,
}

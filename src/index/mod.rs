//! The on-disk index: a JSON manifest naming append-only segments, each a set
//! of fixed-width column files read through memory maps. `indexes/README.md`
//! documents the format. Everything is validated before any cast.

pub mod attach;
pub mod column;
pub mod graph;
pub mod keypoint_table;
pub mod manifest;
pub mod merge;
pub mod mih;
pub mod projection;
pub mod reader;
pub mod refetch;
pub mod segment;
pub mod settings;
pub mod skipped;
pub mod whitening;
pub mod writer;

pub use attach::AttachStats;
pub use manifest::{Manifest, Profile};
pub use reader::{Index, RecordRef};
pub use segment::{FileRecord, SegmentData};
pub use settings::IndexSettings;
pub use writer::IndexWriter;

use std::path::{Path, PathBuf};

/// Version of the on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Record flags (FileRecord::flags).
pub mod flags {
    /// The file was removed from the dataset (written by `index --prune`).
    pub const TOMBSTONE: u32 = 1;
    /// Same bytes as an earlier record: descriptors were copied, not recomputed.
    pub const DUPLICATE: u32 = 2;
    /// The file could not be described. Alone it means "try again next run"
    /// (a limit of that run, an I/O error, or a build that did not say why).
    pub const FAILED: u32 = 4;
    /// With FAILED: the file's own bytes are bad, so an unchanged file is not
    /// retried.
    pub const CORRUPT: u32 = 8;
    /// The record of a tar shard itself (path, size and mtime of the
    /// `.tar` file; its images are recorded as `SHARD.tar/MEMBER`), written
    /// after all its members so that a rerun skips an unchanged shard
    /// unread. Always with FAILED, so it is never live (and readers that
    /// predate this flag see a failed file); with CORRUPT when the shard was
    /// truncated (what was read is kept, the shard is not read again).
    pub const SHARD: u32 = 16;
}

/// Resolves `--index`: a bare name means `indexes/<name>`, anything with a
/// path separator (or an existing directory) is used as given.
pub fn resolve_index_path(arg: &str) -> PathBuf {
    let p = Path::new(arg);
    if p.components().count() > 1 || p.is_dir() || arg.starts_with('.') {
        p.to_path_buf()
    } else {
        Path::new("indexes").join(arg)
    }
}

//! Recursive, sorted, symlink-safe directory walk yielding candidate image files.
//! Anything that is neither a folder nor a regular file (a FIFO, socket or
//! device) is listed as skipped and never opened: opening a FIFO blocks
//! until something writes to it.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::Skipped;
use crate::ingest::names::path_text;

/// Extensions we try to decode. Anything else in a dataset folder (captions,
/// metadata) is counted as "not an image" rather than reported one by one.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp", "tif", "tiff",
];

/// A regular file the walk found, with what an index update compares.
#[derive(Clone, Debug)]
pub struct FileEntry {
    /// Path as found under the walked root; a tar member's is `SHARD.tar/MEMBER`.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (0 if unknown).
    pub mtime_ns: i64,
    /// The bytes, when they were read already (a tar member streamed out of
    /// its shard) or could not be; `None`: a file on disk that the batch reads.
    pub bytes: Option<Result<Vec<u8>, super::Failure>>,
}

impl FileEntry {
    /// A file on disk, read when its batch runs.
    pub fn on_disk(path: PathBuf, size: u64, mtime_ns: i64) -> FileEntry {
        FileEntry {
            path,
            size,
            mtime_ns,
            bytes: None,
        }
    }
}

/// Whether the file name ends in `.tar` (any case): a WebDataset shard.
pub fn is_shard_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.to_str().is_some_and(|e| e.eq_ignore_ascii_case("tar")))
}

/// Whether the file name has one of [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

/// Walks `root` (a directory or a single file) in file-name order, following
/// symlinks; walkdir detects symlink loops and reports them as errors, which
/// we turn into `Skipped` entries instead of looping forever.
pub struct Walker {
    inner: walkdir::IntoIter,
    /// Regular files skipped so far for not having an image extension.
    pub not_images: u64,
    /// Yield `.tar` files as [`WalkItem::Shard`] (off: they are not images).
    shards: bool,
}

/// What the walk yields.
pub enum WalkItem {
    /// A regular file with an image extension.
    File(FileEntry),
    /// An entry that could not be read or is not a regular file.
    Skipped(Skipped),
    /// A `.tar` file, with [`Walker::with_shards`].
    Shard(FileEntry),
}

impl Walker {
    /// A walk over `root`; nothing is read until it is iterated.
    pub fn new(root: &Path) -> Walker {
        let inner = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter();
        Walker {
            inner,
            not_images: 0,
            shards: false,
        }
    }

    /// Also yield the `.tar` files found ([`WalkItem::Shard`]).
    pub fn with_shards(mut self) -> Walker {
        self.shards = true;
        self
    }
}

impl Iterator for Walker {
    type Item = WalkItem;

    fn next(&mut self) -> Option<WalkItem> {
        loop {
            let entry = match self.inner.next()? {
                Ok(e) => e,
                Err(err) => {
                    let path = err.path().map(path_text).unwrap_or_default();
                    let reason = if err.loop_ancestor().is_some() {
                        "symlink loop".to_string()
                    } else {
                        format!(
                            "cannot read: {}",
                            err.io_error()
                                .map(|e| e.to_string())
                                .unwrap_or_else(|| err.to_string())
                        )
                    };
                    return Some(WalkItem::Skipped(Skipped { path, reason }));
                }
            };
            if entry.file_type().is_dir() {
                continue;
            }
            if !entry.file_type().is_file() {
                let kind = match entry.metadata() {
                    Ok(md) => file_kind(&md),
                    Err(_) => "special file",
                };
                return Some(WalkItem::Skipped(Skipped {
                    path: path_text(entry.path()),
                    reason: format!("not a regular file ({kind})"),
                }));
            }
            let shard = self.shards && is_shard_name(entry.path());
            if !shard && !is_image_name(entry.path()) {
                self.not_images += 1;
                continue;
            }
            return Some(match entry.metadata() {
                Ok(md) => {
                    let e = FileEntry::on_disk(entry.into_path(), md.len(), mtime_ns(&md));
                    if shard {
                        WalkItem::Shard(e)
                    } else {
                        WalkItem::File(e)
                    }
                }
                Err(e) => WalkItem::Skipped(Skipped {
                    path: path_text(entry.path()),
                    reason: format!("cannot stat: {e}"),
                }),
            });
        }
    }
}

/// Modification time of `md` in nanoseconds since the Unix epoch; 0 when the
/// platform cannot tell or the time is before 1970.
pub fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Opens `path` for reading without blocking (a FIFO swapped in for a file
/// cannot hang the open) and returns it with the open file's own metadata,
/// which callers check ([`file_kind`]) before reading.
pub fn open_nonblocking(path: &Path) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path)?;
    let md = file.metadata()?;
    Ok((file, md))
}

/// What kind of file `md` describes, for "not a regular file (…)".
pub fn file_kind(md: &std::fs::Metadata) -> &'static str {
    let t = md.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO";
        } else if t.is_socket() {
            return "socket";
        } else if t.is_block_device() {
            return "block device";
        } else if t.is_char_device() {
            return "character device";
        }
    }
    if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

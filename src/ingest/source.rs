//! Where images come from: folders, image files and tar shards, named on
//! the command line (a brace pattern expands), or listed one per line
//! (`--files-from`). [`visit`] streams them all in order to a [`Visit`]or,
//! shard members with their bytes, so the batch pipeline reads files and
//! members alike; [`read`] re-reads one by its recorded name (reports).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::names::{bytes_to_path, path_text};
use super::shard::{self, ShardEnd};
use super::walk::{file_kind, is_shard_name, mtime_ns, WalkItem, Walker};
use super::{Failure, FileEntry, Limits, Skipped};

/// The inputs of one run, in order.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Folders (walked recursively; `.tar` files in them are read as
    /// shards), `.tar` shards, and image files (read whatever their extension).
    pub paths: Vec<PathBuf>,
    /// What the user named, for summaries: the argument or the list's name.
    pub label: String,
}

impl Inputs {
    /// One path, as it is.
    pub fn path(p: &Path) -> Inputs {
        Inputs {
            paths: vec![p.to_path_buf()],
            label: path_text(p),
        }
    }

    /// A command-line argument: the path itself when it exists, else the
    /// paths its brace pattern expands to (`shards/{00000..00999}.tar`).
    pub fn pattern(arg: &Path) -> Result<Inputs, String> {
        let text = path_text(arg);
        if arg.exists() || !super::braces::has_pattern(&text) {
            return Ok(Inputs::path(arg));
        }
        let paths = super::braces::expand(&text)?
            .iter()
            .map(|s| super::names::text_path(s))
            .collect();
        Ok(Inputs { paths, label: text })
    }

    /// Paths listed one per line (`--files-from`): blank lines are ignored,
    /// a line's `\r\n` ending is taken off, anything else is part of the name.
    pub fn list(reader: impl BufRead, label: &str) -> std::io::Result<Inputs> {
        let mut paths = Vec::new();
        for line in reader.split(b'\n') {
            let line = line?;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                paths.push(bytes_to_path(line));
            }
        }
        Ok(Inputs {
            paths,
            label: label.to_string(),
        })
    }

    /// These inputs followed by `other`'s.
    pub fn and(mut self, other: Inputs) -> Inputs {
        self.paths.extend(other.paths);
        self.label = match (self.label.is_empty(), other.label.is_empty()) {
            (true, _) => other.label,
            (_, true) => self.label,
            _ => format!("{} + {}", self.label, other.label),
        };
        self
    }

    /// Image files (shard members not counted) and whether a shard is among
    /// the inputs: a quick walk of names and sizes, for a progress bar.
    pub fn count(&self) -> (u64, bool) {
        let (mut n, mut shards) = (0, false);
        for p in &self.paths {
            if p.is_dir() {
                for item in Walker::new(p).with_shards() {
                    match item {
                        WalkItem::File(_) => n += 1,
                        WalkItem::Shard(_) => shards = true,
                        WalkItem::Skipped(_) => {}
                    }
                }
            } else if is_shard_name(p) {
                shards = true;
            } else {
                n += 1;
            }
        }
        (n, shards)
    }
}

/// What [`visit`] hands out, in input order. Only `file` and `skipped`
/// must be handled; the rest let an index update skip unchanged shards and
/// members and know what it covered.
pub trait Visit {
    /// What `file` (or `shard_done`) may fail with; it stops the visit.
    type Error;
    /// An image file, or an image member of a shard (with its bytes).
    fn file(&mut self, e: FileEntry) -> Result<(), Self::Error>;
    /// An input or entry that was not read, and why.
    fn skipped(&mut self, s: Skipped);
    /// A folder input, before its walk.
    fn folder(&mut self, _root: &Path) {}
    /// Files or members that are not images by their extension.
    fn not_images(&mut self, _n: u64) {}
    /// A shard about to be streamed: `false` skips it unread.
    fn shard(&mut self, _shard: &FileEntry) -> bool {
        true
    }
    /// An image member (no bytes yet): `false` hands it to `file` unread.
    fn member(&mut self, _e: &FileEntry) -> bool {
        true
    }
    /// A shard that was streamed, and how its stream ended.
    fn shard_done(&mut self, _shard: &FileEntry, _end: &ShardEnd) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Streams every input to `v`: folders walked in name order, shards member
/// by member (bytes read within `limits`), files as found. Inputs that do
/// not exist or cannot be read are `skipped`, never an error.
pub fn visit<V: Visit>(inputs: &Inputs, limits: &Limits, v: &mut V) -> Result<(), V::Error> {
    for p in &inputs.paths {
        let md = match std::fs::metadata(p) {
            Ok(md) => md,
            Err(e) => {
                let reason = if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file or folder".to_string()
                } else {
                    format!("cannot read: {e}")
                };
                v.skipped(Skipped {
                    path: path_text(p),
                    reason,
                });
                continue;
            }
        };
        let entry = FileEntry::on_disk(p.clone(), md.len(), mtime_ns(&md));
        if md.is_dir() {
            v.folder(p);
            let mut walk = Walker::new(p).with_shards();
            for item in walk.by_ref() {
                match item {
                    WalkItem::File(e) => v.file(e)?,
                    WalkItem::Skipped(s) => v.skipped(s),
                    WalkItem::Shard(s) => visit_shard(s, limits, v)?,
                }
            }
            v.not_images(walk.not_images);
        } else if !md.is_file() {
            v.skipped(Skipped {
                path: path_text(p),
                reason: format!("not a regular file ({})", file_kind(&md)),
            });
        } else if is_shard_name(p) {
            visit_shard(entry, limits, v)?;
        } else {
            v.file(entry)?;
        }
    }
    Ok(())
}

fn visit_shard<V: Visit>(s: FileEntry, limits: &Limits, v: &mut V) -> Result<(), V::Error> {
    if !v.shard(&s) {
        return Ok(());
    }
    let end = shard::stream(&s.path, limits, v)?;
    v.not_images(end.not_images);
    if let Some(f) = &end.error {
        v.skipped(Skipped {
            path: path_text(&s.path),
            reason: f.reason.clone(),
        });
    }
    v.shard_done(&s, &end)
}

/// The bytes of `path`: a regular file, or a member of a tar shard named
/// `SHARD.tar/MEMBER`. Anything else (a FIFO put there since indexing, a
/// folder) is refused without opening it, and so is a file over the limit.
pub fn read(path: &Path, limits: &Limits) -> Result<Vec<u8>, Failure> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_file() => super::batch::read_regular(path, md.len(), limits),
        Ok(md) => Err(Failure::content(format!(
            "not a regular file ({})",
            file_kind(&md)
        ))),
        Err(e) => match shard::split_member(path) {
            Some((s, name)) => shard::read_member(&s, &name, limits),
            None => Err(Failure::io(format!("cannot read: {e}"))),
        },
    }
}

//! WebDataset tar shards (img2dataset's `00000.tar` with `key.jpg`,
//! `key.txt`, `key.json` members), read as a stream without extracting.
//!
//! An image member is named `SHARD.tar/MEMBER` wherever a file path would
//! be (index records, reports): the shard's path, a `/`, and the member's
//! name in the archive without a leading `./` or `/`. Members are picked by
//! extension as the folder walk picks files; captions and metadata are
//! counted as not images. Data of members that are not read is skipped by
//! seeking, so an unchanged or non-image member costs one header read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::batch::check_size;
use super::names::{bytes_to_path, path_text, path_to_bytes};
use super::source::Visit;
use super::walk::{is_image_name, is_shard_name, mtime_ns};
use super::{Failure, FileEntry, Limits, Skipped};

/// Tar's block size: headers and data are padded to it.
const BLOCK: u64 = 512;

/// How a shard's stream ended.
#[derive(Debug, Default)]
pub struct ShardEnd {
    /// Image members found (read or not).
    pub members: u64,
    /// Members that are not images by their extension (captions, metadata).
    pub not_images: u64,
    /// Why the stream stopped early (a truncated or corrupt archive, an I/O
    /// error); the members before it were handed out.
    pub error: Option<Failure>,
}

/// The record path of member `name` of `shard`: `SHARD/NAME`.
pub fn member_path(shard: &Path, name: &[u8]) -> PathBuf {
    let mut b = path_to_bytes(shard);
    b.push(b'/');
    b.extend_from_slice(name);
    bytes_to_path(&b)
}

/// A member's name as recorded: without leading `./` and `/` (`tar -C dir .`
/// writes `./key.jpg`, an absolute name must not replace the shard path).
fn clean_name(mut name: &[u8]) -> &[u8] {
    loop {
        if let Some(rest) = name.strip_prefix(b"./") {
            name = rest;
        } else if let Some(rest) = name.strip_prefix(b"/") {
            name = rest;
        } else {
            return name;
        }
    }
}

/// Whether a tar read error lies in the archive's bytes (truncated, bad
/// header) rather than in reading the file.
fn archive_fault(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), Other | UnexpectedEof | InvalidData | InvalidInput)
}

fn open(shard: &Path) -> Result<(tar::Archive<BufReader<File>>, u64), Failure> {
    let f = File::open(shard).map_err(|e| Failure::io(format!("cannot read: {e}")))?;
    let len = f
        .metadata()
        .map_err(|e| Failure::io(format!("cannot stat: {e}")))?
        .len();
    Ok((tar::Archive::new(BufReader::with_capacity(1 << 16, f)), len))
}

/// Streams the members of `shard` to `v`. For each image member
/// [`Visit::member`] sees its entry (path, size, mtime; no bytes) and says
/// whether to read it; [`Visit::file`] then gets it, read or not, in archive
/// order. Members over the size limit are not read (their entry carries the
/// limit failure), so memory stays within one member. An error of `v` stops
/// the stream and is returned; a damaged archive is not an error but
/// [`ShardEnd::error`] (the members before the damage were handed out).
pub fn stream<V: Visit>(shard: &Path, limits: &Limits, v: &mut V) -> Result<ShardEnd, V::Error> {
    let mut end = ShardEnd::default();
    let (mut archive, len) = match open(shard) {
        Ok(a) => a,
        Err(f) => {
            end.error = Some(f);
            return Ok(end);
        }
    };
    // Offset just past the last entry's padded data: the end-of-archive
    // block must follow there, else the shard was cut at an entry boundary.
    let mut next = 0u64;
    {
        let entries = match archive.entries_with_seek() {
            Ok(e) => e,
            Err(e) => {
                end.error = Some(Failure::io(format!("cannot read: {e}")));
                return Ok(end);
            }
        };
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    end.error = Some(damaged(&e, end.members));
                    return Ok(end);
                }
            };
            let size = entry.size();
            next = entry.raw_file_position() + size.div_ceil(BLOCK) * BLOCK;
            let name = clean_name(&entry.path_bytes()).to_vec();
            let kind = entry.header().entry_type();
            if name.is_empty() || kind.is_dir() || !is_image_name(&bytes_to_path(&name)) {
                if kind.is_file() {
                    end.not_images += 1;
                }
                continue;
            }
            let path = member_path(shard, &name);
            if !kind.is_file() {
                v.skipped(Skipped {
                    path: path_text(&path),
                    reason: "not a regular file (a link inside the tar)".into(),
                });
                continue;
            }
            end.members += 1;
            let mtime = entry.header().mtime().unwrap_or(0);
            let mut e = FileEntry::on_disk(path, size, mtime.saturating_mul(1_000_000_000) as i64);
            if v.member(&e) {
                e.bytes = Some(check_size(size, limits).and_then(|()| {
                    let mut buf = Vec::with_capacity(size as usize);
                    match entry.read_to_end(&mut buf) {
                        Ok(n) if n as u64 == size => Ok(buf),
                        Ok(n) => Err(Failure::content(format!(
                            "truncated: {n} of {size} bytes in the tar"
                        ))),
                        Err(err) => Err(Failure::io(format!("cannot read: {err}"))),
                    }
                }));
            }
            v.file(e)?;
        }
    }
    // The tar crate stops quietly at a clean end of file, so a shard cut at
    // an entry boundary looks complete: check for the zero block ourselves.
    let mut f = archive.into_inner();
    let mut block = [0u8; BLOCK as usize];
    let marked = next + BLOCK <= len
        && f.seek(SeekFrom::Start(next)).is_ok()
        && f.read_exact(&mut block).is_ok()
        && block.iter().all(|&b| b == 0);
    if !marked {
        end.error = Some(Failure::content(format!(
            "truncated tar shard: ends without the end-of-archive marker ({} image members read)",
            end.members
        )));
    }
    Ok(end)
}

fn damaged(e: &std::io::Error, members: u64) -> Failure {
    let why = format!("truncated or corrupt tar shard ({members} image members read): {e}");
    if archive_fault(e) {
        Failure::content(why)
    } else {
        Failure::io(why)
    }
}

/// Splits a record path `SHARD.tar/MEMBER` into the shard file and the
/// member name: the first prefix that ends in `.tar` and is a regular file.
/// `None` when no prefix is one.
pub fn split_member(path: &Path) -> Option<(PathBuf, Vec<u8>)> {
    let bytes = path_to_bytes(path);
    for (i, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'/') {
        let shard = bytes_to_path(&bytes[..i]);
        if i + 1 < bytes.len()
            && is_shard_name(&shard)
            && std::fs::metadata(&shard).is_ok_and(|m| m.is_file())
        {
            return Some((shard, bytes[i + 1..].to_vec()));
        }
    }
    None
}

/// Where each member's data lies in one version of a shard.
struct Table {
    size: u64,
    mtime_ns: i64,
    /// Member name → (data offset, size).
    members: HashMap<Vec<u8>, (u64, u64)>,
}

/// Member tables of the shards read lately: a report reads many members
/// of few shards, and a table costs one pass over the shard's headers.
fn tables() -> &'static Mutex<HashMap<PathBuf, Arc<Table>>> {
    static T: OnceLock<Mutex<HashMap<PathBuf, Arc<Table>>>> = OnceLock::new();
    T.get_or_init(Default::default)
}

/// Shards whose tables are kept at most.
const TABLES_KEPT: usize = 32;

fn table(shard: &Path) -> Result<Arc<Table>, Failure> {
    let md = std::fs::metadata(shard).map_err(|e| Failure::io(format!("cannot read: {e}")))?;
    let (size, mtime) = (md.len(), mtime_ns(&md));
    if let Some(t) = tables().lock().ok().and_then(|m| m.get(shard).cloned()) {
        if t.size == size && t.mtime_ns == mtime {
            return Ok(t);
        }
    }
    let (mut archive, _) = open(shard)?;
    let mut members = HashMap::new();
    let entries = archive
        .entries_with_seek()
        .map_err(|e| Failure::io(format!("cannot read: {e}")))?;
    for entry in entries {
        // A damaged tail: the members before it stay readable.
        let Ok(entry) = entry else { break };
        if entry.header().entry_type().is_file() {
            let name = clean_name(&entry.path_bytes()).to_vec();
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
    }
    let t = Arc::new(Table {
        size,
        mtime_ns: mtime,
        members,
    });
    if let Ok(mut m) = tables().lock() {
        if m.len() >= TABLES_KEPT {
            m.clear();
        }
        m.insert(shard.to_path_buf(), t.clone());
    }
    Ok(t)
}

/// The bytes of member `name` of `shard`, within the size limit.
pub fn read_member(shard: &Path, name: &[u8], limits: &Limits) -> Result<Vec<u8>, Failure> {
    let t = table(shard)?;
    let &(offset, size) = t
        .members
        .get(name)
        .ok_or_else(|| Failure::io("no such member in the tar shard"))?;
    check_size(size, limits)?;
    let mut f = File::open(shard).map_err(|e| Failure::io(format!("cannot read: {e}")))?;
    let mut buf = vec![0u8; size as usize];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(|e| Failure::io(format!("cannot read: {e}")))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_cleaned() {
        assert_eq!(clean_name(b"./a/b.jpg"), b"a/b.jpg");
        assert_eq!(clean_name(b"/./x.png"), b"x.png");
        assert_eq!(clean_name(b"k.jpg"), b"k.jpg");
        assert_eq!(
            member_path(Path::new("/d/00001.tar"), b"k.jpg"),
            Path::new("/d/00001.tar/k.jpg")
        );
    }
}

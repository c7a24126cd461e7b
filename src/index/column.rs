//! Column files: a 64-byte header, then `count` records of `width` bytes.
//!
//! ```text
//! 0..8    magic  "LKLKCOL\0"
//! 8..12   format version, u32 LE
//! 12..16  record width in bytes, u32 LE
//! 16..32  column name, ASCII, zero padded
//! 32..40  record count, u64 LE
//! 40..48  xxh3-64 of the payload
//! 48..64  reserved, zero
//! ```
//! The header is 64 bytes so the payload of a page-aligned map is aligned for
//! any record type we cast to.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use memmap2::Mmap;

use super::FORMAT_VERSION;
use crate::error::IndexError;

/// First 8 bytes of every column file.
pub const MAGIC: &[u8; 8] = b"LKLKCOL\0";
/// Header length; the payload starts here.
pub const HEADER: usize = 64;

use crate::ingest::walk::file_kind;

/// Opens an index file for reading only if it is a regular file of at most
/// `max_len` bytes, and returns it with its length. A FIFO, socket, device
/// or directory is refused from its `stat` before any open, and the open
/// itself is non-blocking (a FIFO swapped in meanwhile cannot hang it), then
/// re-checked on the open file. The cap comes from the manifest, so a
/// damaged or hostile file is an error naming it, never a read of its claimed size.
///
/// `cap_for` says where the cap comes from, for the message.
pub fn open_regular(path: &Path, max_len: u64, cap_for: &str) -> Result<(File, u64), IndexError> {
    let io = |e| IndexError::io(path, e);
    let check = |md: &std::fs::Metadata| {
        if !md.is_file() {
            return Err(IndexError::corrupt(
                path,
                format!("not a regular file ({})", file_kind(md)),
            ));
        }
        if md.len() > max_len {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "{} bytes, more than the {max_len} it may have ({cap_for})",
                    md.len()
                ),
            ));
        }
        Ok(md.len())
    };
    check(&std::fs::metadata(path).map_err(io)?)?;
    let (file, md) = crate::ingest::walk::open_nonblocking(path).map_err(io)?;
    let len = check(&md)?;
    Ok((file, len))
}

/// Reads a whole small file through [`open_regular`]: at most `max_len`
/// bytes are ever read, whatever the file claims or grows to meanwhile.
pub fn read_regular(path: &Path, max_len: u64, cap_for: &str) -> Result<Vec<u8>, IndexError> {
    let (file, len) = open_regular(path, max_len, cap_for)?;
    let mut buf = Vec::with_capacity(len as usize);
    file.take(max_len.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| IndexError::io(path, e))?;
    if buf.len() as u64 > max_len {
        return Err(IndexError::corrupt(
            path,
            format!("grew past {max_len} bytes while being read"),
        ));
    }
    Ok(buf)
}

/// The record width a column file's header declares, for a column whose
/// width is part of its data (a projection's input dimension). Only the
/// header is read; [`Column::open`] then validates the whole file.
pub fn peek_width(path: &Path, max_len: u64) -> Result<u32, IndexError> {
    let (mut file, len) = open_regular(path, max_len, "its kind of column")?;
    let mut h = [0u8; HEADER];
    if len < HEADER as u64 || file.read_exact(&mut h).is_err() {
        return Err(IndexError::corrupt(
            path,
            format!("{len} bytes, shorter than the {HEADER}-byte header (truncated?)"),
        ));
    }
    Ok(u32::from_le_bytes(h[12..16].try_into().unwrap()))
}

/// How many records a column must hold.
#[derive(Clone, Copy, Debug)]
pub enum Count {
    /// Exactly this many (the manifest says so).
    Exactly(u64),
    /// Any number up to this (a file whose length its own header gives,
    /// within a bound derived from the manifest).
    AtMost(u64),
}

/// Writes a column file and fsyncs it.
pub fn write(path: &Path, name: &str, width: u32, payload: &[u8]) -> Result<(), IndexError> {
    assert!(name.len() <= 16 && width > 0 && payload.len().is_multiple_of(width as usize));
    let mut h = [0u8; HEADER];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&width.to_le_bytes());
    h[16..16 + name.len()].copy_from_slice(name.as_bytes());
    h[32..40].copy_from_slice(&((payload.len() / width as usize) as u64).to_le_bytes());
    h[40..48].copy_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
    let io = |e| IndexError::io(path, e);
    let mut f = File::create(path).map_err(io)?;
    f.write_all(&h).map_err(io)?;
    f.write_all(payload).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Writes a column file in pieces, for payloads too large to gather in
/// memory (a merge streams rows from the mapped source segments): the header
/// is written last, with the checksum of everything appended, then the file
/// is fsynced. Same bytes as [`write()`] for the same payload.
pub struct ColumnWriter {
    file: std::io::BufWriter<File>,
    hasher: xxhash_rust::xxh3::Xxh3,
    path: std::path::PathBuf,
    name: String,
    width: u32,
    len: u64,
}

impl ColumnWriter {
    /// Creates `path` (replacing any file there) for a column of `width`-byte records.
    pub fn create(path: &Path, name: &str, width: u32) -> Result<ColumnWriter, IndexError> {
        assert!(name.len() <= 16 && width > 0);
        let mut file = File::create(path).map_err(|e| IndexError::io(path, e))?;
        file.write_all(&[0u8; HEADER])
            .map_err(|e| IndexError::io(path, e))?;
        Ok(ColumnWriter {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            path: path.to_path_buf(),
            name: name.to_string(),
            width,
            len: 0,
        })
    }

    /// Appends payload bytes (any split; whole records in the end).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), IndexError> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.file
            .write_all(bytes)
            .map_err(|e| IndexError::io(&self.path, e))
    }

    /// Writes the header, flushes and fsyncs the file.
    pub fn finish(self) -> Result<(), IndexError> {
        use std::io::{Seek, SeekFrom};
        let io = |e| IndexError::io(&self.path, e);
        assert!(self.len.is_multiple_of(self.width as u64), "whole records");
        let mut h = [0u8; HEADER];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.width.to_le_bytes());
        h[16..16 + self.name.len()].copy_from_slice(self.name.as_bytes());
        h[32..40].copy_from_slice(&(self.len / self.width as u64).to_le_bytes());
        h[40..48].copy_from_slice(&self.hasher.digest().to_le_bytes());
        let mut f = self.file.into_inner().map_err(|e| io(e.into_error()))?;
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        f.write_all(&h).map_err(io)?;
        f.sync_all().map_err(io)
    }
}

/// A validated, memory-mapped column.
pub struct Column {
    map: Option<Mmap>, // None for an empty file (zero-length maps are not allowed everywhere)
    /// Records in the column.
    pub count: u64,
}

/// What a column's records are, for messages: paths.col counts bytes.
fn unit(name: &str) -> &'static str {
    if name == "paths" {
        "bytes of path names"
    } else {
        "records"
    }
}

impl Column {
    /// Maps and validates: regular file within the size `count` allows,
    /// magic, version, name, width, count, exact length and checksum. Only a
    /// column that passes all of these is ever cast.
    pub fn open(path: &Path, name: &str, width: u32, count: Count) -> Result<Column, IndexError> {
        let unit = unit(name);
        let most = match count {
            Count::Exactly(n) | Count::AtMost(n) => n,
        };
        let cap = most
            .checked_mul(width as u64)
            .and_then(|p| p.checked_add(HEADER as u64))
            .ok_or_else(|| {
                IndexError::corrupt(
                    path,
                    format!("the manifest's {most} {unit} of {width} bytes overflow a file size"),
                )
            })?;
        let cap_for = match count {
            Count::Exactly(n) => format!("the manifest's {n} {unit}"),
            Count::AtMost(n) => format!("at most {n} {unit}"),
        };
        let (file, len) = open_regular(path, cap, &cap_for)?;
        if len < HEADER as u64 {
            return Err(IndexError::corrupt(
                path,
                format!("{len} bytes, shorter than the {HEADER}-byte header (truncated?)"),
            ));
        }
        // SAFETY: the index directory is ours and locked against our own writers;
        // segments are immutable once committed. A foreign process truncating the
        // file under us is outside what any mmap-based reader can defend against.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| IndexError::io(path, e))?;
        let h = &map[..HEADER];
        if &h[0..8] != MAGIC {
            return Err(IndexError::Foreign {
                path: path.into(),
                why: "bad magic bytes".into(),
            });
        }
        let version = u32::from_le_bytes(h[8..12].try_into().unwrap());
        if version != FORMAT_VERSION {
            return Err(IndexError::Version {
                path: path.into(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let w = u32::from_le_bytes(h[12..16].try_into().unwrap());
        let stored_name = std::str::from_utf8(&h[16..32])
            .unwrap_or("?")
            .trim_end_matches('\0');
        if stored_name != name || w != width {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "expected column '{name}' of width {width}, found '{stored_name}' of width {w}"
                ),
            ));
        }
        let stored = u64::from_le_bytes(h[32..40].try_into().unwrap());
        match count {
            Count::Exactly(c) if c != stored => {
                return Err(IndexError::corrupt(
                    path,
                    format!("its header says {stored} {unit}, the manifest says {c}"),
                ))
            }
            Count::AtMost(c) if stored > c => {
                return Err(IndexError::corrupt(
                    path,
                    format!("its header says {stored} {unit}, more than the {c} allowed"),
                ))
            }
            _ => {}
        }
        let count = stored;
        let want = count
            .checked_mul(width as u64)
            .and_then(|p| p.checked_add(HEADER as u64));
        if want != Some(len) {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "{len} bytes, expected {} for {count} {unit} (truncated or appended to?)",
                    want.map(|w| w.to_string()).unwrap_or("overflow".into())
                ),
            ));
        }
        let sum = u64::from_le_bytes(h[40..48].try_into().unwrap());
        if xxhash_rust::xxh3::xxh3_64(&map[HEADER..]) != sum {
            return Err(IndexError::corrupt(
                path,
                "checksum mismatch (the file was modified or damaged)",
            ));
        }
        Ok(Column {
            map: Some(map),
            count,
        })
    }

    /// The payload.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_ref().map(|m| &m[HEADER..]).unwrap_or(&[])
    }

    /// Typed view; cannot fail after `open` validated length, and the map is
    /// page aligned so the 64-byte header keeps the payload aligned.
    pub fn cast<T: bytemuck::Pod>(&self) -> &[T] {
        bytemuck::try_cast_slice(self.bytes())
            .expect("validated column has exact length and alignment")
    }
}

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
use std::io::Write;
use std::path::Path;

use memmap2::Mmap;

use super::FORMAT_VERSION;
use crate::error::IndexError;

pub const MAGIC: &[u8; 8] = b"LKLKCOL\0";
pub const HEADER: usize = 64;

/// Writes a column file and fsyncs it.
pub fn write(path: &Path, name: &str, width: u32, payload: &[u8]) -> Result<(), IndexError> {
    assert!(name.len() <= 16 && width > 0 && payload.len() % width as usize == 0);
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

/// A validated, memory-mapped column.
pub struct Column {
    map: Option<Mmap>, // None for an empty file (zero-length maps are not allowed everywhere)
    pub count: u64,
}

impl Column {
    /// Maps and validates: magic, version, name, width, count, exact length and
    /// checksum. Only a column that passes all of these is ever cast.
    pub fn open(
        path: &Path,
        name: &str,
        width: u32,
        expect_count: Option<u64>,
    ) -> Result<Column, IndexError> {
        let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
        let len = file.metadata().map_err(|e| IndexError::io(path, e))?.len();
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
        let count = u64::from_le_bytes(h[32..40].try_into().unwrap());
        if let Some(c) = expect_count {
            if c != count {
                return Err(IndexError::corrupt(
                    path,
                    format!("holds {count} records, the manifest says {c}"),
                ));
            }
        }
        let want = count
            .checked_mul(width as u64)
            .and_then(|p| p.checked_add(HEADER as u64));
        if want != Some(len) {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "{len} bytes, expected {} for {count} records (truncated or appended to?)",
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

//! `pdq_mih.col`: a multi-index hashing table over one segment's PDQ hashes
//! (Norouzi, Punjani & Fleet, "Fast Search in Hamming Space with Multi-Index
//! Hashing", CVPR 2012), so a radius query reads a few buckets instead of
//! every row.
//!
//! The 256 bits are cut into 16 blocks of 16 bits (block `j` = bits
//! `16j..16j+16`). Two hashes at distance ≤ 31 differ in ≤ 1 bit in some
//! block (16 blocks, ≤ 31 differing bits: pigeonhole), so probing every
//! block's table with the query's block value and its 16 one-bit flips finds
//! every hash within 31; the caller verifies candidates by full distance.
//!
//! Entries are the upright hash of every row that can be live (not removed,
//! not failed) and, for rows whose trimmed view differs, the trimmed hash
//! too; both store the row, so a candidate row is verified on both views.
//! Per block, a CSR table keyed by the block's top `b` bits (`b` =
//! ⌊log2 entries⌋, at most 16, so the table is never much larger than the
//! entries): offsets, then the rows of each bucket. A bucket may hold rows
//! whose block differs in the low `16 − b` bits; verification drops them.
//!
//! Payload, u32 little-endian words:
//! ```text
//! 0 rows (= the segment's records)   2 bucket bits b (0..=16)
//! 1 entries E                        3 reserved, 0
//! then per block j = 0..16:  offsets[2^b + 1] (0, ascending, last = E), rows[E]
//! ```

use std::path::Path;

use super::column::{Column, ColumnWriter, Count};
use super::flags;
use super::segment::FileRecord;
use crate::descriptors::Hash256;
use crate::error::IndexError;

/// File name of the table in a segment folder.
pub const FILE: &str = "pdq_mih.col";
/// Column name recorded in the file's header.
pub const NAME: &str = "pdq_mih";
/// Blocks (substrings) per hash.
pub const BLOCKS: usize = 16;
/// Largest radius for which probing one-bit neighbourhoods is exact:
/// `2 · BLOCKS − 1`.
pub const RADIUS: u32 = 2 * BLOCKS as u32 - 1;
const HEADER_WORDS: usize = 4;

/// The 16-bit value of block `j` of `h`.
#[inline]
pub fn block(h: &Hash256, j: usize) -> u16 {
    (h.words[j / 4] >> ((j % 4) * 16)) as u16
}

/// Bucket bits for `entries` entries: ⌊log2 entries⌋, within 0..=16.
fn bucket_bits(entries: usize) -> u32 {
    entries.max(1).ilog2().min(16)
}

/// Most words a table over `rows` rows can have (every row with a trimmed
/// view, 16 bucket bits), the size cap checked before the file is mapped.
pub fn max_words(rows: u64) -> u64 {
    let e = rows.saturating_mul(2);
    (HEADER_WORDS as u64)
        .saturating_add((BLOCKS as u64).saturating_mul(e.saturating_add((1 << 16) + 1)))
}

/// Builds the table over a segment's columns and writes it to `path`,
/// block by block (memory: one block's rows, not the whole table).
pub fn write(
    path: &Path,
    files: &[FileRecord],
    pdq: &[Hash256],
    pdq_trim: &[Hash256],
) -> Result<(), IndexError> {
    let searchable = |r: usize| files[r].flags & (flags::TOMBSTONE | flags::FAILED) == 0;
    // (hash, row) of every entry, as row lists: upright, then trimmed views.
    let upright: Vec<u32> = (0..pdq.len())
        .filter(|&r| searchable(r))
        .map(|r| r as u32)
        .collect();
    let trimmed: Vec<u32> = upright
        .iter()
        .copied()
        .filter(|&r| pdq_trim[r as usize] != pdq[r as usize])
        .collect();
    let entries = upright.len() + trimmed.len();
    let b = bucket_bits(entries);
    let buckets = 1usize << b;
    let mut w = ColumnWriter::create(path, NAME, 4)?;
    let head = [pdq.len() as u32, entries as u32, b, 0];
    w.write(bytemuck::cast_slice(&head))?;
    let mut offsets = vec![0u32; buckets + 1];
    let mut rows = vec![0u32; entries];
    for j in 0..BLOCKS {
        let key = |h: &Hash256| (block(h, j) as u32 >> (16 - b)) as usize;
        let all = || {
            upright
                .iter()
                .map(|&r| (key(&pdq[r as usize]), r))
                .chain(trimmed.iter().map(|&r| (key(&pdq_trim[r as usize]), r)))
        };
        offsets.iter_mut().for_each(|o| *o = 0);
        for (k, _) in all() {
            offsets[k + 1] += 1;
        }
        for i in 0..buckets {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        for (k, r) in all() {
            rows[next[k] as usize] = r;
            next[k] += 1;
        }
        w.write(bytemuck::cast_slice(&offsets))?;
        w.write(bytemuck::cast_slice(&rows))?;
    }
    w.finish()
}

/// A validated table over a mapped `pdq_mih.col`.
pub struct Mih {
    col: Column,
    /// Bucket bits: a block value `v` is in bucket `v >> (16 − bits)`.
    pub bits: u32,
    /// Entries per block.
    pub entries: usize,
}

impl Mih {
    /// Maps the table and checks its shape, every offset and every row
    /// before a search follows them.
    pub fn open(path: &Path, rows: usize) -> Result<Mih, IndexError> {
        let col = Column::open(path, NAME, 4, Count::AtMost(max_words(rows as u64)))?;
        let bad = |why: String| IndexError::corrupt(path, why);
        let w: &[u32] = col.cast();
        if w.len() < HEADER_WORDS {
            return Err(bad(format!("{} words, shorter than its header", w.len())));
        }
        let (n, e, b) = (w[0] as usize, w[1] as usize, w[2]);
        if n != rows {
            return Err(bad(format!("built over {n} rows, the segment has {rows}")));
        }
        if e > 2 * rows || b > 16 || w[3] != 0 {
            return Err(bad(format!(
                "header (entries {e}, bucket bits {b}) does not fit {rows} rows"
            )));
        }
        let per = (1usize << b) + 1 + e;
        if w.len() != HEADER_WORDS + BLOCKS * per {
            return Err(bad(format!(
                "{} words, expected {} for {e} entries",
                w.len(),
                HEADER_WORDS + BLOCKS * per
            )));
        }
        for j in 0..BLOCKS {
            let t = &w[HEADER_WORDS + j * per..HEADER_WORDS + (j + 1) * per];
            let (offs, rs) = t.split_at((1 << b) + 1);
            if offs[0] != 0 || offs[offs.len() - 1] as usize != e {
                return Err(bad(format!("block {j}: offsets do not span the entries")));
            }
            if offs.windows(2).any(|p| p[0] > p[1]) {
                return Err(bad(format!("block {j}: offsets not ascending")));
            }
            if rs.iter().any(|&r| r as usize >= rows) {
                return Err(bad(format!("block {j}: a row outside the segment")));
            }
        }
        Ok(Mih {
            col,
            bits: b,
            entries: e,
        })
    }

    /// Rows in the bucket of block `j` holding block value `v` (a superset
    /// of the entries whose block `j` equals `v`).
    #[inline]
    pub fn bucket(&self, j: usize, v: u16) -> &[u32] {
        let w: &[u32] = self.col.cast();
        let buckets = 1usize << self.bits;
        let per = buckets + 1 + self.entries;
        let t = &w[HEADER_WORDS + j * per..HEADER_WORDS + (j + 1) * per];
        let k = (v as u32 >> (16 - self.bits)) as usize;
        let (lo, hi) = (t[k] as usize, t[k + 1] as usize);
        &t[buckets + 1 + lo..buckets + 1 + hi]
    }

    /// Every bucket a probe of block `j` with `v` and its 16 one-bit flips
    /// reads (flips in the low `16 − bits` bits share `v`'s bucket).
    pub fn probe(&self, j: usize, v: u16, mut f: impl FnMut(&[u32])) {
        f(self.bucket(j, v));
        for bit in (16 - self.bits)..16 {
            f(self.bucket(j, v ^ (1 << bit)));
        }
    }
}

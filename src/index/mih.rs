//! The PDQ table of a segment: multi-index hashing (Norouzi, Punjani &
//! Fleet, "Fast Search in Hamming Space with Multi-Index Hashing", CVPR
//! 2012, and its journal version, TPAMI 2014), so a radius query reads a few
//! buckets instead of every row.
//!
//! The 256 bits are cut into blocks; block `j` gets a probe radius `ρ_j`
//! such that two hashes at distance ≤ 31 differ in at most `ρ_j` bits of
//! some block `j` (if every block differed in `ρ_j + 1` or more, the total
//! would exceed 31: pigeonhole). Probing every block's table with the
//! query's block value and every value within `ρ_j` of it therefore finds
//! every hash within 31; the caller verifies candidates by full distance.
//!
//! Two layouts ([`Layout`]):
//! - [`ELEVEN`] (`pdq_mih_v2.col`, written now): 3 blocks of 24 bits and 8
//!   of 23, radius 1 on block 0 and 2 on the others (1 + 1 + 10·2 + 10 = 32
//!   differing bits at least otherwise). Blocks of about log2 N bits keep the
//!   buckets near one entry each at N = 10 M entries, the paper's choice of
//!   block length; each entry is tagged with the view it holds (bit 31), so
//!   a candidate is verified against one stored hash.
//! - [`SIXTEEN`] (`pdq_mih.col`, written by earlier versions, still read):
//!   16 blocks of 16 bits, radius 1, untagged rows. At 10 M entries its
//!   buckets hold ~150 rows each: 15× the candidates of [`ELEVEN`].
//!
//! Entries are the upright hash of every row that can be live (not removed,
//! not failed) and, for rows whose trimmed view differs, the trimmed hash
//! too. Per block, a CSR table keyed by the block's top `b` bits (`b` =
//! ⌊log2 entries⌋, at most the layout's cap, so the table is never much
//! larger than the entries): offsets, then the entries of each bucket. A
//! bucket may hold entries whose block differs in its low bits;
//! verification drops them.
//!
//! Payload, u32 little-endian words:
//! ```text
//! 0 rows (= the segment's records)   2 bucket bits b
//! 1 entries E                        3 0 (SIXTEEN) or the layout id 2 (ELEVEN)
//! then per block j:  offsets[2^b + 1] (0, ascending, last = E), entries[E]
//! ```

use std::path::Path;

use super::column::{Column, ColumnWriter, Count};
use super::flags;
use super::segment::FileRecord;
use crate::descriptors::Hash256;
use crate::error::IndexError;

/// How a table cuts the hash and marks its entries.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    /// File name in a segment folder.
    pub file: &'static str,
    /// Column name recorded in the file's header.
    pub name: &'static str,
    /// Header word 3.
    id: u32,
    /// Per block: (first bit, width in bits, probe radius).
    pub blocks: &'static [(u32, u32, u32)],
    /// Most bucket bits (at most the narrowest block).
    max_bits: u32,
    /// Entries carry their view in bit 31 (1: the trimmed hash).
    pub tagged: bool,
}

/// 16 blocks of 16 bits, radius 1 each (tables of earlier versions).
pub const SIXTEEN: Layout = Layout {
    file: "pdq_mih.col",
    name: "pdq_mih",
    id: 0,
    blocks: &[
        (0, 16, 1),
        (16, 16, 1),
        (32, 16, 1),
        (48, 16, 1),
        (64, 16, 1),
        (80, 16, 1),
        (96, 16, 1),
        (112, 16, 1),
        (128, 16, 1),
        (144, 16, 1),
        (160, 16, 1),
        (176, 16, 1),
        (192, 16, 1),
        (208, 16, 1),
        (224, 16, 1),
        (240, 16, 1),
    ],
    max_bits: 16,
    tagged: false,
};

/// 3 blocks of 24 bits and 8 of 23; radius 1 on block 0, 2 elsewhere.
pub const ELEVEN: Layout = Layout {
    file: "pdq_mih_v2.col",
    name: "pdq_mih_v2",
    id: 2,
    blocks: &[
        (0, 24, 1),
        (24, 24, 2),
        (48, 24, 2),
        (72, 23, 2),
        (95, 23, 2),
        (118, 23, 2),
        (141, 23, 2),
        (164, 23, 2),
        (187, 23, 2),
        (210, 23, 2),
        (233, 23, 2),
    ],
    max_bits: 23,
    tagged: true,
};

/// The layout new segments are written with.
pub const CURRENT: &Layout = &ELEVEN;

/// Largest radius every layout answers exactly.
pub const RADIUS: u32 = 31;
const HEADER_WORDS: usize = 4;
/// Entry bit 31: the entry holds the row's trimmed hash ([`Layout::tagged`]).
pub const TRIMMED_TAG: u32 = 1 << 31;

// Each layout covers the 256 bits once, probes radii of at most 2 (all
// `probe` enumerates), and is exact up to RADIUS.
const fn check(l: &Layout) -> bool {
    let (mut i, mut next, mut floor) = (0, 0, 0);
    while i < l.blocks.len() {
        let (start, width, radius) = l.blocks[i];
        if start != next || width < l.max_bits || width > 24 || radius > 2 {
            return false;
        }
        next += width;
        floor += radius + 1;
        i += 1;
    }
    next == 256 && floor > RADIUS
}
const _: () = assert!(check(&SIXTEEN) && check(&ELEVEN));

/// Bits `start..start + width` (width ≤ 24) of `h`, bit 0 lowest.
#[inline]
pub fn bits(h: &Hash256, start: u32, width: u32) -> u32 {
    let (i, o) = ((start / 64) as usize, start % 64);
    let mut v = h.words[i] >> o;
    if o + width > 64 {
        v |= h.words[i + 1] << (64 - o);
    }
    (v & ((1u64 << width) - 1)) as u32
}

/// Bucket bits for `entries` entries: ⌊log2 entries⌋, within the cap.
fn bucket_bits(layout: &Layout, entries: usize) -> u32 {
    entries.max(1).ilog2().min(layout.max_bits)
}

/// Most words a table over `rows` rows can have (every row with a trimmed
/// view), the size cap checked before the file is mapped.
pub fn max_words(layout: &Layout, rows: u64) -> u64 {
    let e = rows.saturating_mul(2);
    let buckets = 1u64 << bucket_bits(layout, e.min(usize::MAX as u64) as usize);
    let per = e.saturating_add(buckets + 1);
    (HEADER_WORDS as u64).saturating_add((layout.blocks.len() as u64).saturating_mul(per))
}

/// Builds the table over a segment's columns and writes it to `dir` under
/// the layout's file name, block by block (memory: one block's entries).
pub fn write(
    dir: &Path,
    layout: &Layout,
    files: &[FileRecord],
    pdq: &[Hash256],
    pdq_trim: &[Hash256],
) -> Result<(), IndexError> {
    let searchable = |r: usize| files[r].flags & (flags::TOMBSTONE | flags::FAILED) == 0;
    let upright: Vec<u32> = (0..pdq.len() as u32)
        .filter(|&r| searchable(r as usize))
        .collect();
    let trimmed: Vec<u32> = upright
        .iter()
        .copied()
        .filter(|&r| pdq_trim[r as usize] != pdq[r as usize])
        .collect();
    let tag = if layout.tagged { TRIMMED_TAG } else { 0 };
    let entries = upright.len() + trimmed.len();
    let b = bucket_bits(layout, entries);
    let buckets = 1usize << b;
    let mut w = ColumnWriter::create(&dir.join(layout.file), layout.name, 4)?;
    let head = [pdq.len() as u32, entries as u32, b, layout.id];
    w.write(bytemuck::cast_slice(&head))?;
    let mut offsets = vec![0u32; buckets + 1];
    let mut slots = vec![0u32; entries];
    for &(start, width, _) in layout.blocks {
        let key = |h: &Hash256| (bits(h, start, width) >> (width - b)) as usize;
        // (bucket, entry) of every entry: upright views, then trimmed ones.
        let all = || {
            upright.iter().map(|&r| (key(&pdq[r as usize]), r)).chain(
                trimmed
                    .iter()
                    .map(|&r| (key(&pdq_trim[r as usize]), r | tag)),
            )
        };
        offsets.iter_mut().for_each(|o| *o = 0);
        for (k, _) in all() {
            offsets[k + 1] += 1;
        }
        for i in 0..buckets {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        for (k, e) in all() {
            slots[next[k] as usize] = e;
            next[k] += 1;
        }
        w.write(bytemuck::cast_slice(&offsets))?;
        w.write(bytemuck::cast_slice(&slots))?;
    }
    w.finish()
}

/// A validated table over a mapped table file.
pub struct Mih {
    col: Column,
    /// How the table cuts the hash.
    pub layout: &'static Layout,
    /// Bucket bits: block value `v` of width `w` is in bucket `v >> (w − bits)`.
    pub bits: u32,
    /// Entries per block.
    pub entries: usize,
}

impl Mih {
    /// The segment folder's table: the current layout's file, else an
    /// earlier layout's, else none. The table is mapped and its shape, every
    /// offset and every entry checked before a search follows them.
    pub fn find(dir: &Path, rows: usize) -> Result<Option<Mih>, IndexError> {
        for layout in [&ELEVEN, &SIXTEEN] {
            let path = dir.join(layout.file);
            if path.exists() {
                return Mih::open(&path, layout, rows).map(Some);
            }
        }
        Ok(None)
    }

    /// Maps a table of `layout` and validates it (see [`Mih::find`]).
    pub fn open(path: &Path, layout: &'static Layout, rows: usize) -> Result<Mih, IndexError> {
        let cap = Count::AtMost(max_words(layout, rows as u64));
        let col = Column::open(path, layout.name, 4, cap)?;
        let bad = |why: String| IndexError::corrupt(path, why);
        let w: &[u32] = col.cast();
        if w.len() < HEADER_WORDS {
            return Err(bad(format!("{} words, shorter than its header", w.len())));
        }
        let (n, e, b) = (w[0] as usize, w[1] as usize, w[2]);
        if n != rows {
            return Err(bad(format!("built over {n} rows, the segment has {rows}")));
        }
        if e > 2 * rows || b > layout.max_bits || w[3] != layout.id {
            return Err(bad(format!(
                "header (entries {e}, bucket bits {b}, layout {}) does not fit {rows} rows",
                w[3]
            )));
        }
        let row_mask = if layout.tagged {
            !TRIMMED_TAG
        } else {
            u32::MAX
        };
        let per = (1usize << b) + 1 + e;
        let blocks = layout.blocks.len();
        if w.len() != HEADER_WORDS + blocks * per {
            return Err(bad(format!(
                "{} words, expected {} for {e} entries",
                w.len(),
                HEADER_WORDS + blocks * per
            )));
        }
        check_tables(&w[HEADER_WORDS..], b, e, rows, row_mask, "block").map_err(bad)?;
        Ok(Mih {
            col,
            layout,
            bits: b,
            entries: e,
        })
    }

    /// Appends, for every bucket that can hold an entry within 31 of `h`,
    /// the span of its entries (for [`Mih::entries`]): per block, the
    /// buckets whose key is within the block's radius of `h`'s key (flips
    /// of the block's low bits stay in `h`'s bucket).
    ///
    /// Spans, not entries: gathering all spans first, then all entries,
    /// lets the memory reads of one step overlap instead of each waiting on
    /// the one before (the table and the hashes are far larger than cache).
    pub fn probe(&self, h: &Hash256, out: &mut Vec<(u32, u32)>) {
        let w: &[u32] = self.col.cast();
        let b = self.bits;
        let buckets = 1usize << b;
        let per = buckets + 1 + self.entries;
        // Every block's own bucket first asked for, so those reads overlap
        // with the flips of the blocks before.
        for (j, &(start, width, _)) in self.layout.blocks.iter().enumerate() {
            let k = (bits(h, start, width) >> (width - b)) as usize;
            prefetch(&w[HEADER_WORDS + j * per + k]);
        }
        for (j, &(start, width, radius)) in self.layout.blocks.iter().enumerate() {
            let base = HEADER_WORDS + j * per;
            let offsets = &w[base..base + buckets + 1];
            let first = (base + buckets + 1) as u32;
            let mut span = |k: usize| {
                let (lo, hi) = (offsets[k], offsets[k + 1]);
                if lo < hi {
                    out.push((first + lo, first + hi));
                }
            };
            let k = (bits(h, start, width) >> (width - b)) as usize;
            span(k);
            let flips = if radius == 0 { 0 } else { b };
            for i in 0..flips {
                let k1 = k ^ (1 << i);
                span(k1);
                if radius >= 2 {
                    for i2 in i + 1..b {
                        span(k1 ^ (1 << i2));
                    }
                }
            }
        }
    }

    /// The entries of a span from [`Mih::probe`]: rows, with [`TRIMMED_TAG`]
    /// set on a trimmed view's entry when the layout is tagged.
    #[inline]
    pub fn entries(&self, (lo, hi): (u32, u32)) -> &[u32] {
        &self.col.cast::<u32>()[lo as usize..hi as usize]
    }
}

/// Checks `tables`, CSR tables one after another (their total length
/// already checked), each `offsets[2^bits + 1]` (0, ascending, last =
/// `entries`) then `entries` rows, each below `rows` once masked by
/// `row_mask`; `unit` names a table in the message. Shared with the
/// keypoint table (`keypoint_table`), which has the same layout.
pub(super) fn check_tables(
    tables: &[u32],
    bits: u32,
    entries: usize,
    rows: usize,
    row_mask: u32,
    unit: &str,
) -> Result<(), String> {
    let per = (1usize << bits) + 1 + entries;
    for (j, t) in tables.chunks_exact(per).enumerate() {
        let (offs, es) = t.split_at((1 << bits) + 1);
        if offs[0] != 0 || offs[offs.len() - 1] as usize != entries {
            return Err(format!("{unit} {j}: offsets do not span the entries"));
        }
        if offs.windows(2).any(|p| p[0] > p[1]) {
            return Err(format!("{unit} {j}: offsets not ascending"));
        }
        if es.iter().any(|&r| (r & row_mask) as usize >= rows) {
            return Err(format!("{unit} {j}: a row outside the segment"));
        }
    }
    Ok(())
}

/// A hint to bring `v`'s cache line in; no effect on results.
#[inline(always)]
pub fn prefetch<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(v as *const T as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_cross_words_and_match_the_16_bit_blocks() {
        let h = Hash256 {
            words: [
                0x0123_4567_89ab_cdef,
                0xfedc_ba98_7654_3210,
                0x0f1e_2d3c_4b5a_6978,
                0x8796_a5b4_c3d2_e1f0,
            ],
        };
        for j in 0..16u32 {
            let want = (h.words[j as usize / 4] >> ((j % 4) * 16)) as u16 as u32;
            assert_eq!(bits(&h, 16 * j, 16), want);
        }
        // Bits 48..72: the top 16 of word 0, then the low 8 of word 1.
        assert_eq!(bits(&h, 48, 24), 0x10_0123);
        for (start, width, _) in ELEVEN.blocks {
            let by_bit = (0..*width).fold(0u32, |v, i| {
                let at = start + i;
                v | (((h.words[at as usize / 64] >> (at % 64)) & 1) as u32) << i
            });
            assert_eq!(bits(&h, *start, *width), by_bit, "block at {start}");
        }
    }
}

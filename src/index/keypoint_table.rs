//! `keypoint_table.col`: an inverted index over a segment's keypoint
//! descriptors, so a query's keypoints find the records sharing them without
//! comparing them with every record (the exhaustive shortlist of
//! `search::fusion` stops at `KEYPOINT_SCAN_LIMIT` records).
//!
//! Each 256-bit descriptor gives [`BLOCKS`] keys of 16 of its bits, no bit
//! in two keys. Per key, a table lists the rows of every stored keypoint
//! under its key's value: multi-index hashing (Norouzi, Punjani & Fleet,
//! CVPR 2012) probed at radius 0. A query keypoint votes for the rows
//! listed under each of its keys; a copy shares dozens of keypoints with
//! the query, each close enough that some key is often unchanged. At
//! Hamming distance d a key survives with probability ≈ (1 − d/256)^16, so
//! a pair at 30 bits collides in at least one of 8 keys 69 % of the time.
//! The search (`search::fusion`) ranks rows by votes and computes the exact
//! tentative matches of the best few only.
//!
//! Which bits: the descriptor's tests are far from balanced (on
//! ../shared/corpus/db, 133 of 256 bits are set in under 30 % or over 70 %
//! of keypoints) and correlated, so 16 consecutive bits carry 7–9 bits of
//! collision (Rényi-2) entropy and a lookup meets hundreds of times the
//! mean bucket. The writer therefore picks each key's bits greedily on a
//! sample of the segment's own descriptors, the keys taking turns, each
//! adding the unused bit that most lowers its collision rate (Rényi
//! entropy 10.4–12.3 bits there); the bits are stored in the header, so
//! each segment is read with its own choice. Buckets are keyed by the
//! first `b` bits chosen, `b` = ⌊log2 entries⌋ up to 16, so a small
//! segment's table is small.
//!
//! Payload, u32 little-endian words:
//! ```text
//! 0 rows (= the segment's records)   2 bucket bits b
//! 1 entries E (keypoints listed)     3 keys m (= BLOCKS)
//! 4..36 the keys' bits: byte 16·j + i of these words (little-endian) is
//!       the descriptor bit that is bit 15 − i of key j
//! then per key j:  offsets[2^b + 1] (0, ascending, last = E), rows[E]
//! ```
//! Entries are the stored keypoints of every row that can be live (not
//! removed, not failed), so E ≤ 128 · rows.

use std::path::Path;

use super::column::{Column, ColumnWriter, Count};
use super::flags;
use super::segment::FileRecord;
use crate::descriptors::keypoints::{KeyPoint, INDEX_KEYPOINTS};
use crate::descriptors::IndexKeypoints;
use crate::error::IndexError;

/// File name in a segment folder.
pub const FILE: &str = "keypoint_table.col";
const NAME: &str = "keypoint_table";
/// Keys of 16 bits per descriptor that get a table: 128 of the 256 bits,
/// 4 bytes per stored keypoint and key.
pub const BLOCKS: usize = 8;
const WIDTH: u32 = 16;
const HEADER_WORDS: usize = 4 + BLOCKS * WIDTH as usize / 4;
/// Slots filled in memory at once while writing (128 MiB): a key of a
/// larger segment is written in several passes over its keypoints.
const PASS_ENTRIES: usize = 32 << 20;
/// Descriptors sampled (evenly) to choose the keys' bits.
const FIT_SAMPLE: usize = 2048;

/// The bits of every key: `bits[j][i]` is bit 15 − i of key j.
pub type KeyBits = [[u8; WIDTH as usize]; BLOCKS];

#[inline]
fn bit(k: &KeyPoint, b: u8) -> u32 {
    (k.desc[b as usize / 32] >> (b % 32)) & 1
}

/// Key `j` of a descriptor.
#[inline]
pub fn key(bits: &KeyBits, k: &KeyPoint, j: usize) -> u32 {
    bits[j].iter().fold(0, |v, &b| v << 1 | bit(k, b))
}

/// Chooses the keys' bits on `sample`: the keys take turns, each adding the
/// unused bit that leaves the fewest colliding pairs among the sample's
/// keys (the most collision entropy); ties go to the lower bit.
pub fn choose_bits(sample: &[KeyPoint]) -> KeyBits {
    let mut bits: KeyBits = [[0; WIDTH as usize]; BLOCKS];
    let mut used = [false; 256];
    let mut keys = vec![[0u32; BLOCKS]; sample.len()];
    let mut count = vec![0u32; 1 << WIDTH];
    for round in 0..WIDTH as usize {
        for (j, chosen) in bits.iter_mut().enumerate() {
            let mut best = (u64::MAX, 0u8);
            for b in 0..=255u8 {
                if used[b as usize] {
                    continue;
                }
                // Colliding pairs: Σ count², counted as the keys arrive.
                let mut pairs = 0u64;
                for (k, d) in keys.iter().zip(sample) {
                    let c = &mut count[(k[j] << 1 | bit(d, b)) as usize];
                    pairs += u64::from(*c);
                    *c += 1;
                }
                for k in &keys {
                    count[(k[j] << 1) as usize] = 0;
                    count[(k[j] << 1 | 1) as usize] = 0;
                }
                best = best.min((pairs, b));
            }
            let b = best.1;
            used[b as usize] = true;
            chosen[round] = b;
            for (k, d) in keys.iter_mut().zip(sample) {
                k[j] = k[j] << 1 | bit(d, b);
            }
        }
    }
    bits
}

/// Whether a segment of `rows` records always gets a table (its entries
/// fit the u32 offsets), so a missing one is worth writing.
pub fn fits(rows: usize) -> bool {
    rows.saturating_mul(INDEX_KEYPOINTS) <= u32::MAX as usize
}

/// Bucket bits for `entries` entries.
fn bucket_bits(entries: usize) -> u32 {
    entries.max(1).ilog2().min(WIDTH)
}

/// Most words a table over `rows` rows can have, the cap checked before the
/// file is mapped.
pub fn max_words(rows: u64) -> u64 {
    let e = rows.saturating_mul(INDEX_KEYPOINTS as u64);
    let buckets = 1u64 << bucket_bits(e.min(usize::MAX as u64) as usize);
    let per = e.saturating_add(buckets + 1);
    (HEADER_WORDS as u64).saturating_add((BLOCKS as u64).saturating_mul(per))
}

/// Builds the table over a segment's keypoints and writes it to `dir`,
/// key by key and, within a key, a range of buckets at a time
/// (memory: at most 128 MiB of slots and one key's offsets).
pub fn write(
    dir: &Path,
    files: &[FileRecord],
    keypoints: &[IndexKeypoints],
) -> Result<(), IndexError> {
    let searchable = |r: usize| files[r].flags & (flags::TOMBSTONE | flags::FAILED) == 0;
    let rows: Vec<u32> = (0..keypoints.len() as u32)
        .filter(|&r| searchable(r as usize))
        .collect();
    let entries: usize = rows
        .iter()
        .map(|&r| keypoints[r as usize].points().len())
        .sum();
    // Offsets are u32: a segment of over 33 M records (only `compact` of a
    // larger index makes one; merges stop at 5 M) gets no table, and is
    // searched as a segment of an earlier build.
    if entries > u32::MAX as usize {
        return Ok(());
    }
    let b = bucket_bits(entries);
    let buckets = 1usize << b;
    let all_points = || rows.iter().flat_map(|&r| keypoints[r as usize].points());
    let step = entries.div_ceil(FIT_SAMPLE).max(1);
    let sample: Vec<KeyPoint> = all_points().step_by(step).copied().collect();
    let bits = choose_bits(&sample);
    let mut w = ColumnWriter::create(&dir.join(FILE), NAME, 4)?;
    let head = [keypoints.len() as u32, entries as u32, b, BLOCKS as u32];
    w.write(bytemuck::cast_slice(&head))?;
    w.write(bits.as_flattened())?;
    let mut offsets = vec![0u32; buckets + 1];
    let mut slots: Vec<u32> = Vec::with_capacity(entries.min(PASS_ENTRIES));
    for j in 0..BLOCKS {
        let bucket = |k: &KeyPoint| (key(&bits, k, j) >> (WIDTH - b)) as usize;
        let all = || {
            rows.iter().flat_map(|&r| {
                let points = keypoints[r as usize].points();
                points.iter().map(move |k| (bucket(k), r))
            })
        };
        offsets.iter_mut().for_each(|o| *o = 0);
        for (k, _) in all() {
            offsets[k + 1] += 1;
        }
        for i in 0..buckets {
            offsets[i + 1] += offsets[i];
        }
        w.write(bytemuck::cast_slice(&offsets))?;
        // Buckets lo..hi per pass, as many as fit PASS_ENTRIES (at least one).
        let mut lo = 0;
        while lo < buckets {
            let start = offsets[lo] as usize;
            let mut hi = lo + 1;
            while hi < buckets && offsets[hi + 1] as usize - start <= PASS_ENTRIES {
                hi += 1;
            }
            slots.clear();
            slots.resize(offsets[hi] as usize - start, 0);
            let mut next: Vec<u32> = offsets[lo..hi].to_vec();
            for (k, r) in all() {
                if (lo..hi).contains(&k) {
                    let at = &mut next[k - lo];
                    slots[*at as usize - start] = r;
                    *at += 1;
                }
            }
            w.write(bytemuck::cast_slice(&slots))?;
            lo = hi;
        }
    }
    w.finish()
}

/// A validated table over a mapped `keypoint_table.col`.
pub struct KeypointTable {
    col: Column,
    /// The keys' bits (from the header).
    pub key_bits: KeyBits,
    /// Bucket bits: key value `v` is in bucket `v >> (16 − bits)`.
    pub bits: u32,
    /// Entries per key (stored keypoints).
    pub entries: usize,
    rows: usize,
}

impl KeypointTable {
    /// The segment folder's table, if it has one. The table is mapped and
    /// its shape, every offset and every entry checked before a search
    /// follows them.
    pub fn find(dir: &Path, rows: usize) -> Result<Option<KeypointTable>, IndexError> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let col = Column::open(&path, NAME, 4, Count::AtMost(max_words(rows as u64)))?;
        let bad = |why: String| IndexError::corrupt(&path, why);
        let w: &[u32] = col.cast();
        if w.len() < HEADER_WORDS {
            return Err(bad(format!("{} words, shorter than its header", w.len())));
        }
        let (n, e, b, m) = (w[0] as usize, w[1] as usize, w[2], w[3] as usize);
        if n != rows {
            return Err(bad(format!("built over {n} rows, the segment has {rows}")));
        }
        if e > INDEX_KEYPOINTS * rows || b != bucket_bits(e) || m != BLOCKS {
            return Err(bad(format!(
                "header (entries {e}, bucket bits {b}, keys {m}) does not fit {rows} rows"
            )));
        }
        let mut key_bits: KeyBits = [[0; WIDTH as usize]; BLOCKS];
        let stored: &[u8] = bytemuck::cast_slice(&w[4..HEADER_WORDS]);
        key_bits.as_flattened_mut().copy_from_slice(stored);
        let mut seen = [false; 256];
        for &x in key_bits.as_flattened() {
            if std::mem::replace(&mut seen[x as usize], true) {
                return Err(bad(format!("descriptor bit {x} in two keys")));
            }
        }
        let per = (1usize << b) + 1 + e;
        if w.len() != HEADER_WORDS + BLOCKS * per {
            return Err(bad(format!(
                "{} words, expected {} for {e} entries",
                w.len(),
                HEADER_WORDS + BLOCKS * per
            )));
        }
        let tables = &w[HEADER_WORDS..];
        super::mih::check_tables(tables, b, e, rows, u32::MAX, "key").map_err(bad)?;
        Ok(Some(KeypointTable {
            col,
            key_bits,
            bits: b,
            entries: e,
            rows,
        }))
    }

    /// Votes of `query`'s keypoints for the rows sharing a key value with
    /// them, added into `votes` (one counter per row, saturating). A bucket
    /// holding more than `max_bucket` entries (a value most descriptors share,
    /// as of flat texture) carries no information and is skipped.
    pub fn vote(&self, query: &[KeyPoint], max_bucket: usize, votes: &mut [u16]) {
        let w: &[u32] = self.col.cast();
        let buckets = 1usize << self.bits;
        let per = buckets + 1 + self.entries;
        for j in 0..BLOCKS {
            let base = HEADER_WORDS + j * per;
            let offsets = &w[base..base + buckets + 1];
            let rows = &w[base + buckets + 1..base + per];
            for k in query {
                let at = (key(&self.key_bits, k, j) >> (WIDTH - self.bits)) as usize;
                let (lo, hi) = (offsets[at] as usize, offsets[at + 1] as usize);
                if hi - lo > max_bucket {
                    continue;
                }
                for &r in &rows[lo..hi] {
                    let v = &mut votes[r as usize];
                    *v = v.saturating_add(1);
                }
            }
        }
    }

    /// Entries of an average bucket (per key).
    pub fn mean_bucket(&self) -> f64 {
        self.entries as f64 / (1u64 << self.bits) as f64
    }

    /// Rows the table was built over (the segment's records).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the mapped table.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.col.cast::<u32>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::flags;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 32) as u32
        }
        /// A descriptor whose bits 0..64 are nearly always set (unbalanced
        /// tests) and the rest random.
        fn point(&mut self) -> KeyPoint {
            let mut desc: [u32; 8] = std::array::from_fn(|_| self.next());
            desc[0] |= !(self.next() & self.next() & self.next());
            desc[1] |= !(self.next() & self.next() & self.next());
            KeyPoint { desc, x: 0, y: 0 }
        }
    }

    fn flip(k: &KeyPoint, rng: &mut Rng, n: u32) -> KeyPoint {
        let mut k = *k;
        for _ in 0..n {
            let b = rng.next() % 256;
            k.desc[b as usize / 32] ^= 1 << (b % 32);
        }
        k
    }

    fn record(flags_: u32) -> FileRecord {
        FileRecord {
            flags: flags_,
            ..bytemuck::Zeroable::zeroed()
        }
    }

    #[test]
    fn keys_take_balanced_bits_once_each() {
        let mut rng = Rng(7);
        let sample: Vec<KeyPoint> = (0..2048).map(|_| rng.point()).collect();
        let bits = choose_bits(&sample);
        let mut seen = [false; 256];
        for &b in bits.as_flattened() {
            assert!(
                !std::mem::replace(&mut seen[b as usize], true),
                "bit {b} twice"
            );
        }
        // 128 bits are chosen and 192 are balanced: no nearly constant one.
        assert!(bits.as_flattened().iter().all(|&b| b >= 64), "{bits:?}");
    }

    #[test]
    fn a_copy_gets_the_votes_and_a_removed_row_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(11);
        let rows: Vec<IndexKeypoints> = (0..300)
            .map(|_| {
                let p: Vec<KeyPoint> = (0..INDEX_KEYPOINTS).map(|_| rng.point()).collect();
                IndexKeypoints::from_points(&p)
            })
            .collect();
        let mut files: Vec<FileRecord> = (0..300).map(|_| record(0)).collect();
        files[42].flags = flags::TOMBSTONE;
        write(dir.path(), &files, &rows).unwrap();
        let t = KeypointTable::find(dir.path(), 300).unwrap().unwrap();
        assert_eq!(t.entries, 299 * INDEX_KEYPOINTS);
        // A third of row 7's keypoints, 20 bits off each, among unrelated ones.
        let mut q: Vec<KeyPoint> = rows[7].points()[..40]
            .iter()
            .map(|k| flip(k, &mut rng, 20))
            .collect();
        q.extend((0..88).map(|_| rng.point()));
        let mut votes = vec![0u16; 300];
        t.vote(&q, usize::MAX, &mut votes);
        let best = (0..300).max_by_key(|&r| votes[r]).unwrap();
        assert_eq!(best, 7, "votes {:?}", &votes[..10]);
        let mut others = votes.clone();
        others[7] = 0;
        assert!(votes[7] >= 4 * others.iter().max().unwrap(), "{votes:?}");
        // The removed row is not listed, even for its own keypoints.
        let mut votes = vec![0u16; 300];
        t.vote(rows[42].points(), usize::MAX, &mut votes);
        assert_eq!(votes[42], 0);
        // Empty buckets allowed only: every bucket over 0 entries is skipped.
        let mut votes = vec![0u16; 300];
        t.vote(&q, 0, &mut votes);
        assert!(votes.iter().all(|&v| v == 0));
    }

    #[test]
    fn a_damaged_table_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(3);
        let rows: Vec<IndexKeypoints> = (0..20)
            .map(|_| {
                let p: Vec<KeyPoint> = (0..10).map(|_| rng.point()).collect();
                IndexKeypoints::from_points(&p)
            })
            .collect();
        let files: Vec<FileRecord> = (0..20).map(|_| record(0)).collect();
        write(dir.path(), &files, &rows).unwrap();
        assert!(KeypointTable::find(dir.path(), 20).unwrap().is_some());
        let err = KeypointTable::find(dir.path(), 21)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("built over 20 rows"), "{err}");
        // Rewritten with a row out of range and a valid checksum: caught by
        // the entry check, not by the checksum.
        let path = dir.path().join(FILE);
        let col = Column::open(&path, NAME, 4, Count::AtMost(max_words(20))).unwrap();
        let mut words: Vec<u32> = col.cast::<u32>().to_vec();
        drop(col);
        let last = words.len() - 1;
        words[last] = 20;
        super::super::column::write(&path, NAME, 4, bytemuck::cast_slice(&words)).unwrap();
        let err = KeypointTable::find(dir.path(), 20)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("a row outside the segment"), "{err}");
        // A bit in two keys.
        words[last] = 0;
        words[5] = words[4];
        super::super::column::write(&path, NAME, 4, bytemuck::cast_slice(&words)).unwrap();
        let err = KeypointTable::find(dir.path(), 20)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("in two keys"), "{err}");
    }
}

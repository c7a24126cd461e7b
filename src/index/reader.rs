//! Opening an index: manifest, then every listed segment mapped and
//! validated, then the live view (latest record per path, minus removed and
//! undecodable files).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::flags;
use super::manifest::{Manifest, Profile};
use super::refetch::Refetch;
use super::segment::Segment;
use crate::descriptors::IndexKeypoints;
use crate::error::IndexError;

/// Address of one record: segment position in the manifest, row in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordRef {
    /// Position of the segment in the manifest's list.
    pub seg: u32,
    /// Row within the segment.
    pub row: u32,
}

/// An open index: its manifest and memory-mapped segments, validated, with
/// which records are searchable. Read-only; `IndexWriter` appends.
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    segments: Vec<Segment>,
    /// Per segment, per row: searchable (latest for its path, decoded, not removed).
    live: Vec<Vec<bool>>,
    /// A compact index's keypoints, read back from the training files.
    refetch: Option<Refetch>,
}

impl Index {
    /// Opens the committed index in `dir`: loads the manifest, maps and validates
    /// every segment it lists, and works out which records are live.
    ///
    /// A writer may commit a merge meanwhile and remove the segments the
    /// manifest just read names: when opening them fails and the manifest
    /// has moved on to a new generation, the open starts over from the new
    /// one (a few times), so a reader never fails on a consistent index.
    /// Segments once mapped stay readable after their files are unlinked.
    pub fn open(dir: &Path) -> Result<Index, IndexError> {
        let mut tries = 0;
        let (manifest, segments) = loop {
            let manifest = Manifest::load(dir)?;
            let opened = manifest
                .segments
                .iter()
                .map(|s| Segment::open(dir, s, manifest.profile))
                .collect::<Result<Vec<_>, _>>();
            match opened {
                Ok(segments) => break (manifest, segments),
                Err(e) => {
                    tries += 1;
                    let moved =
                        Manifest::load(dir).is_ok_and(|m| m.generation != manifest.generation);
                    if !moved || tries >= 16 {
                        return Err(e);
                    }
                }
            }
        };
        let latest = latest_records(&segments);
        let mut live: Vec<Vec<bool>> = segments.iter().map(|s| vec![false; s.len()]).collect();
        for r in latest.values() {
            let f = segments[r.seg as usize].files()[r.row as usize].flags;
            live[r.seg as usize][r.row as usize] = f & (flags::TOMBSTONE | flags::FAILED) == 0;
        }
        let refetch = (manifest.profile == Profile::Compact && manifest.keypoints)
            .then(|| Refetch::new(manifest.decode.as_deref()));
        Ok(Index {
            dir: dir.to_path_buf(),
            manifest,
            segments,
            live,
            refetch,
        })
    }

    /// The index folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The committed manifest this reader opened.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The segments, in commit order (`RecordRef::seg` indexes this).
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The manifest and segments, for the writer that continues this index.
    pub(crate) fn into_parts(self) -> (Manifest, Vec<Segment>) {
        (self.manifest, self.segments)
    }

    /// Whether record `r` is searchable.
    pub fn is_live(&self, r: RecordRef) -> bool {
        self.live[r.seg as usize][r.row as usize]
    }

    /// Per row of segment `seg`: whether the record is live (searchable).
    pub fn live_mask(&self, seg: usize) -> &[bool] {
        &self.live[seg]
    }

    /// Whether any segment has keypoints to verify against (none in an
    /// index built with `--no-keypoints`; a compact index reads them from
    /// the training files).
    pub fn has_keypoints(&self) -> bool {
        self.refetch.is_some() || self.segments.iter().any(|s| s.keypoints().is_some())
    }

    /// The keypoints of record `r`: stored, or in a compact index extracted
    /// again from its training file. None: it has none, or its file could
    /// not be read back (see [`Index::unverifiable`]).
    pub fn keypoints(&self, r: RecordRef) -> Option<std::borrow::Cow<'_, IndexKeypoints>> {
        let seg = &self.segments[r.seg as usize];
        if let Some(k) = seg.keypoints() {
            return Some(std::borrow::Cow::Borrowed(&k[r.row as usize]));
        }
        let fetched = self.refetch.as_ref()?.keypoints(seg, r);
        fetched
            .as_ref()
            .as_ref()
            .ok()
            .map(|k| std::borrow::Cow::Owned(*k))
    }

    /// What each image keeps (`index --profile`).
    pub fn profile(&self) -> Profile {
        self.manifest.profile
    }

    /// In a compact index: how many training files could not be read back
    /// to verify a candidate, and (path, reason) for the first of them.
    pub fn unverifiable(&self) -> (usize, Vec<(String, String)>) {
        self.refetch.as_ref().map_or((0, vec![]), |r| r.failures())
    }

    /// The model that made this index's embeddings ("name@fingerprint"),
    /// `None` for a hash-only index.
    pub fn embedding_model(&self) -> Option<&str> {
        self.manifest.embedding.as_deref()
    }

    /// Number of live records: what searches see.
    pub fn live_count(&self) -> usize {
        self.live
            .iter()
            .map(|v| v.iter().filter(|&&b| b).count())
            .sum()
    }

    /// Number of records in all segments, superseded and removed ones included.
    pub fn record_count(&self) -> usize {
        self.segments.iter().map(|s| s.len()).sum()
    }

    /// The file path of record `r`, as stored.
    pub fn path(&self, r: RecordRef) -> PathBuf {
        bytes_to_path(self.segments[r.seg as usize].path_bytes(r.row as usize))
    }

    /// Latest record of every path (tombstones and failures included).
    pub fn latest(&self) -> HashMap<&[u8], RecordRef> {
        latest_records(&self.segments)
    }

    /// A digest of what the index holds, image by image: for the latest
    /// record of every path, in index order (segment order, then row), its
    /// flags (exact duplicate included), size, content hash and every
    /// descriptor (PDQ, quality, pHash, trimmed PDQ, keypoints, embedding;
    /// absent columns as their empty value; a compact index's codes are
    /// left out, as derived data). Paths, path offsets and mtimes
    /// are left out, and so are removed files and the records of tar shards
    /// themselves (bookkeeping whose place depends on batch boundaries). So
    /// the digest does not depend on how the work was split into segments
    /// or runs, nor on where the files lay: an index built in one run from
    /// shards s0..s9 and the `merge` of one part per shard, in that order,
    /// have the same digest; so do an index before and after `compact`.
    ///
    /// 256 bits: xxh3-128 of the same stream under two seeds, to tell
    /// builds apart, not to resist a forger (it is not cryptographic).
    pub fn content_digest(&self) -> [u8; 32] {
        let mut rows: Vec<RecordRef> = self
            .latest()
            .into_values()
            .filter(|r| {
                let f = self.segments[r.seg as usize].files()[r.row as usize].flags;
                f & (flags::TOMBSTONE | flags::SHARD) == 0
            })
            .collect();
        rows.sort_unstable();
        let mut h = [
            xxhash_rust::xxh3::Xxh3::with_seed(0),
            xxhash_rust::xxh3::Xxh3::with_seed(1),
        ];
        let mut update = |bytes: &[u8]| h.iter_mut().for_each(|h| h.update(bytes));
        update(b"lookalike content digest 1\0");
        for r in rows {
            let s = &self.segments[r.seg as usize];
            let f = s.files()[r.row as usize];
            update(&f.flags.to_le_bytes());
            update(&f.size.to_le_bytes());
            update(&f.content_hash().to_le_bytes());
            let row = r.row as usize;
            update(bytemuck::bytes_of(&s.pdq()[row]));
            update(&[s.quality()[row]]);
            update(&s.phash()[row].to_le_bytes());
            update(bytemuck::bytes_of(&s.pdq_trim()[row]));
            // Stored columns only: a compact index's embeddings live in its
            // codes, derived data that every merge refits.
            let kp = s.keypoints().map(|k| k[row]).unwrap_or_default();
            let emb = s.embeddings().map(|e| e[row]).unwrap_or_default();
            update(bytemuck::bytes_of(&kp));
            update(bytemuck::bytes_of(&emb));
        }
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&h[0].digest128().to_le_bytes());
        out[16..].copy_from_slice(&h[1].digest128().to_le_bytes());
        out
    }

    /// [`Index::content_digest`] as 64 lowercase hex digits (what `info`
    /// prints).
    pub fn content_digest_hex(&self) -> String {
        self.content_digest()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Latest record per path over `segments` (later ones supersede earlier).
pub(crate) fn latest_records(segments: &[Segment]) -> HashMap<&[u8], RecordRef> {
    let mut latest = HashMap::with_capacity(segments.iter().map(|s| s.len()).sum());
    for (si, s) in segments.iter().enumerate() {
        for row in 0..s.len() {
            latest.insert(
                s.path_bytes(row),
                RecordRef {
                    seg: si as u32,
                    row: row as u32,
                },
            );
        }
    }
    latest
}

pub use crate::ingest::names::{bytes_to_path, path_to_bytes};

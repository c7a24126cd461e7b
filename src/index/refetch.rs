//! The keypoints of a compact index, extracted again from the training
//! files.
//!
//! A compact index (`index --profile compact`) stores no keypoints: at
//! 4.6 KB an image they would be most of it. When `check` verifies a
//! candidate, its training file is read again (a file, or a member of a tar
//! shard, `ingest::source::read`), checked to hold the very bytes that were
//! indexed (size and xxh3-128 from files.col), decoded as the index records
//! (`decode` in the manifest) and its keypoints extracted as `index` does
//! (`keypoints::index_keypoints`): the keypoints a full index would have
//! stored, so the same verification. A file that is gone, changed or
//! unreadable leaves its candidate unverified (scored on hashes and
//! embedding alone) and is listed by [`Refetch::failures`] for the warning
//! `check` prints.
//!
//! Extractions are kept in a small LRU cache (a batch of queries often
//! verifies the same training images; 4.6 KB an entry), failures included,
//! so a missing file costs one attempt per cache lifetime.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::reader::RecordRef;
use super::segment::Segment;
use crate::descriptors::keypoints::index_keypoints;
use crate::descriptors::IndexKeypoints;
use crate::ingest::names::bytes_to_path;
use crate::ingest::{decode, source, DecodeMode, FailureKind, Limits};

/// Extractions kept (about 19 MB).
const CACHED: usize = 4096;
/// Failed files named at most (all are counted).
const FAILURES_NAMED: usize = 1000;

/// One record's keypoints, or why they could not be extracted.
pub type Fetched = Result<IndexKeypoints, String>;

/// Re-extracts and caches the keypoints of a compact index's records.
pub struct Refetch {
    mode: DecodeMode,
    limits: Limits,
    cache: Mutex<LruCache<RecordRef, Arc<Fetched>>>,
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    /// Distinct files that failed.
    count: usize,
    /// Path → reason, for the first [`FAILURES_NAMED`].
    named: BTreeMap<String, String>,
}

impl Refetch {
    /// For an index whose images were decoded as `decode` records
    /// ("fast:512", "exact"; None: the default).
    pub fn new(decode: Option<&str>) -> Refetch {
        let (mode, side) = decode
            .and_then(DecodeMode::parse_label)
            .unwrap_or((DecodeMode::Fast, decode::FAST_MIN_SIDE));
        Refetch {
            mode,
            // The bytes are checked to be those once indexed, so no limit
            // of this run applies (that run may have raised them); reads
            // stop at the recorded size.
            limits: Limits {
                max_bytes: 0,
                max_pixels: u64::MAX,
                fast_min_side: side,
            },
            cache: Mutex::new(LruCache::new(NonZeroUsize::new(CACHED).unwrap())),
            failures: Mutex::default(),
        }
    }

    /// The keypoints of record `r` (row `r.row` of `seg`), extracted from
    /// its training file or taken from the cache.
    pub fn keypoints(&self, seg: &Segment, r: RecordRef) -> Arc<Fetched> {
        if let Some(hit) = self.cache.lock().ok().and_then(|mut c| c.get(&r).cloned()) {
            return hit;
        }
        let path = bytes_to_path(seg.path_bytes(r.row as usize));
        let fetched = Arc::new(self.extract(seg, r.row as usize, &path));
        if let Err(why) = &*fetched {
            if let Ok(mut f) = self.failures.lock() {
                let name = String::from_utf8_lossy(seg.path_bytes(r.row as usize)).into_owned();
                if !f.named.contains_key(&name) {
                    f.count += 1;
                    if f.named.len() < FAILURES_NAMED {
                        f.named.insert(name, why.clone());
                    }
                }
            }
        }
        if let Ok(mut c) = self.cache.lock() {
            c.put(r, fetched.clone());
        }
        fetched
    }

    fn extract(&self, seg: &Segment, row: usize, path: &std::path::Path) -> Fetched {
        let rec = &seg.files()[row];
        let limits = Limits {
            max_bytes: rec.size,
            ..self.limits
        };
        let bytes = source::read(path, &limits).map_err(|f| match f.kind {
            FailureKind::Limit => "changed since it was indexed (larger)".to_string(),
            _ => f.reason,
        })?;
        let hash = xxhash_rust::xxh3::xxh3_128(&bytes);
        if bytes.len() as u64 != rec.size || hash != rec.content_hash() {
            return Err("changed since it was indexed".into());
        }
        let img = decode::decode(&bytes, self.mode, &limits).map_err(|f| f.reason)?;
        Ok(index_keypoints(&img.rgb))
    }

    /// Distinct training files that could not be read back, and the first
    /// `FAILURES_NAMED` of them with the reason, by path.
    pub fn failures(&self) -> (usize, Vec<(String, String)>) {
        match self.failures.lock() {
            Ok(f) => (f.count, f.named.clone().into_iter().collect()),
            Err(_) => (0, vec![]),
        }
    }
}

//! Appending to an index under an exclusive lock. Records gather in memory
//! and are committed as a new segment every `flush_records` records or
//! `flush_interval`, so a crash loses at most the work since the last commit
//! and a rerun resumes from there (committed files are unchanged → skipped).

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::flags;
use super::manifest::{self, sync_dir, Manifest, Profile, SegmentInfo};
use super::merge::{self, MergePolicy, StopAt};
use super::reader::{latest_records, Index};
use super::segment::{FileRecord, Segment, SegmentData};
use crate::descriptors::Descriptors;
use crate::error::IndexError;

/// The one writer of an index: gathers records and commits them as segments,
/// holding the index's LOCK file for its lifetime.
pub struct IndexWriter {
    dir: PathBuf,
    manifest: Manifest,
    pending: SegmentData,
    last_commit: Instant,
    /// Commit once this many records are pending (default 50 000).
    pub flush_records: usize,
    /// Commit pending records once this long has passed since the last commit
    /// (default 30 s).
    pub flush_interval: Duration,
    /// Latest record per path (owned keys: pending records are added too).
    by_path: HashMap<Vec<u8>, FileRecord>,
    /// Where the descriptors of each content hash are, for exact duplicates:
    /// (segment, row); segment == segments.len() is the pending one. Keeps
    /// 24 bytes per file in memory, not the descriptors themselves.
    by_content: HashMap<u128, (u32, u32)>,
    /// Committed segments, memory-mapped (for `by_content`).
    segments: Vec<Segment>,
    /// Manifest fields changed since the last commit (the decode setting).
    manifest_changed: bool,
    _lock: File,
}

impl IndexWriter {
    /// Opens (creating if needed) the index at `dir` for appending. Fails if
    /// another process holds it; removes debris of interrupted commits.
    pub fn open(dir: &Path) -> Result<IndexWriter, IndexError> {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| IndexError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(IndexError::io(
                    &lock_path,
                    std::io::Error::other("another lookalike process is writing this index"),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(IndexError::io(&lock_path, e)),
        }
        let (manifest, by_path, by_content, segments) = if dir.join(manifest::FILE).exists() {
            let (manifest, segments) = Index::open(dir)?.into_parts();
            let (by_path, by_content) = lookups(&segments);
            (manifest, by_path, by_content, segments)
        } else {
            let entries: Vec<_> = std::fs::read_dir(dir)
                .map_err(|e| IndexError::io(dir, e))?
                .flatten()
                .collect();
            let foreign = entries.iter().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                !(n == "LOCK"
                    || n.starts_with("seg-")
                    || n.starts_with(manifest::FILE)
                    || n.ends_with(".tsv"))
            });
            if foreign {
                return Err(IndexError::Foreign {
                    path: dir.to_path_buf(),
                    why: "the folder has other files and no MANIFEST.json; refusing to write an index into it".into(),
                });
            }
            (
                Manifest::empty(),
                HashMap::new(),
                HashMap::new(),
                Vec::new(),
            )
        };
        remove_debris(dir, &manifest)?;
        Ok(IndexWriter {
            dir: dir.to_path_buf(),
            manifest,
            pending: SegmentData::default(),
            last_commit: Instant::now(),
            flush_records: 50_000,
            flush_interval: Duration::from_secs(30),
            by_path,
            by_content,
            segments,
            manifest_changed: false,
            _lock: lock,
        })
    }

    /// The index folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The latest record for `path` (committed or pending), to skip unchanged
    /// files.
    pub fn existing(&self, path: &[u8]) -> Option<&FileRecord> {
        self.by_path.get(path)
    }

    /// Descriptors of a live record with these file bytes, so an identical file
    /// is recorded without decoding it again.
    pub fn by_content(&self, h: u128) -> Option<Descriptors> {
        let &(seg, row) = self.by_content.get(&h)?;
        Some(match self.segments.get(seg as usize) {
            Some(s) => s.descriptors(row as usize),
            None => self.pending.descriptors(row as usize),
        })
    }

    /// Paths whose latest record is a live (non-tombstone) entry.
    pub fn known_paths(&self) -> impl Iterator<Item = &[u8]> {
        self.by_path
            .iter()
            .filter(|(_, r)| r.flags & flags::TOMBSTONE == 0)
            .map(|(p, _)| p.as_slice())
    }

    /// Adds one record to the pending segment (a tombstone or failure too, by
    /// `flags_`); live records become findable by content hash.
    pub fn add(
        &mut self,
        path: &[u8],
        size: u64,
        mtime_ns: i64,
        content_hash: u128,
        flags_: u32,
        d: &Descriptors,
    ) {
        self.pending
            .push(path, size, mtime_ns, content_hash, flags_, d);
        let rec = *self.pending.files.last().unwrap();
        self.by_path.insert(path.to_vec(), rec);
        if flags_ & (flags::TOMBSTONE | flags::FAILED) == 0 {
            let at = (self.segments.len() as u32, self.pending.len() as u32 - 1);
            self.by_content.entry(content_hash).or_insert(at);
        }
    }

    /// The decode setting recorded in the index (None for a new index).
    pub fn decode_label(&self) -> Option<&str> {
        self.manifest.decode.as_deref()
    }

    /// Records the decode setting in the manifest at the next commit.
    pub fn set_decode_label(&mut self, label: String) {
        if self.manifest.decode.as_deref() != Some(label.as_str()) {
            self.manifest.decode = Some(label);
            self.manifest_changed = true;
        }
    }

    /// The embedding model recorded in the index (None: hash-only so far).
    pub fn embedding_label(&self) -> Option<&str> {
        self.manifest.embedding.as_deref()
    }

    /// Records the embedding model (None: hash-only) at the next commit.
    pub fn set_embedding_label(&mut self, label: Option<String>) {
        if self.manifest.embedding != label {
            self.manifest.embedding = label;
            self.manifest_changed = true;
        }
    }

    /// Records that this run computes embeddings in `precision` ("f32",
    /// "int8", "f16") at the next commit (`Manifest::embedding_precisions`;
    /// an index with embeddings and no list was made in f32).
    pub fn note_embedding_precision(&mut self, precision: &str) {
        let had_embeddings = self.committed_records() > 0 && self.manifest.embedding.is_some();
        let list = &mut self.manifest.embedding_precisions;
        if list.is_empty() && had_embeddings && precision != "f32" {
            list.push("f32".into());
        }
        if !list.iter().any(|p| p == precision) {
            list.push(precision.to_string());
            self.manifest_changed = true;
        }
    }

    /// Whether the index keeps keypoints (false: built with `--no-keypoints`).
    pub fn keypoints(&self) -> bool {
        self.manifest.keypoints
    }

    /// Records whether the index keeps keypoints, at the next commit.
    pub fn set_keypoints(&mut self, keep: bool) {
        if self.manifest.keypoints != keep {
            self.manifest.keypoints = keep;
            self.manifest_changed = true;
        }
    }

    /// What each image keeps (`index --profile`).
    pub fn profile(&self) -> Profile {
        self.manifest.profile
    }

    /// Records the profile, at the next commit. Only before the first
    /// record: an index is one profile throughout (`apply_settings`).
    pub fn set_profile(&mut self, p: Profile) {
        if self.manifest.profile != p {
            self.manifest.profile = p;
            self.manifest_changed = true;
        }
    }

    /// Records committed so far (all segments).
    pub fn committed_records(&self) -> u64 {
        self.manifest.segments.iter().map(|s| s.records).sum()
    }

    /// Records not yet committed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Commits if enough records or time have accumulated.
    pub fn maybe_commit(&mut self) -> Result<bool, IndexError> {
        if self.pending.len() >= self.flush_records
            || (!self.pending.is_empty() && self.last_commit.elapsed() >= self.flush_interval)
        {
            self.commit()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes pending records as a new segment, then atomically replaces the
    /// manifest. Before the rename of MANIFEST.json nothing is visible; after
    /// it everything is.
    pub fn commit(&mut self) -> Result<(), IndexError> {
        if self.pending.is_empty() && self.manifest.generation > 0 && !self.manifest_changed {
            return Ok(());
        }
        let mut next = self.manifest.clone();
        if !self.pending.is_empty() {
            let id = next.segments.iter().map(|s| s.id).max().unwrap_or(0) + 1;
            let info = SegmentInfo {
                id,
                records: self.pending.len() as u64,
                path_bytes: self.pending.paths.len() as u64,
            };
            self.pending.write(&self.dir, &info, next.profile)?;
            next.segments.push(info);
        }
        let written = next.segments.last().cloned();
        next.generation += 1;
        next.writer = manifest::writer_id();
        next.commit(&self.dir)?;
        if !self.pending.is_empty() {
            // The pending rows are now this segment (same position): map it.
            let info = written.expect("a segment was written");
            self.segments
                .push(Segment::open(&self.dir, &info, next.profile)?);
        }
        self.manifest = next;
        self.pending = SegmentData::default();
        self.last_commit = Instant::now();
        self.manifest_changed = false;
        Ok(())
    }

    /// The id a new segment gets: one more than any committed one's.
    pub(crate) fn next_segment_id(&self) -> u64 {
        self.manifest
            .segments
            .iter()
            .map(|s| s.id)
            .max()
            .unwrap_or(0)
            + 1
    }

    /// Whether a live record (committed or pending) has these file bytes.
    pub(crate) fn knows_content(&self, h: u128) -> bool {
        self.by_content.contains_key(&h)
    }

    /// Commits segments already written into the index folder (by
    /// [`IndexWriter::attach`]) after the committed ones: each is opened and
    /// validated, then one manifest naming them all is committed (with any
    /// settings recorded meanwhile). Nothing may be pending. `stop` at
    /// `SegmentWritten` ends it before the commit, as a crash there would.
    pub(crate) fn commit_segments(
        &mut self,
        infos: Vec<SegmentInfo>,
        stop: Option<StopAt>,
    ) -> Result<(), IndexError> {
        debug_assert!(self.pending.is_empty());
        let opened = infos
            .iter()
            .map(|i| Segment::open(&self.dir, i, self.manifest.profile))
            .collect::<Result<Vec<_>, _>>()?;
        if stop == Some(StopAt::SegmentWritten) {
            return Err(stopped(&self.dir));
        }
        let mut next = self.manifest.clone();
        next.segments.extend(infos);
        next.generation += 1;
        next.writer = manifest::writer_id();
        next.commit(&self.dir)?;
        self.manifest = next;
        self.segments.extend(opened);
        (self.by_path, self.by_content) = lookups(&self.segments);
        self.manifest_changed = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Number of committed segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Commits what is pending, then merges segments as `policy` says (see
    /// [`merge`]) until it asks for nothing more. Returns the merges made.
    pub fn merge(&mut self, policy: &MergePolicy) -> Result<usize, IndexError> {
        self.commit()?;
        let mut merges = 0;
        loop {
            let sizes: Vec<u64> = self.segments.iter().map(|s| s.info.records).collect();
            let Some(run) = policy.plan(&sizes) else {
                return Ok(merges);
            };
            self.merge_run(run, None)?;
            merges += 1;
        }
    }

    /// Commits what is pending, then merges every segment into one (also a
    /// lone segment without the current layout's PDQ table, without a
    /// keypoint table beside its keypoints or without a whitening beside
    /// its embeddings, written by an older build).
    /// `stop` ends it early as a crash there would (tests only).
    pub fn compact(&mut self, stop: Option<StopAt>) -> Result<(), IndexError> {
        self.commit()?;
        let n = self.segments.len();
        let old_table = |s: &Segment| {
            s.mih().is_none_or(|m| m.layout != super::mih::CURRENT)
                || (s.keypoints().is_some()
                    && s.keypoint_table().is_none()
                    && super::keypoint_table::fits(s.len()))
                // Only when a fit would succeed (256 rows that vary), so a
                // segment that cannot have one is not rewritten every time.
                || (s.whitening().is_none() && s.embeddings().is_some_and(super::whitening::fits))
        };
        if n > 1 || (n == 1 && old_table(&self.segments[0])) {
            self.merge_run(0..n, stop)?;
        }
        Ok(())
    }

    /// Merges the adjacent segments `run` into one, crash-safely: the new
    /// segment is written and fsynced, then a manifest naming it instead of
    /// them is committed, and only then are their folders removed. A crash
    /// before the commit leaves the old state (the new folder is debris the
    /// next writer removes); after it, the new state (the old folders are).
    fn merge_run(&mut self, run: Range<usize>, stop: Option<StopAt>) -> Result<(), IndexError> {
        let id = self
            .manifest
            .segments
            .iter()
            .map(|s| s.id)
            .max()
            .unwrap_or(0)
            + 1;
        let profile = self.manifest.profile;
        let info = merge::write_merged(
            &self.dir,
            &self.segments[run.clone()],
            run.start == 0,
            id,
            profile,
        )?;
        // Validated like any committed segment before a manifest names it.
        let opened = info
            .as_ref()
            .map(|i| Segment::open(&self.dir, i, profile))
            .transpose()?;
        if stop == Some(StopAt::SegmentWritten) {
            return Err(stopped(&self.dir));
        }
        let mut next = self.manifest.clone();
        let old: Vec<SegmentInfo> = next.segments.splice(run.clone(), info).collect();
        next.generation += 1;
        next.writer = manifest::writer_id();
        next.commit(&self.dir)?;
        self.manifest = next;
        self.segments.splice(run, opened);
        (self.by_path, self.by_content) = lookups(&self.segments);
        if stop == Some(StopAt::ManifestCommitted) {
            return Err(stopped(&self.dir));
        }
        // Readers that mapped the old segments keep reading them (an unlinked
        // file stays readable while mapped); new readers see the new manifest.
        for s in old {
            let p = self.dir.join(s.dir_name());
            match std::fs::remove_dir_all(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(IndexError::io(&p, e))
                }
                _ => {}
            }
        }
        sync_dir(&self.dir)
    }
}

/// The error a merge stopped by [`StopAt`] returns.
pub(super) fn stopped(dir: &Path) -> IndexError {
    IndexError::io(
        dir,
        std::io::Error::other("merge stopped on purpose (simulated crash)"),
    )
}

/// The writer's lookups over committed segments: latest record per path,
/// and where a live record of each content hash is.
#[allow(clippy::type_complexity)]
fn lookups(segments: &[Segment]) -> (HashMap<Vec<u8>, FileRecord>, HashMap<u128, (u32, u32)>) {
    let mut by_path = HashMap::new();
    let mut by_content = HashMap::new();
    for (path, r) in latest_records(segments) {
        let rec = segments[r.seg as usize].files()[r.row as usize];
        by_path.insert(path.to_vec(), rec);
        if rec.flags & (flags::TOMBSTONE | flags::FAILED) == 0 {
            by_content.insert(rec.content_hash(), (r.seg, r.row));
        }
    }
    (by_path, by_content)
}

/// Segment folders not named by the manifest are leftovers of a crash between
/// writing a segment and committing the manifest: unreferenced, so removable.
fn remove_debris(dir: &Path, m: &Manifest) -> Result<(), IndexError> {
    let listed: std::collections::HashSet<String> =
        m.segments.iter().map(|s| s.dir_name()).collect();
    for e in std::fs::read_dir(dir)
        .map_err(|e| IndexError::io(dir, e))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let debris = (name.starts_with("seg-") && !listed.contains(&name))
            || name == format!("{}.tmp", manifest::FILE);
        if debris {
            let p = e.path();
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|err| IndexError::io(&p, err))?;
        }
    }
    Ok(())
}

//! Attaching the committed segments of other indexes to this one, as they
//! are (`lookalike merge`): nothing is decoded, described or rebuilt. Each
//! source segment's folder is hard-linked (or, across filesystems, copied)
//! into a fresh `seg-NNNNNN.tmp/`, published under a new id, and one
//! manifest commit at the end makes them all visible at once, so a crash
//! leaves the index as it was (the published folders are debris the next
//! writer removes).
//!
//! Segments stay as they were, in the order given: a later segment's record
//! for a path supersedes an earlier one (as for any index), each keeps its
//! own HNSW graph and PDQ table, and no merge policy runs. The one thing
//! rewritten is `files.col` of a segment with a record whose bytes equal a
//! live record before it: that record gets the exact-duplicate flag, as
//! `index` would have set it had it seen the files in one run. Only flags
//! change; the PDQ table and the graph do not depend on that flag (the table
//! skips removed and undecodable rows only), so they are linked unchanged.
//!
//! Linking is safe because committed segment files are never modified in
//! place: writers replace whole folders, and the rewritten `files.col` is a
//! new file, never the shared one.

use std::collections::HashSet;
use std::path::Path;

use super::column::ColumnWriter;
use super::manifest::{segment_dir_name, SegmentInfo};
use super::merge::StopAt;
use super::segment::{publish, FileRecord, Segment, COLUMNS};
use super::settings::{default_decode, IndexSettings};
use super::{
    flags, graph, keypoint_table, projection, whitening, Index, IndexWriter, FORMAT_VERSION,
};
use crate::error::IndexError;

/// What [`IndexWriter::attach`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttachStats {
    /// Segments attached.
    pub segments: usize,
    /// Records in them (superseded and removed ones included).
    pub records: u64,
    /// Records newly flagged as exact duplicates of an earlier record.
    pub duplicates_flagged: u64,
    /// Column files hard-linked from the sources.
    pub files_linked: u64,
    /// Column files copied (another filesystem, or linking refused) or
    /// rewritten (`files.col` with new duplicate flags).
    pub files_copied: u64,
}

/// The files of segment `seg`: the six record columns, then the optional
/// ones it was opened with (keypoints, embedding, graph, keypoint and PDQ
/// tables).
fn segment_files(seg: &Segment) -> Vec<&'static str> {
    let mut v: Vec<&str> = COLUMNS[..6].iter().map(|c| c.0).collect();
    let optional = [
        (COLUMNS[6].0, seg.keypoints().is_some()),
        (COLUMNS[7].0, seg.embeddings().is_some()),
        (graph::FILE, seg.graph().is_some()),
        (projection::FILE, seg.projection().is_some()),
        (projection::CODES_FILE, seg.projection().is_some()),
        (keypoint_table::FILE, seg.keypoint_table().is_some()),
        (whitening::FILE, seg.whitening().is_some()),
    ];
    v.extend(optional.iter().filter(|o| o.1).map(|o| o.0));
    // The PDQ table under its layout's name (an earlier layout stays as is).
    v.extend(seg.mih().map(|m| m.layout.file));
    v
}

impl IndexWriter {
    /// Attaches every committed segment of `sources`, in the order given
    /// (each source's segments oldest first), after this index's own, and
    /// commits them in one manifest. Sources must have been built with the
    /// same settings as this index (or, if it has no records yet, as the
    /// first source with records, whose settings it then takes); a source
    /// without records is attached as nothing. `stop` ends it before the
    /// commit, as a crash there would (tests only).
    pub fn attach(
        &mut self,
        sources: &[Index],
        stop: Option<StopAt>,
    ) -> Result<AttachStats, IndexError> {
        if self.pending() > 0 {
            self.commit()?;
        }
        self.check_sources(sources)?;
        // Their embeddings' precisions join this index's list.
        for src in sources.iter().filter(|s| s.record_count() > 0) {
            let theirs = &src.manifest().embedding_precisions;
            if src.manifest().embedding.is_some() && theirs.is_empty() {
                self.note_embedding_precision("f32");
            }
            for p in theirs {
                self.note_embedding_precision(p);
            }
        }
        let mut stats = AttachStats::default();
        let mut seen: HashSet<u128> = HashSet::new();
        let mut infos = Vec::new();
        let mut id = self.next_segment_id();
        for src in sources {
            for seg in src.segments() {
                // Rows whose bytes equal a live record before them.
                let mut flag = Vec::new();
                for (row, f) in seg.files().iter().enumerate() {
                    if f.flags & (flags::TOMBSTONE | flags::FAILED) != 0 {
                        continue;
                    }
                    let h = f.content_hash();
                    let earlier = self.knows_content(h) || !seen.insert(h);
                    if earlier && f.flags & flags::DUPLICATE == 0 {
                        flag.push(row);
                    }
                }
                let from = seg.dir(src.dir());
                infos.push(attach_segment(
                    self.dir(),
                    &from,
                    seg,
                    id,
                    &flag,
                    &mut stats,
                )?);
                stats.segments += 1;
                stats.records += seg.info.records;
                stats.duplicates_flagged += flag.len() as u64;
                id += 1;
            }
        }
        self.commit_segments(infos, stop)?;
        Ok(stats)
    }

    /// Refuses sources built unlike this index (or, while it has no
    /// records, unlike the first source with records) and adopts the
    /// settings of that source for an index without records.
    fn check_sources(&mut self, sources: &[Index]) -> Result<(), IndexError> {
        let mine = IndexSettings {
            decode: self
                .decode_label()
                .map_or_else(default_decode, str::to_string),
            embedding: self.embedding_label().map(str::to_string),
            keypoints: self.keypoints(),
            profile: Some(self.profile()),
        };
        let mut reference = (self.committed_records() > 0)
            .then(|| (mine, format!("index {}", self.dir().display())));
        for src in sources {
            let m = src.manifest();
            if m.version != FORMAT_VERSION {
                return Err(IndexError::Version {
                    path: src.dir().join(super::manifest::FILE),
                    found: m.version,
                    supported: FORMAT_VERSION,
                });
            }
            if src.record_count() == 0 {
                continue;
            }
            let theirs = IndexSettings::of(m);
            match &reference {
                Some((r, what)) => {
                    if let Some(e) = r.merge_conflict(what, &theirs, src.dir()) {
                        return Err(e);
                    }
                }
                None => {
                    // An index without records may still record a decode setting.
                    if let Some(d) = self.decode_label().filter(|d| *d != theirs.decode) {
                        let what = format!("index {}", self.dir().display());
                        let mine = IndexSettings {
                            decode: d.to_string(),
                            ..theirs.clone()
                        };
                        return Err(mine
                            .merge_conflict(&what, &theirs, src.dir())
                            .expect("decode settings differ"));
                    }
                    let what = format!("the first input, {},", src.dir().display());
                    reference = Some((theirs, what));
                }
            }
        }
        if let (0, Some((r, _))) = (self.committed_records(), reference) {
            self.set_decode_label(r.decode);
            self.set_embedding_label(r.embedding);
            self.set_keypoints(r.keypoints);
            self.set_profile(r.profile.unwrap_or_default());
        }
        Ok(())
    }
}

/// Refuses `sources` built unlike the first of them with records (the
/// check [`IndexWriter::attach`] makes, without an index to attach to: so
/// a merge into a new folder is refused before the folder is made).
pub fn check_compatible(sources: &[Index]) -> Result<(), IndexError> {
    let mut with_records = sources.iter().filter(|s| s.record_count() > 0);
    let Some(first) = with_records.next() else {
        return Ok(());
    };
    let reference = IndexSettings::of(first.manifest());
    let what = format!("the first input, {},", first.dir().display());
    for src in with_records {
        let theirs = IndexSettings::of(src.manifest());
        if let Some(e) = reference.merge_conflict(&what, &theirs, src.dir()) {
            return Err(e);
        }
    }
    Ok(())
}

/// Writes segment `seg` (in folder `from`) into `index_dir` as segment
/// `id`: every file linked or copied, `files.col` rewritten with the
/// duplicate flag on rows `flag` if any, fsynced, published (not yet named
/// by any manifest).
fn attach_segment(
    index_dir: &Path,
    from: &Path,
    seg: &Segment,
    id: u64,
    flag: &[usize],
    stats: &mut AttachStats,
) -> Result<SegmentInfo, IndexError> {
    let name = segment_dir_name(id);
    let (tmp, final_dir) = (index_dir.join(format!("{name}.tmp")), index_dir.join(&name));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
    for file in segment_files(seg) {
        let (src, dst) = (from.join(file), tmp.join(file));
        if file == COLUMNS[0].0 && !flag.is_empty() {
            write_flagged(&dst, seg.files(), flag)?;
            stats.files_copied += 1;
        } else if link_or_copy(&src, &dst)? {
            stats.files_linked += 1;
        } else {
            stats.files_copied += 1;
        }
    }
    publish(index_dir, &tmp, &final_dir)?;
    Ok(SegmentInfo {
        id,
        ..seg.info.clone()
    })
}

/// A source file that was there when its segment was opened and is gone
/// now: the source index was compacted or merged meanwhile.
fn vanished(path: &Path) -> IndexError {
    IndexError::io(
        path,
        std::io::Error::other(
            "gone while merging (was that index compacted or updated meanwhile?); \
             nothing was committed, run the merge again",
        ),
    )
}

/// Hard-links `src` to `dst`, or copies it (and fsyncs the copy) where a
/// link cannot be made (another filesystem, links refused). Returns
/// whether it linked. A linked file is as durable as its source, which was
/// fsynced when its segment was committed; the new name is made durable
/// by the folder's fsync in `publish`.
fn link_or_copy(src: &Path, dst: &Path) -> Result<bool, IndexError> {
    match std::fs::hard_link(src, dst) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(vanished(src)),
        Err(_) => {}
    }
    std::fs::copy(src, dst).map_err(|e| IndexError::io(dst, e))?;
    std::fs::File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(|e| IndexError::io(dst, e))?;
    Ok(false)
}

/// Writes `files.col` with the exact-duplicate flag added on rows `flag`
/// (ascending), streamed and fsynced as every column is.
fn write_flagged(dst: &Path, files: &[FileRecord], flag: &[usize]) -> Result<(), IndexError> {
    let (file, name, width) = COLUMNS[0];
    debug_assert!(dst.ends_with(file));
    let mut w = ColumnWriter::create(dst, name, width)?;
    let mut next = flag.iter().peekable();
    for (row, f) in files.iter().enumerate() {
        let mut f = *f;
        if next.next_if_eq(&&row).is_some() {
            f.flags |= flags::DUPLICATE;
        }
        w.write(bytemuck::bytes_of(&f))?;
    }
    w.finish()
}

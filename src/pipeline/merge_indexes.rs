//! `lookalike merge`: combine indexes built in parts (one per shard, on
//! many machines) into one, by attaching their segments as they are (see
//! [`crate::index::attach`]): nothing is described again, and no segment
//! is merged with another (`lookalike compact` does that afterwards).

use std::path::{Path, PathBuf};

use crate::error::IndexError;
use crate::index::merge::StopAt;
use crate::index::{Index, IndexWriter};
use crate::ingest::names::path_text;

/// What a merge did (`merge --json` prints it).
#[derive(Debug, Default, serde::Serialize)]
pub struct MergeStats {
    /// The index written.
    pub out: String,
    /// The inputs, in the order they were attached.
    pub inputs: Vec<String>,
    /// Segments attached (all of every input's).
    pub segments_attached: usize,
    /// Records in them (superseded and removed ones included).
    pub records: u64,
    /// Records flagged as exact duplicates of a file in an earlier input
    /// (or in the index merged into), as `index` would have flagged them.
    pub duplicates_flagged: u64,
    /// Segments of the index after the merge (its own and the attached).
    pub segments: usize,
    /// Searchable images in the index after the merge.
    pub live_images: u64,
    /// Column files hard-linked from the inputs.
    pub files_linked: u64,
    /// Column files copied (another filesystem) or rewritten (new flags).
    pub files_copied: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Merges the indexes `inputs` (folders), in that order, into the index in
/// `out` (created if missing; an existing one keeps its segments and gets
/// the inputs' after them), under `out`'s writer lock, in one crash-safe
/// commit. Refused: inputs built with another decode setting, embedding
/// model or keypoint setting than `out` (or the first input); `out` among
/// the inputs; an input given twice. A missing, corrupt or foreign input
/// is the error opening it gives. `stop` ends it before the commit, as a
/// crash there would (tests only; the CLI passes None).
///
/// ```no_run
/// let parts = vec!["parts/part-00000".into(), "parts/part-00001".into()];
/// let stats = lookalike::pipeline::merge_indexes("laion".as_ref(), &parts, None)?;
/// println!("{} segments attached", stats.segments_attached);
/// # Ok::<(), lookalike::error::IndexError>(())
/// ```
pub fn merge_indexes(
    out: &Path,
    inputs: &[PathBuf],
    stop: Option<StopAt>,
) -> Result<MergeStats, IndexError> {
    let start = std::time::Instant::now();
    let out_canon = std::fs::canonicalize(out).ok();
    let mut canon: Vec<PathBuf> = Vec::with_capacity(inputs.len());
    let mut sources = Vec::with_capacity(inputs.len());
    for p in inputs {
        sources.push(Index::open(p)?);
        let c = std::fs::canonicalize(p).map_err(|e| IndexError::io(p, e))?;
        if out_canon.as_ref() == Some(&c) {
            return Err(IndexError::Incompatible(format!(
                "{} is both the index merged into and an input: give another folder as OUT \
                 (merging an index into itself would attach its segments twice)",
                p.display()
            )));
        }
        if let Some(i) = canon.iter().position(|q| *q == c) {
            return Err(IndexError::Incompatible(format!(
                "{} is given twice (as {} too): each part is merged once",
                p.display(),
                inputs[i].display()
            )));
        }
        canon.push(c);
    }
    crate::index::attach::check_compatible(&sources)?;
    let mut writer = IndexWriter::open(out)?;
    let a = writer.attach(&sources, stop)?;
    // Still under the writer's lock, as `index` writes it.
    crate::index::skipped::append_parts(out, inputs)?;
    let segments = writer.segment_count();
    drop(writer);
    Ok(MergeStats {
        out: path_text(out),
        inputs: inputs.iter().map(|p| path_text(p)).collect(),
        segments_attached: a.segments,
        records: a.records,
        duplicates_flagged: a.duplicates_flagged,
        segments,
        live_images: Index::open(out)?.live_count() as u64,
        files_linked: a.files_linked,
        files_copied: a.files_copied,
        seconds: start.elapsed().as_secs_f64(),
    })
}

//! One segment: the records of one commit, as parallel column files.
//!
//! | file          | width | content                                   |
//! |---------------|-------|-------------------------------------------|
//! | files.col     | 48    | FileRecord                                |
//! | paths.col     | 1     | path bytes, concatenated                  |
//! | pdq.col       | 32    | PDQ hash (Hash256)                        |
//! | quality.col   | 1     | PDQ quality 0..=100                       |
//! | phash.col     | 8     | pHash (u64, imagehash bit order)          |
//! | pdq_trim.col  | 32    | PDQ of the trimmed view (= pdq if none)   |
//! | keypoints.col | 4608  | 128 keypoints (IndexKeypoints); optional:  |
//! |               |       | segments written before it have none      |
//! | embedding.col | 2560  | 1280 × f16 embedding; optional (hash-only) |
//! | hnsw.col      | 4     | HNSW graph over embedding.col (`graph`)   |
//! | pdq_mih_v2.col | 4    | multi-index hash table over pdq (`mih`)   |
//! | keypoint_table.col | 4 | inverted index of keypoint descriptor     |
//! |               |       | blocks (`keypoint_table`); with keypoints |
//! | whitening.col | 4·dim | mean and whitening axes of embedding.col  |
//! |               |       | (`whitening`); from 256 embeddings up     |

use std::path::Path;

use bytemuck::{Pod, Zeroable};

use super::column::{self, Column, Count};
use super::graph::{self, Graph};
use super::keypoint_table::{self, KeypointTable};
use super::manifest::{sync_dir, Profile, SegmentInfo};
use super::mih::{self, Mih};
use super::projection::{self, Projection};
use super::whitening::{self, Whitening};
use crate::descriptors::{Descriptors, Embedding, Hash256, IndexKeypoints};
use crate::error::IndexError;

/// One file's record in files.col: what lets an update recognise unchanged
/// files, and where its path is stored.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FileRecord {
    /// File size in bytes when it was indexed.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (0 if unknown).
    pub mtime_ns: i64,
    /// xxh3-128 of the file bytes, low word first.
    pub content_hash: [u64; 2],
    /// Byte range of the path in paths.col.
    pub path_off: u64,
    /// Length of the path in bytes.
    pub path_len: u32,
    /// Record flags ([`super::flags`]).
    pub flags: u32,
}

impl FileRecord {
    /// The xxh3-128 content hash as one number.
    pub fn content_hash(&self) -> u128 {
        self.content_hash[0] as u128 | (self.content_hash[1] as u128) << 64
    }
}

/// Every column of a segment: (file name, column name, record width in bytes).
pub const COLUMNS: [(&str, &str, u32); 8] = [
    (
        "files.col",
        "files",
        std::mem::size_of::<FileRecord>() as u32,
    ),
    ("paths.col", "paths", 1),
    ("pdq.col", "pdq", 32),
    ("quality.col", "quality", 1),
    ("phash.col", "phash", 8),
    ("pdq_trim.col", "pdq_trim", 32),
    (
        "keypoints.col",
        "keypoints",
        std::mem::size_of::<IndexKeypoints>() as u32,
    ),
    (
        "embedding.col",
        "embedding",
        std::mem::size_of::<Embedding>() as u32,
    ),
];

/// Indexes of the optional columns in `COLUMNS`.
const KEYPOINTS: usize = 6;
const EMBEDDING: usize = 7;

/// Records being gathered for the next commit.
#[derive(Default)]
pub struct SegmentData {
    /// One [`FileRecord`] per record.
    pub files: Vec<FileRecord>,
    /// The records' path bytes, concatenated.
    pub paths: Vec<u8>,
    /// Upright PDQ hash per record.
    pub pdq: Vec<Hash256>,
    /// PDQ quality per record.
    pub quality: Vec<u8>,
    /// pHash per record.
    pub phash: Vec<u64>,
    /// PDQ of the trimmed view per record.
    pub pdq_trim: Vec<Hash256>,
    /// Keypoints per record.
    pub keypoints: Vec<IndexKeypoints>,
    /// Embedding per record.
    pub embedding: Vec<Embedding>,
}

impl SegmentData {
    /// Number of records gathered.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no record has been gathered.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Appends one record: its file facts, path and descriptors.
    pub fn push(
        &mut self,
        path: &[u8],
        size: u64,
        mtime_ns: i64,
        content_hash: u128,
        flags: u32,
        d: &Descriptors,
    ) {
        self.files.push(FileRecord {
            size,
            mtime_ns,
            content_hash: [content_hash as u64, (content_hash >> 64) as u64],
            path_off: self.paths.len() as u64,
            path_len: path.len() as u32,
            flags,
        });
        self.paths.extend_from_slice(path);
        self.pdq.push(d.pdq);
        self.quality.push(d.quality);
        self.phash.push(d.phash);
        self.pdq_trim.push(d.pdq_trim);
        self.keypoints.push(d.keypoints);
        self.embedding.push(d.embedding);
    }

    /// Descriptors of a pending record.
    pub fn descriptors(&self, row: usize) -> Descriptors {
        Descriptors {
            pdq: self.pdq[row],
            quality: self.quality[row],
            phash: self.phash[row],
            pdq_trim: self.pdq_trim[row],
            keypoints: self.keypoints[row],
            embedding: self.embedding[row],
        }
    }

    /// Writes the segment into `<index>/<seg>.tmp/`, fsyncs every file and the
    /// directory, then renames it into place. It becomes visible to readers
    /// only when a manifest naming it is committed. A compact `profile`
    /// leaves out keypoints.col and embedding.col (the codes stay).
    pub fn write(
        &self,
        index_dir: &Path,
        info: &SegmentInfo,
        profile: Profile,
    ) -> Result<(), IndexError> {
        let final_dir = index_dir.join(info.dir_name());
        let tmp = index_dir.join(format!("{}.tmp", info.dir_name()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
        let payloads: [&[u8]; 8] = [
            bytemuck::cast_slice(&self.files),
            &self.paths,
            bytemuck::cast_slice(&self.pdq),
            &self.quality,
            bytemuck::cast_slice(&self.phash),
            bytemuck::cast_slice(&self.pdq_trim),
            bytemuck::cast_slice(&self.keypoints),
            bytemuck::cast_slice(&self.embedding),
        ];
        // A segment without any keypoints (tombstones, failures, hash-only
        // data) leaves out the keypoints column: 4.6 KB per record saved.
        // Likewise a hash-only segment leaves out embedding.col.
        let compact = profile == Profile::Compact;
        let no_keypoints = compact || self.keypoints.iter().all(|k| k.points().is_empty());
        let no_embedding = self.embedding.iter().all(|e| e.is_none());
        for (i, ((file, name, width), payload)) in COLUMNS.iter().zip(payloads).enumerate() {
            if (i == KEYPOINTS && no_keypoints) || (i == EMBEDDING && (no_embedding || compact)) {
                continue;
            }
            column::write(&tmp.join(file), name, *width, payload)?;
        }
        // The derived columns are independent: written side by side, so
        // the projection fit and graph (the longest, mostly one core) do
        // not leave the other cores idle at the end of every run.
        let (mut search, mut white, mut tables) = (Ok(()), Ok(()), Ok(()));
        rayon::scope(|s| {
            if !no_embedding {
                s.spawn(|_| search = projection::write_search_columns(&tmp, &self.embedding));
                if !compact {
                    s.spawn(|_| white = whitening::write(&tmp, &self.embedding).map(drop));
                }
            }
            s.spawn(|_| {
                tables = mih::write(&tmp, mih::CURRENT, &self.files, &self.pdq, &self.pdq_trim)
                    .and_then(|()| match no_keypoints {
                        true => Ok(()),
                        false => keypoint_table::write(&tmp, &self.files, &self.keypoints),
                    });
            });
        });
        search.and(white).and(tables)?;
        publish(index_dir, &tmp, &final_dir)
    }
}

/// The last steps of writing a segment folder: fsync the temporary folder,
/// rename it into place (replacing an unreferenced leftover of a crash) and
/// fsync the index folder. Not visible to readers until a manifest names it.
pub(crate) fn publish(index_dir: &Path, tmp: &Path, final_dir: &Path) -> Result<(), IndexError> {
    sync_dir(tmp)?;
    if final_dir.exists() {
        // Left by a crash after rename but before the manifest commit: not referenced, safe to replace.
        std::fs::remove_dir_all(final_dir).map_err(|e| IndexError::io(final_dir, e))?;
    }
    std::fs::rename(tmp, final_dir).map_err(|e| IndexError::io(final_dir, e))?;
    sync_dir(index_dir)
}

/// A committed segment, memory-mapped and validated.
pub struct Segment {
    /// The manifest's entry for this segment.
    pub info: SegmentInfo,
    files: Column,
    paths: Column,
    pdq: Column,
    quality: Column,
    phash: Column,
    pdq_trim: Column,
    keypoints: Option<Column>,
    embedding: Option<Column>,
    /// Written by a compact index: embeddings live only in the codes.
    compact: bool,
    /// HNSW graph over the embeddings (None: hash-only, or written before graphs).
    graph: Option<Graph>,
    /// Axes and int8 codes the graph was built over (None: hash-only, or a
    /// graph written before codes, over the f16 rows).
    projection: Option<Projection>,
    /// Multi-index hash table over the PDQ hashes (None: written before it).
    mih: Option<Mih>,
    /// Inverted index of the keypoint descriptors (None: no keypoints
    /// stored, or written before it).
    keypoint_table: Option<KeypointTable>,
    /// PCA-whitening of the embeddings (None: no embedding.col, fewer than
    /// `whitening::MIN_ROWS` of them, or written before it).
    whitening: Option<Whitening>,
    /// Rows whose trimmed view differs from the upright hash, ascending:
    /// derived once here so every search scans only these for trimmed views.
    trimmed_rows: Vec<u32>,
    /// `trimmed_starts[k]`: index in `trimmed_rows` of the first row ≥
    /// k · TRIM_BLOCK, so a scan chunk finds its trimmed rows without a
    /// binary search (that one misses the cache at every step).
    trimmed_starts: Vec<u32>,
}

/// Granularity of `Segment::trimmed_in`'s O(1) lookup.
pub const TRIM_BLOCK: usize = 4096;

impl Segment {
    /// Maps and validates the columns of a committed segment of an index
    /// of `profile`: record counts, path ranges and quality values are
    /// checked before anything reads them.
    pub fn open(
        index_dir: &Path,
        info: &SegmentInfo,
        profile: Profile,
    ) -> Result<Segment, IndexError> {
        let dir = index_dir.join(info.dir_name());
        if !dir.is_dir() {
            return Err(IndexError::corrupt(
                &dir,
                "segment listed in the manifest is missing",
            ));
        }
        let n = Count::Exactly(info.records);
        let col = |i: usize, count| {
            let (file, name, width) = COLUMNS[i];
            Column::open(&dir.join(file), name, width, count)
        };
        let seg = Segment {
            info: info.clone(),
            files: col(0, n)?,
            paths: col(1, Count::Exactly(info.path_bytes))?,
            pdq: col(2, n)?,
            quality: col(3, n)?,
            phash: col(4, n)?,
            pdq_trim: col(5, n)?,
            keypoints: match dir.join(COLUMNS[KEYPOINTS].0).exists() {
                true => Some(col(KEYPOINTS, n)?),
                false => None,
            },
            embedding: match dir.join(COLUMNS[EMBEDDING].0).exists() {
                true => Some(col(EMBEDDING, n)?),
                false => None,
            },
            compact: profile == Profile::Compact,
            graph: None,
            projection: None,
            mih: None,
            keypoint_table: None,
            whitening: None,
            trimmed_rows: vec![],
            trimmed_starts: vec![],
        };
        // Every path range must lie inside paths.col before anyone slices with it.
        let plen = seg.paths.count;
        for (i, r) in seg.files().iter().enumerate() {
            if r.path_off
                .checked_add(r.path_len as u64)
                .is_none_or(|end| end > plen)
            {
                return Err(IndexError::corrupt(
                    dir.join("files.col"),
                    format!("record {i} points outside paths.col"),
                ));
            }
            if seg.quality()[i] > 100 {
                return Err(IndexError::corrupt(
                    dir.join("quality.col"),
                    format!("record {i} has quality {} > 100", seg.quality()[i]),
                ));
            }
        }
        let trimmed_rows = seg
            .pdq()
            .iter()
            .zip(seg.pdq_trim())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i as u32)
            .collect::<Vec<u32>>();
        let trimmed_starts = (0..=seg.len().div_ceil(TRIM_BLOCK))
            .map(|k| trimmed_rows.partition_point(|&r| (r as usize) < k * TRIM_BLOCK) as u32)
            .collect();
        if seg.compact {
            for i in [KEYPOINTS, EMBEDDING] {
                if dir.join(COLUMNS[i].0).exists() {
                    return Err(IndexError::corrupt(
                        dir.join(COLUMNS[i].0),
                        "a compact index's segment holds no such column (the manifest says \"profile\": \"compact\")",
                    ));
                }
            }
        }
        // What the codes encode: embedding.col, or in a compact index the
        // embeddings the codes alone keep.
        let encoded = seg.embedding.is_some() || seg.compact;
        let ppath = dir.join(projection::FILE);
        let cpath = dir.join(projection::CODES_FILE);
        if cpath.exists() && !ppath.exists() {
            return Err(IndexError::corrupt(
                &ppath,
                "missing: codes.col has no projection beside it (the segment is damaged)",
            ));
        }
        let projection = match (encoded, ppath.exists()) {
            (true, true) => Some(Projection::open(&dir, seg.len())?),
            (false, true) => {
                return Err(IndexError::corrupt(
                    &ppath,
                    "a projection without the embedding.col it encodes",
                ))
            }
            _ => None,
        };
        let gpath = dir.join(graph::FILE);
        let linked = seg.embedding.is_some() || projection.is_some();
        let graph = match (linked, gpath.exists()) {
            (true, true) => Some(Graph::open(&gpath, seg.len())?),
            (false, true) => {
                return Err(IndexError::corrupt(
                    &gpath,
                    "a graph without the embeddings it links",
                ))
            }
            _ => None,
        };
        if let (Some(g), Some(p)) = (&graph, &projection) {
            if g.dim != p.out {
                return Err(IndexError::corrupt(
                    &gpath,
                    format!(
                        "a graph over {}-byte codes, the codes have {}",
                        g.dim, p.out
                    ),
                ));
            }
        }
        let mih = Mih::find(&dir, seg.len())?;
        let keypoint_table = match seg.keypoints {
            Some(_) => KeypointTable::find(&dir, seg.len())?,
            None => None,
        };
        let whitening = match (seg.embedding.is_some(), Whitening::find(&dir)?) {
            (false, Some(_)) => {
                return Err(IndexError::corrupt(
                    dir.join(whitening::FILE),
                    "a whitening without the embedding.col it whitens",
                ))
            }
            (_, w) => w,
        };
        // Fitted on the same rows as the projection: the same values read.
        if let (Some(w), Some(p)) = (&whitening, &projection) {
            if w.inp != p.inp {
                return Err(IndexError::corrupt(
                    dir.join(whitening::FILE),
                    format!(
                        "whitens {} embedding values, the projection reads {}",
                        w.inp, p.inp
                    ),
                ));
            }
        }
        Ok(Segment {
            trimmed_rows,
            graph,
            projection,
            mih,
            keypoint_table,
            whitening,
            trimmed_starts,
            ..seg
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.info.records as usize
    }

    /// Whether the segment has no records.
    pub fn is_empty(&self) -> bool {
        self.info.records == 0
    }

    /// File record per row.
    pub fn files(&self) -> &[FileRecord] {
        self.files.cast()
    }
    /// Upright PDQ hash per row.
    pub fn pdq(&self) -> &[Hash256] {
        self.pdq.cast()
    }
    /// PDQ quality per row.
    pub fn quality(&self) -> &[u8] {
        self.quality.bytes()
    }
    /// pHash per row.
    pub fn phash(&self) -> &[u64] {
        self.phash.cast()
    }
    /// PDQ of the trimmed view per row (equal to `pdq` when nothing was trimmed).
    pub fn pdq_trim(&self) -> &[Hash256] {
        self.pdq_trim.cast()
    }
    /// Keypoints of every row, or None for a segment written before the
    /// keypoints column existed.
    pub fn keypoints(&self) -> Option<&[IndexKeypoints]> {
        self.keypoints.as_ref().map(|c| c.cast())
    }
    /// Stored f16 embeddings of every row, or None for a hash-only
    /// segment or a compact index's (see [`Segment::scorer`]).
    pub fn embeddings(&self) -> Option<&[Embedding]> {
        self.embedding.as_ref().map(|c| c.cast())
    }

    /// Whether rows of this segment may have embeddings (stored, or in a
    /// compact index only as codes).
    pub fn has_embeddings(&self) -> bool {
        self.embedding.is_some() || (self.compact && self.projection.is_some())
    }

    /// Row `row`'s embedding: stored, or rebuilt from its code in a compact
    /// index (see [`Projection::reconstruct`]). None: it has none.
    pub fn embedding(&self, row: usize) -> Option<Embedding> {
        match (self.embeddings(), &self.projection) {
            (Some(e), _) => (!e[row].is_none()).then_some(e[row]),
            (None, Some(p)) if self.compact => p.reconstruct(row),
            _ => None,
        }
    }

    /// How query `q` is compared with this segment's rows: the stored f16
    /// rows, or in a compact index the codes. With `whiten`, the stored rows
    /// of a segment with a whitening are compared whitened (a compact
    /// index's codes never are). None: no embeddings here.
    pub fn scorer<'a>(&'a self, q: &'a [f32], whiten: bool) -> Option<Scorer<'a>> {
        match (self.embeddings(), &self.projection) {
            (Some(rows), _) => {
                let white = match (whiten, &self.whitening) {
                    (true, Some(w)) => w.apply(q.iter().copied()).map(|qw| (w, qw)),
                    _ => None,
                };
                Some(Scorer::Rows { q, rows, white })
            }
            (None, Some(p)) if self.compact => {
                let qp = p.project(q);
                let qn = qp.iter().map(|x| x * x).sum::<f32>().sqrt();
                Some(Scorer::Codes { p, qp, qn })
            }
            _ => None,
        }
    }
    /// The HNSW graph over `embeddings()`, if the segment has one.
    pub fn graph(&self) -> Option<&Graph> {
        self.graph.as_ref()
    }

    /// The axes and codes the graph walks (None: no embeddings, or a graph
    /// written before codes).
    pub fn projection(&self) -> Option<&Projection> {
        self.projection.as_ref()
    }
    /// The multi-index hash table over the PDQ hashes, if the segment has one.
    pub fn mih(&self) -> Option<&Mih> {
        self.mih.as_ref()
    }
    /// The inverted index of the keypoint descriptors, if the segment
    /// stores keypoints and was written with one.
    pub fn keypoint_table(&self) -> Option<&KeypointTable> {
        self.keypoint_table.as_ref()
    }
    /// The whitening of the embeddings, if the segment has one.
    pub fn whitening(&self) -> Option<&Whitening> {
        self.whitening.as_ref()
    }
    /// The columns' folder of this segment in `index_dir`.
    pub fn dir(&self, index_dir: &Path) -> std::path::PathBuf {
        index_dir.join(self.info.dir_name())
    }
    /// Rows whose trimmed-view hash differs from the upright one, ascending.
    pub fn trimmed_rows(&self) -> &[u32] {
        &self.trimmed_rows
    }

    /// The trimmed rows (see `trimmed_rows`) in `lo..hi`; a table lookup
    /// when both ends are multiples of `TRIM_BLOCK` or the segment's end.
    pub fn trimmed_in(&self, lo: usize, hi: usize) -> &[u32] {
        let at = |r: usize| match self.trimmed_starts.get(r / TRIM_BLOCK) {
            _ if r >= self.len() => self.trimmed_rows.len(),
            Some(&i) if r.is_multiple_of(TRIM_BLOCK) => i as usize,
            _ => self.trimmed_rows.partition_point(|&t| (t as usize) < r),
        };
        &self.trimmed_rows[at(lo)..at(hi).max(at(lo))]
    }

    /// The stored path bytes of `row`.
    pub fn path_bytes(&self, row: usize) -> &[u8] {
        let r = &self.files()[row];
        &self.paths.bytes()[r.path_off as usize..(r.path_off + r.path_len as u64) as usize]
    }

    /// All descriptors of `row`; absent keypoints or embeddings read as defaults.
    pub fn descriptors(&self, row: usize) -> Descriptors {
        Descriptors {
            pdq: self.pdq()[row],
            quality: self.quality()[row],
            phash: self.phash()[row],
            pdq_trim: self.pdq_trim()[row],
            keypoints: self.keypoints().map(|k| k[row]).unwrap_or_default(),
            embedding: self.embedding(row).unwrap_or_default(),
        }
    }
}

/// A query embedding prepared for one segment ([`Segment::scorer`]).
pub enum Scorer<'a> {
    /// Cosine with the stored f16 rows.
    Rows {
        /// The query, unit length.
        q: &'a [f32],
        /// The segment's rows.
        rows: &'a [Embedding],
        /// The segment's whitening and the query whitened by it: the
        /// similarity is then the cosine of the whitened vectors.
        white: Option<(&'a Whitening, Vec<f32>)>,
    },
    /// A compact index: cosine of the projections ([`Projection::cosine`]).
    Codes {
        /// The segment's axes and codes.
        p: &'a Projection,
        /// The query projected on them.
        qp: Vec<f32>,
        /// Its norm.
        qn: f32,
    },
}

impl Scorer<'_> {
    /// The query's similarity with row `row`; None when the row has no
    /// embedding.
    pub fn similarity(&self, row: u32) -> Option<f32> {
        match self {
            Scorer::Rows {
                white: Some((w, qw)),
                rows,
                ..
            } => w.cosine(qw, &rows[row as usize]),
            Scorer::Rows { q, rows, .. } => {
                let e = &rows[row as usize];
                (!e.is_none()).then(|| crate::descriptors::embedding::similarity(q, e))
            }
            Scorer::Codes { p, qp, qn } => p.cosine(qp, *qn, row),
        }
    }

    /// Whether [`Scorer::similarity`] compares whitened vectors.
    pub fn whitened(&self) -> bool {
        matches!(self, Scorer::Rows { white: Some(_), .. })
    }

    /// The projected query and codes, for walking the graph (None: a graph
    /// written before codes, walked over the f16 rows).
    pub fn codes(&self) -> Option<(&Projection, &[f32])> {
        match self {
            Scorer::Codes { p, qp, .. } => Some((p, qp)),
            Scorer::Rows { .. } => None,
        }
    }
}

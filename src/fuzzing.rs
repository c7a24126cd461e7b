//! Entry points for the fuzz targets in `fuzz/` and for the seed-corpus test
//! (`tests/fuzz_seeds.rs`) that CI runs: each takes arbitrary bytes and must
//! return without panicking, hanging or allocating without bound. Errors are
//! the expected outcome for most inputs; only a crash is a finding.
//!
//! * [`decode`]: file bytes → decode within limits (both modes) → every
//!   descriptor the CPU engine computes, and the CNN's input resize.
//! * [`onnx`]: bytes → the ONNX importer.
//! * [`safetensors`]: bytes → the safetensors parser and both network
//!   builders (the lookalike layer list and torchvision ResNet names). Input
//!   that starts with `{` is taken as the JSON header alone, and the data
//!   section is zeros of the size it declares, so mutations explore the
//!   header's structure instead of breaking its length prefix.
//! * [`IndexTemplate::run`]: one file of a real index replaced by the bytes,
//!   then open, validate and search it (PDQ tables, scan, HNSW graph, verification).
//! * [`tar()`]: bytes → a tar shard streamed as `index` and `check` read it,
//!   then each image member re-read by its recorded name as reports do.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::cnn::{self, safetensors::SafeTensors, Network};
use crate::descriptors::{self, embedding::EMBED_DIM, Extras, QueryDescriptors};
use crate::index::{Index, RecordRef};
use crate::ingest::decode::{self as dec, DecodeMode, Limits};
use crate::ingest::source::{self, Inputs, Visit};
use crate::ingest::{FileEntry, Skipped};
use crate::search::{calibrate::Calibration, fusion, hamming, judge};

/// Streams `data` as a tar shard (image members read within a 1 MiB limit),
/// then re-reads up to 16 of the image members by their recorded names
/// (`SHARD.tar/MEMBER`), as the HTML report does. A member handed out with
/// bytes must have exactly the size its header declares. Returns how many
/// image members were handed out and how many re-reads matched them.
pub fn tar(data: &[u8]) -> (usize, usize) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUN: AtomicU64 = AtomicU64::new(0);
    // A fresh name per input: reports cache a shard's member table by path,
    // size and mtime, and a rewrite within one mtime tick would look unchanged.
    let dir = std::env::temp_dir().join(format!("lookalike-fuzz-tar-{}", std::process::id()));
    let shard = dir.join(format!("{}.tar", RUN.fetch_add(1, Ordering::Relaxed)));
    if fs::create_dir_all(&dir).is_err() || fs::write(&shard, data).is_err() {
        return (0, 0);
    }
    let limits = Limits {
        max_bytes: 1 << 20,
        ..Limits::default()
    };
    let mut members = Members(Vec::new());
    let Ok(()) = source::visit(&Inputs::path(&shard), &limits, &mut members);
    let same = members.0.iter().take(16).filter(|(p, streamed)| {
        let again = source::read(p, &limits).ok();
        again.is_some() && again == *streamed
    });
    let counts = (members.0.len(), same.count());
    let _ = fs::remove_file(&shard);
    let _ = fs::remove_dir(&dir); // only when no other thread's shard is there
    counts
}

/// The image members a shard hands out: recorded name, streamed bytes.
struct Members(Vec<(PathBuf, Option<Vec<u8>>)>);

impl Visit for Members {
    type Error = std::convert::Infallible;

    fn file(&mut self, e: FileEntry) -> Result<(), Self::Error> {
        let bytes = match e.bytes {
            Some(Ok(b)) => Some(b),
            _ => None,
        };
        if let Some(b) = &bytes {
            assert_eq!(b.len() as u64, e.size, "{}", e.path.display());
        }
        self.0.push((e.path, bytes));
        Ok(())
    }

    fn skipped(&mut self, _: Skipped) {}
}

/// Largest data section [`safetensors`] makes for a header-only input.
const MAX_ZERO_DATA: u64 = 32 << 20;

/// Decodes `data` in both modes and describes what decodes.
pub fn decode(data: &[u8]) {
    // A lower pixel limit than the CLI's keeps each run fast; the limit
    // logic under test is the same.
    let limits = Limits {
        max_pixels: 16_000_000,
        ..Limits::default()
    };
    for mode in [DecodeMode::Fast, DecodeMode::Exact] {
        if let Ok(d) = dec::decode(data, mode, &limits) {
            assert_eq!((d.rgb.width() > 0, d.rgb.height() > 0), (true, true));
            let _ = descriptors::describe_query_with(&d.rgb, Extras::HASHES_AND_KEYPOINTS);
            let _ = cnn::preprocess::input_batch(tiny_network(), &[&d.rgb]);
        }
    }
}

/// Imports `data` as an ONNX model (input 32 × 32); an imported network
/// must pass its own consistency check.
pub fn onnx(data: &[u8]) {
    if let Ok(net) = cnn::onnx::parse(Path::new("fuzz.onnx"), data, (32, 32)) {
        let _ = net.check_channels();
        let _ = net.embedding_dim();
    }
}

/// Parses `data` as a safetensors file and builds both kinds of network.
pub fn safetensors(data: &[u8]) {
    let bytes = if data.first() == Some(&b'{') {
        match with_zero_data(data) {
            Some(b) => b,
            None => return,
        }
    } else {
        data.to_vec()
    };
    if let Ok(st) = SafeTensors::parse(Path::new("fuzz.safetensors"), bytes) {
        if let Ok(net) = Network::from_safetensors(&st) {
            let _ = net.check_channels();
        }
        let _ = cnn::resnet::from_torchvision(&st);
    }
}

/// `header` as a safetensors file: its length, itself, then zeros up to the
/// largest end offset it names (None when that is over [`MAX_ZERO_DATA`]).
fn with_zero_data(header: &[u8]) -> Option<Vec<u8>> {
    let end = serde_json::from_slice::<serde_json::Value>(header)
        .ok()
        .and_then(|v| {
            v.as_object().map(|o| {
                o.values()
                    .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
                    .max()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    if end > MAX_ZERO_DATA {
        return None;
    }
    let mut b = Vec::with_capacity(8 + header.len() + end as usize);
    b.extend_from_slice(&(header.len() as u64).to_le_bytes());
    b.extend_from_slice(header);
    b.resize(b.len() + end as usize, 0);
    Some(b)
}

/// A small network, built once, whose input resize [`decode`] exercises.
fn tiny_network() -> &'static Network {
    static NET: std::sync::OnceLock<Network> = std::sync::OnceLock::new();
    NET.get_or_init(|| cnn::resnet::architecture([1, 1, 1, 1], 8, 16))
}

/// A real index (manifest, columns, HNSW graphs) copied into a scratch
/// folder; each run replaces one of its files with the fuzz input, opens
/// the index, validates it and searches it, then restores the file.
pub struct IndexTemplate {
    /// (path relative to the index folder, original bytes), in name order.
    files: Vec<(PathBuf, Vec<u8>)>,
    scratch: PathBuf,
    query: QueryDescriptors,
}

impl IndexTemplate {
    /// Copies the index at `template` into `scratch` (created; emptied
    /// first) and describes a fixed query image to search it with.
    pub fn new(template: &Path, scratch: &Path) -> io::Result<IndexTemplate> {
        let mut files = vec![];
        collect(template, Path::new(""), &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(io::Error::other(format!("{} is empty", template.display())));
        }
        if scratch.exists() {
            fs::remove_dir_all(scratch)?;
        }
        for (rel, bytes) in &files {
            let p = scratch.join(rel);
            fs::create_dir_all(p.parent().unwrap_or(scratch))?;
            fs::write(p, bytes)?;
        }
        let img = RgbImage::from_fn(96, 64, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 4) as u8, ((x ^ y) * 5) as u8])
        });
        let mut query = descriptors::describe_query_with(&img, Extras::HASHES_AND_KEYPOINTS);
        let mut e: Vec<f32> = (0..EMBED_DIM)
            .map(|i| ((i * 7919) % 13) as f32 - 6.0)
            .collect();
        cnn::l2_normalize(&mut e);
        query.embedding = Some(e);
        Ok(IndexTemplate {
            files,
            scratch: scratch.to_path_buf(),
            query,
        })
    }

    /// The seed corpus: each file as the input that selects it (its
    /// number as the first byte, then its original bytes).
    pub fn seeds(&self) -> Vec<Vec<u8>> {
        (0..self.files.len())
            .map(|i| {
                let mut s = vec![i as u8];
                s.extend_from_slice(&self.files[i].1);
                s
            })
            .collect()
    }

    /// The files of the template, relative to its folder.
    pub fn names(&self) -> Vec<&Path> {
        self.files.iter().map(|(p, _)| p.as_path()).collect()
    }

    /// Replaces file `data[0] % n` with `data[1..]`, then opens, validates
    /// and searches the index. Errors from the file system are returned
    /// (the harness's own trouble); the index's own errors are the
    /// expected outcome and are not.
    pub fn run(&self, data: &[u8]) -> io::Result<()> {
        let Some((&pick, content)) = data.split_first() else {
            return Ok(());
        };
        let (rel, original) = &self.files[pick as usize % self.files.len()];
        let path = self.scratch.join(rel);
        fs::write(&path, content)?;
        self.exercise();
        fs::write(&path, original)
    }

    fn exercise(&self) {
        let Ok(index) = Index::open(&self.scratch) else {
            return;
        };
        let _ = index.content_digest();
        let _ = index.latest();
        for (s, seg) in index.segments().iter().enumerate() {
            for row in 0..seg.len() as u32 {
                let r = RecordRef { seg: s as u32, row };
                let _ = (index.path(r), index.is_live(r));
            }
        }
        // Every segment's PDQ table (pdq_mih_v2.col) is probed: by a radius
        // query, and by a top-k query that tries tables on any segment size.
        let params = hamming::SearchParams {
            top_k: 16,
            max_distance: 31,
            parallel: false,
            kernel: Default::default(),
            pdq_index: true,
            pdq_table_min_rows: 0,
        };
        let _ = hamming::search(&index, &self.query, &params);
        let params = hamming::SearchParams {
            max_distance: 256,
            ..params
        };
        let found = hamming::search(&index, &self.query, &params);
        let cal = Calibration::for_index(&index);
        // ann_min_rows 0: every segment's HNSW graph is walked.
        let fuse = fusion::FuseParams {
            top_k: 10,
            parallel: false,
            verify: true,
            ann_min_rows: 0,
            keypoint_scan: false,
            calibration: cal,
        };
        let cands = fusion::fuse(&index, &self.query, &found, &fuse);
        let _ = judge::judge(&index, "fuzz", 0, &self.query, &cands, &cal);
        // And every record's keypoints compared, the tables unused.
        let scan = fusion::FuseParams {
            keypoint_scan: true,
            ..fuse
        };
        let _ = fusion::fuse(&index, &self.query, &found, &scan);
    }
}

/// Every regular file under `dir`, as (path relative to `root`, bytes).
fn collect(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let (p, r) = (e.path(), rel.join(e.file_name()));
        if e.file_type()?.is_dir() {
            collect(&p, &r, out)?;
        } else {
            out.push((r, fs::read(&p)?));
        }
    }
    Ok(())
}

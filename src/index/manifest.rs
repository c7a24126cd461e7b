//! MANIFEST.json: the one file that says which segments are committed.
//! Replaced atomically (write temp, fsync, rename, fsync directory), so a
//! reader sees either the old or the new set, never a mix.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::FORMAT_VERSION;
use crate::error::IndexError;

pub const FILE: &str = "MANIFEST.json";
pub const FORMAT_NAME: &str = "lookalike-index";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// Bumped by every commit.
    pub generation: u64,
    pub segments: Vec<SegmentInfo>,
    /// Which build wrote the last commit (informational).
    pub writer: String,
    /// How images were decoded ("exact" or "fast:<min side>"); queries are
    /// decoded the same way so their hashes are comparable.
    #[serde(default)]
    pub decode: Option<String>,
    /// The model that made the embeddings ("name@fingerprint"), None for a
    /// hash-only index; queries are embedded only by the same model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<String>,
    /// False for an index built with `--no-keypoints`: its segments have no
    /// keypoints column, and later runs of `index` keep it that way. Written
    /// only when false, so other indexes' manifests are as before.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub keypoints: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: u64,
    pub records: u64,
    pub path_bytes: u64,
}

impl SegmentInfo {
    pub fn dir_name(&self) -> String {
        segment_dir_name(self.id)
    }
}

pub fn segment_dir_name(id: u64) -> String {
    format!("seg-{id:06}")
}

impl Manifest {
    pub fn empty() -> Manifest {
        Manifest {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            generation: 0,
            segments: vec![],
            writer: writer_id(),
            decode: None,
            embedding: None,
            keypoints: true,
        }
    }

    pub fn load(dir: &Path) -> Result<Manifest, IndexError> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Err(IndexError::Missing(dir.to_path_buf()));
        }
        let text = std::fs::read(&path).map_err(|e| IndexError::io(&path, e))?;
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| IndexError::Foreign {
                path: path.clone(),
                why: format!("not JSON: {e}"),
            })?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(IndexError::Foreign {
                path,
                why: format!("\"format\" is not \"{FORMAT_NAME}\""),
            });
        }
        let version = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0) as u32;
        if version != FORMAT_VERSION {
            return Err(IndexError::Version {
                path,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let m: Manifest =
            serde_json::from_value(v).map_err(|e| IndexError::corrupt(&path, e.to_string()))?;
        let mut ids: Vec<u64> = m.segments.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != m.segments.len() {
            return Err(IndexError::corrupt(&path, "a segment is listed twice"));
        }
        Ok(m)
    }

    /// Atomic replace: temp file, fsync, rename over, fsync the directory.
    pub fn commit(&self, dir: &Path) -> Result<(), IndexError> {
        let tmp = dir.join(format!("{FILE}.tmp"));
        let io = |e| IndexError::io(&tmp, e);
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&serde_json::to_vec_pretty(self).expect("manifest serialises"))
            .map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, dir.join(FILE)).map_err(io)?;
        sync_dir(dir)
    }
}

pub fn writer_id() -> String {
    format!("lookalike {}", env!("CARGO_PKG_VERSION"))
}

/// fsync a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IndexError::io(dir, e))
}

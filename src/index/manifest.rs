//! MANIFEST.json: the one file that says which segments are committed.
//! Replaced atomically (write temp, fsync, rename, fsync directory), so a
//! reader sees either the old or the new set, never a mix.
//!
//! Read strictly: a key that is not in the schema, a missing required key or
//! a value that does not parse is an error naming the key, so a damaged
//! manifest can never quietly change what the index means (a misspelt
//! "embedding" would otherwise read as a hash-only index). Keys a writer may
//! leave out (`decode`, `embedding`, `keypoints`, `profile`) keep their
//! defaults.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::column;
use super::FORMAT_VERSION;
use crate::error::IndexError;
use crate::ingest::{DecodeMode, Limits};

/// The manifest's file name in an index folder.
pub const FILE: &str = "MANIFEST.json";
/// The `format` every manifest holds.
pub const FORMAT_NAME: &str = "lookalike-index";

/// Largest MANIFEST.json read. A segment entry takes about 90 bytes pretty
/// printed, so 64 MiB holds some 700 000 segments: `index` commits every
/// 50 000 images or 30 s, so that is 35 billion images or eight months of
/// continuous indexing. Parsed straight into `Manifest` (24 bytes per
/// segment, no JSON tree), a full-size manifest costs under 100 MB, where an
/// unbounded one (a FIFO, /dev/zero) would exhaust memory or hang.
pub const MAX_BYTES: u64 = 64 << 20;

/// Which segments are committed, and how the index was built.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// On-disk format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Bumped by every commit.
    pub generation: u64,
    /// The committed segments, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// Which build wrote the last commit (informational).
    pub writer: String,
    /// How images were decoded (`"exact"` or `"fast:<min side>"`); queries are
    /// decoded the same way so their hashes are comparable. Null before the
    /// first image is indexed; absent in manifests of older builds.
    pub decode: Option<String>,
    /// The model that made the embeddings ("name@fingerprint"), None for a
    /// hash-only index; queries are embedded only by the same model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<String>,
    /// False for an index built with `--no-keypoints`: its segments have no
    /// keypoints column, and later runs of `index` keep it that way. Written
    /// only when false, so other indexes' manifests are as before.
    #[serde(skip_serializing_if = "is_yes")]
    pub keypoints: bool,
    /// What each image keeps ([`Profile`]); written only when compact.
    #[serde(skip_serializing_if = "Profile::is_full")]
    pub profile: Profile,
    /// The CNN precisions that computed the embeddings, in the order first
    /// used: "f32", "int8" (a quantised model on the CPU engine), "f16"
    /// (GPU storage). Written only when one is not f32, so indexes embedded
    /// in f32 keep the manifests older builds read; absent, the embeddings
    /// (if any) are f32.
    #[serde(skip_serializing_if = "only_f32")]
    pub embedding_precisions: Vec<String>,
}

/// How much of each image an index stores (`index --profile`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Keypoints and the f16 embedding are stored (about 8 KB an image).
    #[default]
    Full,
    /// Neither is stored (about 0.7 KB an image at scale, 1.4 KB on a
    /// 1 000-image set):
    /// embeddings are compared through their int8 codes on the segment's
    /// projection, and keypoints are extracted again from the training
    /// file when a candidate is verified (`index::refetch`).
    Compact,
}

impl Profile {
    fn is_full(&self) -> bool {
        *self == Profile::Full
    }

    /// The name `--profile` and the manifest use.
    pub fn name(&self) -> &'static str {
        match self {
            Profile::Full => "full",
            Profile::Compact => "compact",
        }
    }
}

fn only_f32(list: &[String]) -> bool {
    list.iter().all(|p| p == "f32")
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// One committed segment as the manifest lists it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its number: the folder is `seg-<id>` (see [`segment_dir_name`]).
    pub id: u64,
    /// Rows in every per-record column.
    pub records: u64,
    /// Length of paths.col's payload.
    pub path_bytes: u64,
}

impl SegmentInfo {
    /// The segment's folder name.
    pub fn dir_name(&self) -> String {
        segment_dir_name(self.id)
    }
}

/// Folder name of segment `id`.
pub fn segment_dir_name(id: u64) -> String {
    format!("seg-{id:06}")
}

impl Manifest {
    /// The manifest of a new, empty index.
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
            profile: Profile::Full,
            embedding_precisions: Vec::new(),
        }
    }

    /// Reads and checks `dir/MANIFEST.json`: a regular file of at most
    /// [`MAX_BYTES`], our format and version, then every key (see the module doc).
    pub fn load(dir: &Path) -> Result<Manifest, IndexError> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Err(IndexError::Missing(dir.to_path_buf()));
        }
        let text = column::read_regular(&path, MAX_BYTES, "the cap on manifest size")?;
        // Format and version first, from a pass that skips everything else,
        // so a foreign or future file is named as such rather than as a
        // schema error.
        let probe: Probe = serde_json::from_slice(&text).map_err(|e| IndexError::Foreign {
            path: path.clone(),
            why: match e.classify() {
                serde_json::error::Category::Data => format!("not a JSON object: {e}"),
                _ => format!("not JSON: {e}"),
            },
        })?;
        if probe.format.as_ref().and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(IndexError::Foreign {
                path,
                why: format!("\"format\" is not \"{FORMAT_NAME}\""),
            });
        }
        let version = probe.version.as_ref().and_then(|x| x.as_u64()).unwrap_or(0);
        if version != FORMAT_VERSION as u64 {
            return Err(IndexError::Version {
                path,
                found: version.min(u32::MAX as u64) as u32,
                supported: FORMAT_VERSION,
            });
        }
        let m: Manifest =
            serde_json::from_slice(&text).map_err(|e| IndexError::corrupt(&path, e.to_string()))?;
        m.validate()
            .map_err(|why| IndexError::corrupt(&path, why))?;
        Ok(m)
    }

    /// Values the schema's types allow but the index cannot mean.
    fn validate(&self) -> Result<(), String> {
        if let Some(d) = &self.decode {
            let canonical = DecodeMode::parse_label(d)
                .filter(|&(_, side)| side > 0)
                .map(|(mode, side)| {
                    let limits = Limits {
                        fast_min_side: side,
                        ..Limits::default()
                    };
                    mode.label(&limits)
                });
            if canonical.as_deref() != Some(d.as_str()) {
                return Err(format!(
                    "\"decode\": {d:?} is not a decode setting (\"exact\" or \"fast:<min side in pixels>\")"
                ));
            }
        }
        if let Some(e) = &self.embedding {
            if !e
                .split_once('@')
                .is_some_and(|(n, f)| !n.is_empty() && !f.is_empty())
            {
                return Err(format!(
                    "\"embedding\": {e:?} does not name a model (\"name@fingerprint\")"
                ));
            }
        }
        let mut ids: Vec<u64> = self.segments.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.segments.len() {
            return Err("\"segments\": a segment is listed twice".into());
        }
        Ok(())
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

/// Format and version, whatever else the file holds.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    format: Option<serde_json::Value>,
    #[serde(default)]
    version: Option<serde_json::Value>,
}

/// Reads the value of `key` into `slot`: a repeated key or a value that does
/// not parse is an error naming the key.
fn take<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    key: &str,
    slot: &mut Option<T>,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::custom(format!("key \"{key}\" appears twice")));
    }
    *slot = Some(
        map.next_value()
            .map_err(|e| de::Error::custom(format!("\"{key}\": {e}")))?,
    );
    Ok(())
}

fn unknown<E: de::Error>(key: &str, known: &[&str]) -> E {
    E::custom(format!(
        "unknown key \"{key}\" (the schema has \"{}\")",
        known.join("\", \"")
    ))
}

fn required<T, E: de::Error>(v: Option<T>, key: &str) -> Result<T, E> {
    v.ok_or_else(|| E::custom(format!("missing key \"{key}\"")))
}

const MANIFEST_KEYS: &[&str] = &[
    "format",
    "version",
    "generation",
    "segments",
    "writer",
    "decode",
    "embedding",
    "keypoints",
    "profile",
    "embedding_precisions",
];

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Manifest, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Manifest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a lookalike index manifest (JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Manifest, A::Error> {
                let (mut format, mut version, mut generation, mut segments) =
                    (None, None, None, None);
                let (mut writer, mut decode, mut embedding, mut keypoints) =
                    (None, None, None, None);
                let (mut profile, mut precisions) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "format" => take(&mut map, &key, &mut format)?,
                        "version" => take(&mut map, &key, &mut version)?,
                        "generation" => take(&mut map, &key, &mut generation)?,
                        "segments" => take(&mut map, &key, &mut segments)?,
                        "writer" => take(&mut map, &key, &mut writer)?,
                        "decode" => take(&mut map, &key, &mut decode)?,
                        "embedding" => take(&mut map, &key, &mut embedding)?,
                        "keypoints" => take(&mut map, &key, &mut keypoints)?,
                        "profile" => take(&mut map, &key, &mut profile)?,
                        "embedding_precisions" => take(&mut map, &key, &mut precisions)?,
                        _ => return Err(unknown(&key, MANIFEST_KEYS)),
                    }
                }
                Ok(Manifest {
                    format: required(format, "format")?,
                    version: required(version, "version")?,
                    generation: required(generation, "generation")?,
                    segments: required(segments, "segments")?,
                    writer: required(writer, "writer")?,
                    decode: decode.flatten(),
                    embedding: embedding.flatten(),
                    keypoints: keypoints.unwrap_or(true),
                    profile: profile.unwrap_or_default(),
                    embedding_precisions: precisions.unwrap_or_default(),
                })
            }
        }
        d.deserialize_map(V)
    }
}

const SEGMENT_KEYS: &[&str] = &["id", "records", "path_bytes"];

impl<'de> Deserialize<'de> for SegmentInfo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SegmentInfo, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SegmentInfo;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a segment entry (JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SegmentInfo, A::Error> {
                let (mut id, mut records, mut path_bytes) = (None, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => take(&mut map, &key, &mut id)?,
                        "records" => take(&mut map, &key, &mut records)?,
                        "path_bytes" => take(&mut map, &key, &mut path_bytes)?,
                        _ => return Err(unknown(&key, SEGMENT_KEYS)),
                    }
                }
                Ok(SegmentInfo {
                    id: required(id, "id")?,
                    records: required(records, "records")?,
                    path_bytes: required(path_bytes, "path_bytes")?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// `"lookalike <version>"`, recorded as the manifest's `writer`.
pub fn writer_id() -> String {
    format!("lookalike {}", env!("CARGO_PKG_VERSION"))
}

/// fsync a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IndexError::io(dir, e))
}

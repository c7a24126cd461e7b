//! The compatibility policy: what an index records about how its
//! descriptors were made, and which later runs may add to it. Hashes of
//! images decoded differently, or embeddings of another model, would not be
//! comparable with the ones already stored, so such a run is refused with a
//! reason rather than allowed to mix them.

use std::path::Path;

use super::manifest::Profile;
use super::{IndexWriter, Manifest};
use crate::error::IndexError;
use crate::ingest::{DecodeMode, Limits};

/// How a run of `index` would describe images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSettings {
    /// The decode label (`DecodeMode::label`), e.g. "fast:512" or "exact".
    pub decode: String,
    /// The embedding model's label ("name@fingerprint"), `None` for hash-only.
    pub embedding: Option<String>,
    /// Whether to keep keypoints. Only a new index takes this; an existing
    /// one keeps its own setting (asking to drop them is refused).
    pub keypoints: bool,
    /// What each image keeps (`--profile`). A new index takes it (None:
    /// full); an existing one keeps its own, and asking for the other is
    /// refused.
    pub profile: Option<Profile>,
}

impl IndexWriter {
    /// Checks `s` against what the index records and records it: the
    /// decode setting and the embedding model must be the index's (a new
    /// index takes them). Returns whether keypoints are kept: the index's
    /// setting unless this is its first run, since turning them off later
    /// would leave the older images verifiable and the newer not.
    pub fn apply_settings(&mut self, s: &IndexSettings) -> Result<bool, IndexError> {
        let dir = self.dir().display().to_string();
        if let Some(r) = self.decode_label().filter(|r| *r != s.decode) {
            return Err(IndexError::Incompatible(format!(
                "index {dir} was built with decode setting '{r}', this run asks for '{}': hashes would not be comparable. \
                 Re-run without --exact/--thumb-side, or build a new index.",
                s.decode
            )));
        }
        if self.committed_records() > 0 && self.embedding_label() != s.embedding.as_deref() {
            let none = "none (--hash-only)";
            return Err(IndexError::Incompatible(format!(
                "index {dir} holds embeddings of {}, this run would add {}: they would not be comparable. \
                 Re-run {}, or build a new index.",
                self.embedding_label().unwrap_or(none),
                s.embedding.as_deref().unwrap_or(none),
                if s.embedding.is_none() {
                    "without --hash-only"
                } else {
                    "with --hash-only"
                }
            )));
        }
        let keypoints = if self.committed_records() == 0 {
            s.keypoints
        } else if !s.keypoints && self.keypoints() {
            return Err(IndexError::Incompatible(format!(
                "index {dir} keeps keypoints, --no-keypoints would leave the images added now without them. \
                 Re-run without --no-keypoints, or build a new index."
            )));
        } else {
            self.keypoints()
        };
        let profile = match (self.committed_records(), s.profile) {
            (0, p) => p.unwrap_or_default(),
            (_, Some(p)) if p != self.profile() => {
                return Err(IndexError::Incompatible(format!(
                    "index {dir} has the {} profile, this run asks for --profile {}: one index keeps one profile. \
                     Re-run without --profile, or build a new index.",
                    self.profile().name(),
                    p.name()
                )))
            }
            _ => self.profile(),
        };
        self.set_decode_label(s.decode.clone());
        self.set_embedding_label(s.embedding.clone());
        self.set_keypoints(keypoints);
        self.set_profile(profile);
        Ok(keypoints)
    }
}

/// The decode setting of an index whose manifest has none (written before
/// the key existed): fast at the default size.
pub(crate) fn default_decode() -> String {
    DecodeMode::Fast.label(&Limits::default())
}

impl IndexSettings {
    /// How the index with manifest `m` was built. An index whose manifest
    /// predates the `decode` key was decoded the default way (fast:512).
    pub fn of(m: &Manifest) -> IndexSettings {
        IndexSettings {
            decode: m.decode.clone().unwrap_or_else(default_decode),
            embedding: m.embedding.clone(),
            keypoints: m.keypoints,
            profile: Some(m.profile),
        }
    }

    /// Why the index at `path`, built as `other`, cannot be merged with
    /// `what` (an index or input described in words), built as `self`:
    /// another decode setting, embedding model or keypoint setting would
    /// mix incomparable descriptors. None when they agree.
    pub fn merge_conflict(
        &self,
        what: &str,
        other: &IndexSettings,
        path: &Path,
    ) -> Option<IndexError> {
        let path = path.display();
        let none = "none (--hash-only)";
        let (why, mine, theirs, hint) = if self.decode != other.decode {
            (
                "decode setting",
                self.decode.clone(),
                other.decode.clone(),
                "hashes would not be comparable",
            )
        } else if self.embedding != other.embedding {
            (
                "embedding model",
                self.embedding.clone().unwrap_or(none.into()),
                other.embedding.clone().unwrap_or(none.into()),
                "embeddings would not be comparable",
            )
        } else if self.profile.unwrap_or_default() != other.profile.unwrap_or_default() {
            let name = |p: Option<Profile>| p.unwrap_or_default().name().to_string();
            (
                "profile",
                name(self.profile),
                name(other.profile),
                "one index keeps one profile",
            )
        } else if self.keypoints != other.keypoints {
            let kp = |k: bool| if k { "kept" } else { "none (--no-keypoints)" }.to_string();
            (
                "keypoints",
                kp(self.keypoints),
                kp(other.keypoints),
                "some images could not be verified",
            )
        } else {
            return None;
        };
        Some(IndexError::Incompatible(format!(
            "cannot merge {path}: its {why} is '{theirs}', {what} has '{mine}': {hint}. \
             Merge only indexes built with the same settings (rebuild that part with them)."
        )))
    }
}

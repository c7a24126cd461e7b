//! Errors that reach the user. Index problems name the file and what is wrong
//! so a corrupt or foreign index is never a panic.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: not a lookalike index ({why})")]
    Foreign { path: PathBuf, why: String },
    #[error("{path}: index format version {found} is not supported (this build reads version {supported})")]
    Version {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: index file is corrupt: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no index at {0} (build one with `lookalike index DIR --index {0}`)")]
    Missing(PathBuf),
    /// A run that would mix incomparable descriptors into an index.
    #[error("{0}")]
    Incompatible(String),
    /// The engine describing images failed (nothing of that batch was recorded).
    #[error("describing images failed: {0}")]
    Engine(EngineError),
}

/// An engine failure (a lost GPU device, a readback that never came): an
/// error value, never a panic.
#[derive(Debug, thiserror::Error)]
#[error("{engine}: {why}")]
pub struct EngineError {
    /// The engine that failed, as `Engine::label` names it.
    pub engine: String,
    /// What went wrong.
    pub why: String,
}

impl IndexError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn corrupt(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        IndexError::Corrupt {
            path: path.into(),
            why: why.into(),
        }
    }
}

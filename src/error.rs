//! Errors that reach the user. Index problems name the file and what is wrong
//! so a corrupt or foreign index is never a panic.
//!
//! Every message is complete on its own: an `IndexError` never also returns
//! the `io::Error` it quotes from `source()`, because the CLI prints the
//! whole chain (`{:#}`) and the reason would be printed twice
//! ("No space left on device (os error 28): No space left on device (os error 28)").

use std::path::PathBuf;

/// Why an index could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Not an index this program wrote (wrong magic, not JSON, wrong format name).
    #[error("{path}: not a lookalike index ({why})")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// An index of another format version.
    #[error("{path}: index format version {found} is not supported (this build reads version {supported})")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it has.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A damaged, truncated or inconsistent file, or one that is not a
    /// regular file within its size cap.
    #[error("{path}: index file is corrupt: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// An I/O error on the file. The message quotes the `io::Error`; it is not
    /// a `source()` as well (see the module doc).
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error, quoted in the message.
        error: std::io::Error,
    },
    /// No index at that path.
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
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            error,
        }
    }
    /// A damaged or inconsistent file: `why` says what is wrong.
    pub fn corrupt(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        IndexError::Corrupt {
            path: path.into(),
            why: why.into(),
        }
    }
}

/// An error and its causes joined by ": ", as the CLI prints it after
/// "error: " and the Python package raises it. A cause whose text is
/// already in the message is left out (error types that quote their source
/// and also return it would print "Permission denied (os error 13):
/// Permission denied (os error 13)").
pub fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if s.is_empty() || text.contains(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    text
}

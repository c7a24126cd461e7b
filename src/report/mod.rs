//! Output for people (tables) and pipelines (JSON, CSV). Results go to
//! stdout; progress and diagnostics go to stderr.

pub mod csv;
pub mod dedup;
pub mod hashes;
pub mod html;
pub mod json;

pub mod table;
pub mod thumbs;

pub use crate::ingest::names::{self, path_text, terminal};

/// The folder that printed paths are shown relative to, when inside it: the
/// CLI sets its working directory once at start ([`set_display_base`]);
/// library callers that never set it get paths as given.
static DISPLAY_BASE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Shows printed paths relative to `base` (the CLI's working directory).
/// Only the first call counts.
pub fn set_display_base(base: std::path::PathBuf) {
    let _ = DISPLAY_BASE.set(base);
}

/// The folder set by [`set_display_base`], if any.
pub fn display_base() -> Option<&'static std::path::Path> {
    DISPLAY_BASE.get().map(|p| p.as_path())
}

/// How terminal output is painted.
pub struct Style {
    /// Whether to emit ANSI colour codes.
    pub color: bool,
}

impl Style {
    /// Wraps `s` in the SGR colour `code` when colour is on.
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    /// Bold.
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    /// Bold red (exact copies, errors).
    pub fn red(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    /// Yellow (near duplicates).
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    /// Green (a clean result).
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    /// Dim (secondary details).
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

//! Output for people (tables) and pipelines (JSON, CSV). Results go to
//! stdout; progress and diagnostics go to stderr.

pub mod csv;
pub mod dedup;
pub mod html;
pub mod json;

pub mod table;
pub mod thumbs;

pub use crate::ingest::names::{self, path_text, terminal};

/// Whether to colour output: only on a terminal, and never with NO_COLOR set
/// (https://no-color.org).
pub fn use_color(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

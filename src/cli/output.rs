//! Small pieces of printed output: counts with the right plural, durations,
//! sizes on disk, and `check --json-lines`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::pipeline::check::demote_below;
use crate::search::result::QueryResult;

/// "1 image", "2 images".
pub(crate) fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// "0.4 s", "12.3 s", "3 min 05 s".
pub(crate) fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = s.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// "812 B", "4.6 KB", "2.1 MB", "1.3 GB" (powers of 1000).
pub(crate) fn bytes(n: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Bytes of the regular files under `dir` (not following links).
pub(crate) fn disk_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// `check --json-lines`: one compact JSON object per image on stdout,
/// flushed as it comes. A reader that goes away (`| head`) stops the
/// output, not the run.
pub(crate) struct JsonLines {
    /// `--min-score`, when it raises the bar.
    min_score: Option<f64>,
    /// The first write error other than a closed pipe.
    error: Option<std::io::Error>,
    /// The reader went away: write nothing more.
    closed: bool,
}

impl JsonLines {
    pub(crate) fn new(min_score: Option<f64>) -> JsonLines {
        JsonLines {
            min_score: min_score.filter(|&s| s > crate::search::verdict::match_score()),
            error: None,
            closed: false,
        }
    }

    /// Writes one image's result (with `--min-score` applied).
    pub(crate) fn write(&mut self, q: &QueryResult) {
        if self.closed || self.error.is_some() {
            return;
        }
        let mut owned;
        let q = match self.min_score {
            Some(s) => {
                owned = q.clone();
                demote_below(&mut owned, s);
                &owned
            }
            None => q,
        };
        let mut out = std::io::stdout().lock();
        let r = crate::report::json::write_compact(&mut out, q)
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
            .and_then(|_| out.flush());
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.closed = true,
            Err(e) => self.error = Some(e),
            Ok(()) => {}
        }
    }

    /// The first write error, if any.
    pub(crate) fn finish(self) -> std::io::Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_durations_sizes() {
        assert_eq!(count(1, "image"), "1 image");
        assert_eq!(count(0, "segment"), "0 segments");
        assert_eq!(seconds(Duration::from_millis(3250)), "3.2 s");
        assert_eq!(seconds(Duration::from_secs(185)), "3 min 05 s");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(2_150_000), "2.1 MB");
    }
}

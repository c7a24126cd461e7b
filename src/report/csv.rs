//! CSV writers. Column sets are stable: new columns are only ever appended.
//! File names are written as their raw bytes (see `report::names`): read a
//! CSV back with `encoding="utf-8", errors="surrogateescape"` in Python to
//! get names that are not UTF-8 exactly.

use std::io::{self, Write};

use super::names;
use crate::search::result::CheckReport;

/// One CSV field: quoted when it holds a separator, quote or line break.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per (query, candidate): the format `score.py` and spreadsheets read.
pub const CHECK_HEADER: &str = "query,candidate,score,rank,verdict,pdq_distance,phash_distance,orientation,query_quality,candidate_quality,trimmed,corpus_copies,evidence,keypoint_matches,inliers,similarity,region";

/// Writes one line (a newline is added) whose name text fields become the
/// names' raw bytes.
pub fn write_line(w: &mut dyn Write, line: &str) -> io::Result<()> {
    w.write_all(&names::text_bytes(line))?;
    w.write_all(b"\n")
}

/// `check` / `query` results: [`CHECK_HEADER`], then one row per match.
pub fn write_check(w: &mut dyn Write, r: &CheckReport) -> io::Result<()> {
    writeln!(w, "{CHECK_HEADER}")?;
    for q in &r.results {
        for m in &q.matches {
            let line = format!(
                "{},{},{:.6},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                field(&q.query),
                field(&m.candidate),
                m.score,
                m.rank,
                m.verdict.as_str(),
                m.pdq_distance,
                m.phash_distance,
                m.orientation,
                q.quality,
                m.candidate_quality,
                m.trimmed,
                m.corpus_copies.map(|c| c.to_string()).unwrap_or_default(),
                m.evidence,
                m.keypoint_matches
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                m.inliers.map(|c| c.to_string()).unwrap_or_default(),
                m.similarity.map(|c| format!("{c:.4}")).unwrap_or_default(),
                m.region
                    .map(|r| format!("{:.4} {:.4} {:.4} {:.4}", r.x, r.y, r.w, r.h))
                    .unwrap_or_default(),
            );
            write_line(w, &line)?;
        }
    }
    Ok(())
}

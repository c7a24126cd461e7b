//! CSV writers. Column sets are stable: new columns are only ever appended.

use std::io::{self, Write};

use crate::search::result::CheckReport;

pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per (query, candidate): the format `score.py` and spreadsheets read.
pub const CHECK_HEADER: &str = "query,candidate,score,rank,verdict,pdq_distance,phash_distance,orientation,query_quality,candidate_quality,trimmed,corpus_copies,evidence,keypoint_matches,inliers,similarity";

pub fn write_check(w: &mut dyn Write, r: &CheckReport) -> io::Result<()> {
    writeln!(w, "{CHECK_HEADER}")?;
    for q in &r.results {
        for m in &q.matches {
            writeln!(
                w,
                "{},{},{:.6},{},{},{},{},{},{},{},{},{},{},{},{},{}",
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
            )?;
        }
    }
    Ok(())
}

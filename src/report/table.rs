//! Human-readable tables for the terminal.

use std::io::{self, Write};

use super::Style;
use crate::search::check::{CheckReport, QueryResult};
use crate::search::Verdict;

fn verdict_cell(st: &Style, v: Verdict) -> String {
    let s = format!("{:<14}", v.as_str());
    match v {
        Verdict::Exact => st.red(&s),
        Verdict::NearDuplicate => st.yellow(&s),
        Verdict::None => st.dim(&s),
    }
}

/// `check`: every flagged image with its best training match, then a summary.
pub fn write_check(w: &mut dyn Write, r: &CheckReport, st: &Style, show_all: bool) -> io::Result<()> {
    let shown: Vec<&QueryResult> = r.results.iter().filter(|q| show_all || q.verdict.is_match()).collect();
    if !shown.is_empty() {
        writeln!(w, "{}", st.bold(&format!("{:<14}  {:>5}  {:>3}  {:>5}  {:<8}  {:<40}  {}", "VERDICT", "SCORE", "PDQ", "PHASH", "TURNED", "GENERATED IMAGE", "TRAINING MATCH")))?;
    }
    for q in shown {
        match q.matches.first() {
            Some(m) => writeln!(
                w,
                "{}  {:>5.3}  {:>3}  {:>5}  {:<8}  {:<40}  {}",
                verdict_cell(st, q.verdict),
                m.score,
                m.pdq_distance,
                m.phash_distance,
                m.orientation,
                q.query,
                m.candidate
            )?,
            None => writeln!(w, "{}  {:>5}  {:>3}  {:>5}  {:<8}  {:<40}  -", verdict_cell(st, q.verdict), "-", "-", "-", "-", q.query)?,
        }
    }
    writeln!(w)?;
    write_summary(w, r, st)
}

pub fn write_summary(w: &mut dyn Write, r: &CheckReport, st: &Style) -> io::Result<()> {
    let rate = format!("{:.1} %", 100.0 * r.replication_rate);
    let rate = if r.matched > 0 { st.red(&rate) } else { st.green(&rate) };
    writeln!(
        w,
        "checked {} images against {} indexed: {} matched ({} exact, {} near-duplicate); replication rate {}",
        r.images_checked, r.index_records, r.matched, r.exact, r.near_duplicate, rate
    )?;
    if !r.skipped.is_empty() {
        writeln!(w, "skipped {} files:", r.skipped.len())?;
        for s in r.skipped.iter().take(20) {
            writeln!(w, "  {}: {}", s.path, s.reason)?;
        }
        if r.skipped.len() > 20 {
            writeln!(w, "  ... and {} more (see --json)", r.skipped.len() - 20)?;
        }
    }
    Ok(())
}

/// `query`: all top-k candidates of one image.
pub fn write_query(w: &mut dyn Write, q: &QueryResult, st: &Style) -> io::Result<()> {
    writeln!(w, "{} {}  (PDQ {} quality {}, pHash {})", st.bold("query"), q.query, q.pdq, q.quality, q.phash)?;
    if q.matches.is_empty() {
        return writeln!(w, "the index is empty");
    }
    writeln!(w, "{}", st.bold(&format!("{:>4}  {:<14}  {:>5}  {:>3}  {:>5}  {:<8}  {}", "RANK", "VERDICT", "SCORE", "PDQ", "PHASH", "TURNED", "TRAINING IMAGE")))?;
    for m in &q.matches {
        writeln!(w, "{:>4}  {}  {:>5.3}  {:>3}  {:>5}  {:<8}  {}", m.rank, verdict_cell(st, m.verdict), m.score, m.pdq_distance, m.phash_distance, m.orientation, m.candidate)?;
    }
    writeln!(w, "verdict: {}", q.verdict.as_str())
}

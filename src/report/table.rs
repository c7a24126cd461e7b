//! Human-readable tables for the terminal.

use std::io::{self, Write};

use super::{names, Style};
use crate::search::result::{CheckReport, QueryResult};
use crate::search::Verdict;

fn verdict_cell(st: &Style, v: Verdict) -> String {
    let s = format!("{:<14}", v.as_str());
    match v {
        Verdict::Exact => st.red(&s),
        Verdict::NearDuplicate => st.yellow(&s),
        Verdict::None => st.dim(&s),
    }
}

/// A name text (`report::names`) as the user would type it: relative to the
/// working directory when inside it, control characters and bytes that are
/// not UTF-8 escaped (`\x1b`, `\xff`) so it is safe to print.
pub fn display_path(p: &str) -> String {
    let path = names::text_path(p);
    let shown = super::display_base().and_then(|c| path.strip_prefix(c).ok().map(names::path_text));
    names::terminal(shown.as_deref().unwrap_or(p)).into_owned()
}

/// `check`: every flagged image with its best training match, then a summary.
pub fn write_check(
    w: &mut dyn Write,
    r: &CheckReport,
    st: &Style,
    show_all: bool,
) -> io::Result<()> {
    let shown: Vec<&QueryResult> = r
        .results
        .iter()
        .filter(|q| show_all || q.verdict.is_match())
        .collect();
    let qw = shown
        .iter()
        .map(|q| display_path(&q.query).chars().count())
        .max()
        .unwrap_or(0)
        .max(15);
    if !shown.is_empty() {
        writeln!(
            w,
            "{}",
            st.bold(&format!(
                "{:<14}  {:>5}  {:>3}  {:>5}  {:>7}  {:>5}  {:<13}  {:<qw$}  {}",
                "VERDICT",
                "SCORE",
                "PDQ",
                "PHASH",
                "INLIERS",
                "SIM",
                "TURNED",
                "GENERATED IMAGE",
                "TRAINING MATCH"
            ))
        )?;
    }
    for q in shown {
        let query = display_path(&q.query);
        match q.matches.first() {
            Some(m) => writeln!(
                w,
                "{}  {:>5.3}  {:>3}  {:>5}  {:>7}  {:>5}  {:<13}  {:<qw$}  {}{}",
                verdict_cell(st, q.verdict),
                m.score,
                m.pdq_distance,
                m.phash_distance,
                inliers(m),
                sim(m),
                m.orientation,
                query,
                display_path(&m.candidate),
                region_note(m)
            )?,
            None => writeln!(
                w,
                "{}  {:>5}  {:>3}  {:>5}  {:>7}  {:>5}  {:<13}  {:<qw$}  -",
                verdict_cell(st, q.verdict),
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                query
            )?,
        }
    }
    writeln!(w)?;
    write_summary(w, r, st)
}

/// Where in the query the match lies when a region of it matched (a
/// screenshot, a collage): its size and top-left corner as shares of the
/// query's, e.g. "  [region 33%x33% at 33%,33%]"; empty for the whole image.
fn region_note(m: &crate::search::result::MatchOut) -> String {
    let pct = |v: f32| (v * 100.0).round() as i32;
    m.region.map_or_else(String::new, |r| {
        format!(
            "  [region {}%x{}% at {}%,{}%]",
            pct(r.w),
            pct(r.h),
            pct(r.x),
            pct(r.y)
        )
    })
}

/// Verified keypoint inliers, "-" when the candidate was not verified.
fn inliers(m: &crate::search::result::MatchOut) -> String {
    m.inliers
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into())
}

/// Embedding cosine similarity (whitened segments': on the raw scale),
/// "-" for a hash-only check.
fn sim(m: &crate::search::result::MatchOut) -> String {
    m.similarity
        .map(|s| format!("{s:.3}"))
        .unwrap_or_else(|| "-".into())
}

/// "1 image", "2 images".
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Writes the closing lines of a check: counts, replication rate and the
/// first skipped files.
pub fn write_summary(w: &mut dyn Write, r: &CheckReport, st: &Style) -> io::Result<()> {
    let rate = format!("{:.1} %", 100.0 * r.replication_rate);
    let rate = if r.matched > 0 {
        st.red(&rate)
    } else {
        st.green(&rate)
    };
    writeln!(
        w,
        "checked {} against {} indexed: {} matched ({} exact, {} near-duplicate); replication rate {}",
        plural(r.images_checked, "image"), r.index_records, r.matched, r.exact, r.near_duplicate, rate
    )?;
    if !r.skipped.is_empty() {
        writeln!(w, "skipped {}:", plural(r.skipped.len(), "file"))?;
        for s in r.skipped.iter().take(20) {
            writeln!(
                w,
                "  {}: {}",
                names::terminal(&s.path),
                names::terminal(&s.reason)
            )?;
        }
        if r.skipped.len() > 20 {
            writeln!(w, "  ... and {} more (see --json)", r.skipped.len() - 20)?;
        }
    }
    Ok(())
}

/// `query`: all top-k candidates of one image.
pub fn write_query(w: &mut dyn Write, q: &QueryResult, st: &Style) -> io::Result<()> {
    writeln!(
        w,
        "{} {}  (PDQ {} quality {}, pHash {})",
        st.bold("query"),
        display_path(&q.query),
        q.pdq,
        q.quality,
        q.phash
    )?;
    if q.matches.is_empty() {
        return writeln!(w, "the index is empty");
    }
    writeln!(
        w,
        "{}",
        st.bold(&format!(
            "{:>4}  {:<14}  {:>5}  {:>3}  {:>5}  {:>7}  {:>5}  {:<13}  {}",
            "RANK",
            "VERDICT",
            "SCORE",
            "PDQ",
            "PHASH",
            "INLIERS",
            "SIM",
            "TURNED",
            "TRAINING IMAGE"
        ))
    )?;
    for m in &q.matches {
        writeln!(
            w,
            "{:>4}  {}  {:>5.3}  {:>3}  {:>5}  {:>7}  {:>5}  {:<13}  {}{}",
            m.rank,
            verdict_cell(st, m.verdict),
            m.score,
            m.pdq_distance,
            m.phash_distance,
            inliers(m),
            sim(m),
            m.orientation,
            display_path(&m.candidate),
            region_note(m)
        )?;
    }
    writeln!(w, "verdict: {}", q.verdict.as_str())
}

//! `dedup` as a table (people) and CSV (pipelines). CSV columns are stable:
//! new ones are only ever appended.

use std::io::{self, Write};

use super::csv::{field, write_line};
use super::table::display_path;
use super::Style;
use crate::search::dedup::DedupReport;

/// Header row of the `dedup --csv` output.
pub const DEDUP_HEADER: &str =
    "group,path,distance,phash_distance,same_bytes,representative,group_size";

/// One row per group member; `distance` is the PDQ distance to the group's representative.
pub fn write_csv(w: &mut dyn Write, r: &DedupReport) -> io::Result<()> {
    writeln!(w, "{DEDUP_HEADER}")?;
    for g in &r.groups {
        for m in &g.members {
            let line = format!(
                "{},{},{},{},{},{},{}",
                g.group,
                field(&m.path),
                m.distance,
                m.phash_distance,
                m.same_bytes,
                m.representative,
                g.size
            );
            write_line(w, &line)?;
        }
    }
    Ok(())
}

/// Writes every group and its members for the terminal, then the summary.
pub fn write_table(w: &mut dyn Write, r: &DedupReport, st: &Style) -> io::Result<()> {
    for g in &r.groups {
        writeln!(
            w,
            "{}",
            st.bold(&format!(
                "group {}: {} images, max pairwise PDQ distance {}",
                g.group, g.size, g.max_pairwise_distance
            ))
        )?;
        for m in &g.members {
            let what = if m.representative {
                st.dim("representative")
            } else if m.same_bytes {
                "same bytes".to_string()
            } else {
                format!("PDQ {:>2}  pHash {:>2}", m.distance, m.phash_distance)
            };
            writeln!(w, "  {:<18}  {}", what, display_path(&m.path))?;
        }
    }
    if !r.groups.is_empty() {
        writeln!(w)?;
    }
    write_summary(w, r)
}

/// Writes the one-line summary of a dedup run.
pub fn write_summary(w: &mut dyn Write, r: &DedupReport) -> io::Result<()> {
    writeln!(
        w,
        "{} images in {}: {} near-duplicate groups holding {} images ({} redundant); PDQ ≤ {}, clique grouping, upright only ({:.1} s)",
        r.index_records, super::terminal(&r.index), r.group_count, r.images_in_groups, r.redundant_images, r.thresholds.max_pdq_distance, r.seconds
    )
}

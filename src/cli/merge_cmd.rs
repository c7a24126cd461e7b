//! `lookalike merge OUT INDEX...`: resolve the names, call
//! [`crate::pipeline::merge_indexes`], print what it did.

use std::io::Write;

use anyhow::{bail, Result};

use super::args::MergeArgs;
use super::{index_name, lookalike_home, output, EXIT_OK};
use crate::error::IndexError;
use crate::report;

pub(crate) fn run(a: MergeArgs) -> Result<i32> {
    let home = lookalike_home();
    let out = index_name::resolve(&a.out, home.as_deref())?;
    let inputs = a
        .inputs
        .iter()
        .map(|i| index_name::resolve(i, home.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    let dirs: Vec<_> = inputs.iter().map(|r| r.dir().to_path_buf()).collect();
    let s = match crate::pipeline::merge_indexes(out.dir(), &dirs, None) {
        Ok(s) => s,
        // In the words `check -i` uses for an index that is not there.
        Err(IndexError::Missing(p)) => match inputs.iter().find(|r| r.dir() == p) {
            Some(r) => bail!(index_name::missing(r)),
            None => bail!(IndexError::Missing(p)),
        },
        Err(e) => return Err(e.into()),
    };
    let mut o = std::io::stdout().lock();
    if a.json {
        report::json::write_pretty(&mut o, &s)?;
        writeln!(o)?;
        return Ok(EXIT_OK);
    }
    writeln!(
        o,
        "merged {} into {}: {} ({}, {} flagged) attached, \
         {} images searchable in {} ({:.1} s)",
        match s.inputs.len() {
            1 => "1 index".to_string(),
            n => format!("{n} indexes"),
        },
        out.dir().display(),
        output::count(s.segments_attached as u64, "segment"),
        output::count(s.records, "record"),
        output::count(s.duplicates_flagged, "exact duplicate"),
        s.live_images,
        output::count(s.segments as u64, "segment"),
        s.seconds
    )?;
    if s.segments > 1 {
        writeln!(
            o,
            "segments are kept as they were; `lookalike compact -i {}` merges them into one",
            out.dir().display()
        )?;
    }
    Ok(EXIT_OK)
}

//! The evidence outputs: `check --report` and the `dedup` command.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::args::{CheckArgs, DedupArgs};
use super::{open_index, stdout_style, EXIT_OK};
use crate::ingest::Limits;
use crate::report::{self, html};
use crate::search::dedup;
use crate::search::result::CheckReport;

pub fn check_report(
    path: &Path,
    r: &CheckReport,
    a: &CheckArgs,
    decode: String,
    limits: Limits,
) -> Result<()> {
    let o = html::HtmlOptions {
        limit: a.report.report_limit,
        limits,
        decode,
        top_k: a.top_k,
        link_base: html::link_base(path),
    };
    html::save(path, |w| html::write_check(w, r, &o))
        .with_context(|| format!("writing report {}", path.display()))?;
    eprintln!("report written to {}", path.display());
    Ok(())
}

pub fn run(a: DedupArgs) -> Result<i32> {
    if let Some(path) = &a.report.report {
        super::inputs::writable_output(path)?;
    }
    let idx = open_index(&a.sel)?;
    let r = dedup::dedup(&idx, a.max_distance);
    // Results first: a report that fails to write late must not lose them.
    super::ignore_broken_pipe((|| {
        let mut out = std::io::stdout().lock();
        if a.out.json {
            report::json::write_pretty(&mut out, &r)?;
            writeln!(out)?;
        } else if a.out.csv {
            report::dedup::write_csv(&mut out, &r)?;
        } else {
            report::dedup::write_table(&mut out, &r, &stdout_style())?;
        }
        out.flush()?;
        Ok(())
    })())?;
    if a.out.json || a.out.csv {
        report::dedup::write_summary(&mut std::io::stderr().lock(), &r)?;
    }
    if let Some(path) = &a.report.report {
        let o = html::HtmlOptions {
            limit: a.report.report_limit,
            limits: Limits::default(),
            decode: idx
                .manifest()
                .decode
                .clone()
                .unwrap_or_else(|| "fast:512".into()),
            top_k: 0,
            link_base: html::link_base(path),
        };
        html::save(path, |w| html::write_dedup(w, &r, &o))
            .with_context(|| format!("writing report {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(EXIT_OK)
}

//! `lookalike query` (one image) and `lookalike check` (a batch, with the
//! CI gate's exit codes).

use std::io::{IsTerminal, Write};

use anyhow::{bail, Result};

use super::{ann_min_rows, bar_total, decode_setting, engine, hamming_kernel, ignore_broken_pipe};
use super::{args, evidence, inputs, output, progress, sources, EXIT_MATCH, EXIT_OK};
use super::{note_unread, note_unverifiable, open_index, pdq_table_min_rows, same_decode_as_index};
use super::{stdout_style, use_color, use_embeddings};
use crate::pipeline::check::{self, CheckOptions};
use crate::report::{self, Style};

pub(super) fn cmd_query(a: args::QueryArgs, quiet: bool) -> Result<i32> {
    let idx = open_index(&a.sel)?;
    note_unverifiable(&idx, a.no_verify, quiet);
    if !a.image.is_file() {
        bail!("{}: not a file", a.image.display());
    }
    same_decode_as_index(&a.decode, &idx)?;
    let (files, skipped) = check::collect_queries(&a.image);
    let (mode, limits) = decode_setting(&a.decode, idx.manifest().decode.as_deref());
    let opts = CheckOptions {
        top_k: a.top_k,
        verify: !a.no_verify,
        regions: !a.no_regions,
        embed: use_embeddings(&idx, a.hash_only, quiet)?,
        engine: engine(a.device.device, quiet)?,
        ann_min_rows: ann_min_rows(),
        kernel: hamming_kernel(),
        pdq_table_min_rows: pdq_table_min_rows(),
        keypoint_scan: super::keypoint_scan(),
        ..CheckOptions::new(mode, limits)
    };
    let r = check::check(
        &idx,
        files,
        skipped,
        &opts,
        &progress(None, "querying", quiet),
    )?;
    note_unread(&idx, quiet);
    if let Some(s) = r.skipped.first() {
        bail!("{}: {}", report::terminal(&s.path), s.reason);
    }
    let q = &r.results[0];
    ignore_broken_pipe((|| {
        let mut out = std::io::stdout().lock();
        if a.out.json {
            report::json::write_pretty(&mut out, q)?;
            writeln!(out)?;
        } else if a.out.csv {
            report::csv::write_check(&mut out, &r)?;
        } else {
            report::table::write_query(&mut out, q, &stdout_style())?;
        }
        out.flush()?;
        Ok(())
    })())?;
    Ok(if a.fail_on_match && q.verdict.is_match() {
        EXIT_MATCH
    } else {
        EXIT_OK
    })
}

pub(super) fn cmd_check(a: args::CheckArgs, quiet: bool) -> Result<i32> {
    let idx = open_index(&a.sel)?;
    note_unverifiable(&idx, a.no_verify, quiet);
    if let Some(path) = &a.report.report {
        inputs::writable_output(path)?;
    }
    let srcs = sources::inputs(a.dir.as_deref(), a.files_from.as_deref())?;
    let (any, skipped) = inputs::find_images(&srcs);
    let missing = matches!(srcs.paths.as_slice(), [p] if !p.exists());
    if missing || (!any && !a.allow_empty) {
        return Err(inputs::no_images_among(&srcs, &skipped, true));
    }
    same_decode_as_index(&a.decode, &idx)?;
    let engine = engine(a.device.device, quiet)?;
    let (mode, limits) = decode_setting(&a.decode, idx.manifest().decode.as_deref());
    let opts = CheckOptions {
        top_k: a.top_k,
        verify: !a.no_verify,
        regions: !a.no_regions,
        embed: use_embeddings(&idx, a.hash_only, quiet)?,
        engine,
        ann_min_rows: ann_min_rows(),
        kernel: hamming_kernel(),
        pdq_table_min_rows: pdq_table_min_rows(),
        keypoint_scan: super::keypoint_scan(),
        ..CheckOptions::new(mode, limits)
    };
    let pb = progress(bar_total(&srcs, quiet), "checking", quiet);
    let started = std::time::Instant::now();
    let mut lines = a.json_lines.then(|| output::JsonLines::new(a.min_score));
    let mut each = |q: &crate::search::result::QueryResult| {
        if let Some(l) = &mut lines {
            l.write(q)
        }
    };
    let mut r = check::check_inputs(&idx, &srcs, &opts, &pb, &mut each)?;
    pb.finish_and_clear();
    note_unread(&idx, quiet);
    if let Some(s) = a.min_score {
        check::require_score(&mut r, s);
    }
    if let Some(l) = lines {
        l.finish()?;
    }
    // Results first: a report that fails to write late must not lose them.
    ignore_broken_pipe((|| {
        let mut out = std::io::stdout().lock();
        if a.json_lines {
        } else if a.out.json {
            report::json::write_pretty(&mut out, &r)?;
            writeln!(out)?;
        } else if a.out.csv {
            report::csv::write_check(&mut out, &r)?;
        } else {
            report::table::write_check(&mut out, &r, &stdout_style(), a.all)?;
        }
        out.flush()?;
        Ok(())
    })())?;
    if a.out.json || a.out.csv || a.json_lines {
        // Pipelines read stdout; people still want the headline.
        let st = Style {
            color: use_color(std::io::stderr().is_terminal()),
        };
        report::table::write_summary(&mut std::io::stderr().lock(), &r, &st)?;
    } else if !quiet {
        eprintln!(
            "done in {} ({:.1} images/s)",
            output::seconds(started.elapsed()),
            r.images_checked as f64 / started.elapsed().as_secs_f64().max(1e-9)
        );
    }
    if let Some(path) = &a.report.report {
        evidence::check_report(path, &r, &a, mode.label(&limits), limits)?;
    }
    if r.images_checked == 0 && !a.allow_empty {
        return Err(inputs::none_readable(&srcs.label, r.skipped.len()));
    }
    if let Some(max) = a.max_replication_rate {
        if r.replication_rate > max {
            eprintln!(
                "gate failed: replication rate {:.1} % is above --max-replication-rate {:.1} %",
                100.0 * r.replication_rate,
                100.0 * max
            );
            return Ok(EXIT_MATCH);
        }
    }
    Ok(if a.fail_on_match && r.matched > 0 {
        EXIT_MATCH
    } else {
        EXIT_OK
    })
}

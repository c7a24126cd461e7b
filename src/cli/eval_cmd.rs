//! `lookalike eval`: check a labelled folder and print score.py-style metrics.

use std::io::Write;

use anyhow::{Context, Result};

use super::{args::EvalArgs, decode_setting, open_index, progress, stdout_style, EXIT_OK};
use crate::pipeline::check::{self, CheckOptions};
use crate::pipeline::eval::{evaluate, parse_truth, Metrics};
use crate::report;

pub fn run(a: EvalArgs, quiet: bool) -> Result<i32> {
    let text = std::fs::read_to_string(&a.truth)
        .with_context(|| format!("reading {}", a.truth.display()))?;
    let gt = parse_truth(&text).map_err(|e| anyhow::anyhow!("{}: {e}", a.truth.display()))?;
    if let Some(p) = &a.save_csv {
        super::inputs::writable_output(p)?;
    }
    let idx = open_index(&a.sel)?;
    super::note_unverifiable(&idx, a.no_verify, quiet);
    let (files, skipped) = check::collect_queries(&a.dir);
    if files.is_empty() {
        return Err(super::inputs::no_images(&a.dir, &skipped, false));
    }
    super::same_decode_as_index(&a.decode, &idx)?;
    let (mode, limits) = decode_setting(&a.decode, idx.manifest().decode.as_deref());
    let pb = progress(Some(files.len() as u64), "checking", quiet);
    let r = check::check(
        &idx,
        files,
        skipped,
        &CheckOptions {
            top_k: a.top_k,
            verify: !a.no_verify,
            regions: !a.no_regions,
            embed: super::use_embeddings(&idx, a.hash_only, quiet)?,
            engine: super::engine(a.device.device, quiet)?,
            ann_min_rows: super::ann_min_rows(),
            kernel: super::hamming_kernel(),
            pdq_table_min_rows: super::pdq_table_min_rows(),
            keypoint_scan: super::keypoint_scan(),
            ..CheckOptions::new(mode, limits)
        },
        &pb,
    )?;
    pb.finish_and_clear();
    super::note_unread(&idx, quiet);
    if let Some(p) = &a.save_csv {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        );
        report::csv::write_check(&mut f, &r)?;
    }
    let e = evaluate(&r, &gt);
    let mut out = std::io::stdout().lock();
    if a.json {
        report::json::write_pretty(&mut out, &e)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    let st = stdout_style();
    let pct = |x: f64| {
        if x.is_nan() {
            "   -  ".to_string()
        } else {
            format!("{:6.1}", 100.0 * x)
        }
    };
    let num = |x: f64| {
        if x.is_nan() {
            "   -  ".to_string()
        } else {
            format!("{x:6.3}")
        }
    };
    let o = &e.overall;
    writeln!(
        out,
        "{} {} queries ({} positive, {} negative) against {} indexed images",
        st.bold("eval"),
        o.queries,
        o.positives,
        o.negatives,
        r.index_records
    )?;
    writeln!(
        out,
        "recall@1 {}%  recall@10 {}%  uAP {}  R@P90 {}%  R@FA<=1% {}%",
        pct(o.recall_at_1),
        pct(o.recall_at_10),
        num(o.uap),
        pct(o.recall_at_p90),
        pct(e.recall_at_fa1)
    )?;
    if let Some(t) = o.best_threshold {
        writeln!(
            out,
            "best-F1 score threshold {t:.4}: F1 {}%, negatives with a hit {}%",
            pct(o.best_f1),
            pct(o.false_alarm)
        )?;
    }
    writeln!(
        out,
        "verdicts at the default thresholds: precision {}%  recall {}%  false alarms on negatives {}%",
        pct(e.verdict_precision),
        pct(e.verdict_recall),
        pct(e.verdict_false_alarm)
    )?;
    writeln!(
        out,
        "{}",
        st.bold(&format!(
            "{:<20} {:>4} {:>4} {:>6} {:>6} {:>6} {:>6}",
            "transform", "n+", "n-", "R@1", "R@10", "uAP", "FA-"
        ))
    )?;
    for (t, m) in &e.per_transform {
        let Metrics {
            positives,
            negatives,
            recall_at_1,
            recall_at_10,
            uap,
            false_alarm,
            ..
        } = m;
        writeln!(
            out,
            "{:<20} {:>4} {:>4} {} {} {} {}",
            t,
            positives,
            negatives,
            pct(*recall_at_1),
            pct(*recall_at_10),
            num(*uap),
            pct(*false_alarm)
        )?;
    }
    if e.unknown_queries > 0 {
        writeln!(
            out,
            "note: {} checked images are not in the ground truth (ignored)",
            e.unknown_queries
        )?;
    }
    if !r.skipped.is_empty() {
        writeln!(
            out,
            "skipped {} files (see `check --json`)",
            r.skipped.len()
        )?;
    }
    Ok(EXIT_OK)
}

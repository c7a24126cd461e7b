//! `lookalike index`: build or update an index from folders, tar shards
//! and file lists, with a progress bar and a summary.

use std::io::Write;

use anyhow::Result;

use super::{args, bar_total, engine, env_number, index_ref, inputs, output, progress, sources};
use super::{decode_setting, stdout_style, EXIT_OK};
use crate::pipeline::{update_from, BuildOptions};
use crate::report;

pub(super) fn cmd_index(a: args::IndexArgs, quiet: bool) -> Result<i32> {
    let srcs = sources::inputs(a.dir.as_deref(), a.files_from.as_deref())?;
    let (any, _) = inputs::find_images(&srcs);
    let missing = matches!(srcs.paths.as_slice(), [p] if !p.exists());
    if missing || (!any && !a.allow_empty) {
        return Err(inputs::no_images_among(&srcs, &[], true));
    }
    let dir = index_ref(&a.sel)?.dir().to_path_buf();
    // Without --exact/--thumb-side, the decode setting the index records.
    let recorded = crate::index::Manifest::load(&dir)
        .ok()
        .and_then(|m| m.decode);
    let (mode, limits) = decode_setting(&a.decode, recorded.as_deref());
    let opts = BuildOptions {
        mode,
        limits,
        prune: !a.keep_missing,
        engine: engine(a.device.device, quiet)?,
        extras: crate::descriptors::Extras {
            embedding: !a.hash_only,
            keypoints: !a.no_keypoints,
            regions: false,
        },
        batch_size: env_number("LOOKALIKE_BATCH").unwrap_or(crate::ingest::BATCH),
        commit_every: env_number("LOOKALIKE_COMMIT_EVERY"),
        profile: a.profile.map(Into::into),
    };
    let pb = progress(bar_total(&srcs, quiet), "indexing", quiet);
    let started = std::time::Instant::now();
    let stats = update_from(&dir, &srcs, &opts, &pb)?;
    pb.finish_and_clear();
    if !quiet && !a.json {
        eprintln!(
            "done in {}; index size on disk {}",
            output::seconds(started.elapsed()),
            output::bytes(output::disk_size(&dir))
        );
    }
    let log = dir.join(crate::index::skipped::FILE);
    let mut out = std::io::stdout().lock();
    if a.json {
        report::json::write_pretty(&mut out, &stats)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    let st = stdout_style();
    writeln!(
        out,
        "{} {}: {} seen, {} new or changed, {} exact duplicates, {} unchanged, {} removed, {} skipped{}",
        st.bold("indexed"),
        report::terminal(&stats.root),
        output::count(stats.seen, "image"),
        stats.described,
        stats.duplicates,
        stats.unchanged,
        stats.removed,
        stats.skipped.len(),
        // A rerun with nothing new has no rate to speak of.
        if stats.described + stats.duplicates > 0 {
            format!(" ({:.0} images/s)", stats.images_per_second)
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "index {} now holds {}",
        dir.display(),
        output::count(stats.live_records, "image")
    )?;
    if stats.previously_failed > 0 {
        writeln!(
            out,
            "{} unchanged files failed before and were not retried (see {})",
            stats.previously_failed,
            log.display()
        )?;
    }
    if !stats.skipped.is_empty() {
        writeln!(out, "skipped:")?;
        for s in stats.skipped.iter().take(20) {
            writeln!(
                out,
                "  {}: {}",
                report::terminal(&s.path),
                report::terminal(&s.reason)
            )?;
        }
        if stats.skipped.len() > 20 {
            writeln!(out, "  ... and {} more", stats.skipped.len() - 20)?;
        }
        writeln!(out, "all skipped files with reasons: {}", log.display())?;
    }
    Ok(EXIT_OK)
}

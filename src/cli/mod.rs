//! Command implementations: parse, call the library, print. Errors become a
//! message on stderr and exit code 2.

pub mod args;
mod check_cmd;
mod eval_cmd;
mod evidence;
mod index_cmd;
mod index_name;
mod inputs;
mod merge_cmd;
mod output;
mod serve_cmd;
mod sources;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::index::Index;
use crate::ingest::{process_batch, DecodeMode, Limits, Outcome, BATCH};
use crate::pipeline::check;
use crate::report::{self, csv::field, hashes::HashRow, Style};
use args::{Cli, Command, DecodeArgs};

/// Exit code: success, or a check that found no match.
pub const EXIT_OK: i32 = 0;
/// Exit code: a gate failed (`--fail-on-match` and something matched, or
/// a replication rate above `--max-replication-rate`).
pub const EXIT_MATCH: i32 = 1;
/// Exit code: an error (message on stderr).
pub const EXIT_ERROR: i32 = 2;

/// Runs the `lookalike` command line: parses arguments, runs the command and
/// returns the process exit code.
pub fn main() -> i32 {
    quiet_wayland();
    if let Ok(cwd) = std::env::current_dir() {
        report::set_display_base(cwd);
    }
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // Only fails if a pool exists already, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => EXIT_OK, // `lookalike ... | head` is not an error
        Err(e) => {
            let st = Style {
                color: use_color(std::io::stderr().is_terminal()),
            };
            eprintln!("{} {}", st.red("error:"), crate::error::chain_text(&e));
            EXIT_ERROR
        }
    }
}

/// The Vulkan loader's Linux WSI loads libwayland, which prints an "error:"
/// line when XDG_RUNTIME_DIR is unset (servers, CI, containers) although
/// nothing here needs a display. Point it at the temp dir first; done before
/// any thread starts.
fn quiet_wayland() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
}

/// Whether `e` is a write to a closed pipe (`lookalike ... | head`): the
/// reader has what it wanted, so this is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let kind = c
            .downcast_ref::<std::io::Error>()
            .map(|io| io.kind())
            .or_else(|| c.downcast_ref::<serde_json::Error>()?.io_error_kind());
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Output to stdout whose reader went away counts as written: the run goes
/// on to its exit code (a gate still fails on a match under `| head`).
fn ignore_broken_pipe(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        r => r,
    }
}

/// Loads `--model` for a command that computes embeddings (only those: a
/// broken model file must not stop `hash`, `info` or `dedup`).
fn load_model(model: Option<&std::path::Path>) -> Result<()> {
    if let Some(path) = model {
        crate::descriptors::embedding::select(path)?;
    }
    Ok(())
}

fn run(cli: Cli) -> Result<i32> {
    let quiet = cli.quiet;
    let model = cli.model.as_deref();
    if matches!(
        cli.command,
        Command::Index(_) | Command::Query(_) | Command::Check(_) | Command::Eval(_)
    ) {
        load_model(model)?;
    }
    match cli.command {
        Command::Index(a) => index_cmd::cmd_index(a, quiet),
        Command::Query(a) => check_cmd::cmd_query(a, quiet),
        Command::Check(a) => check_cmd::cmd_check(a, quiet),
        Command::Hash(a) => cmd_hash(a, quiet),
        Command::Info(a) => cmd_info(a),
        Command::Compact(a) => cmd_compact(a),
        Command::Merge(a) => merge_cmd::run(a),
        Command::Eval(a) => eval_cmd::run(a, quiet),
        Command::Dedup(a) => evidence::run(a),
        Command::Serve(a) => serve_cmd::run(a, quiet),
        Command::Completions(a) => {
            use clap::CommandFactory;
            let mut out = std::io::stdout().lock();
            clap_complete::generate(a.shell, &mut Cli::command(), "lookalike", &mut out);
            Ok(EXIT_OK)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock())?;
            Ok(EXIT_OK)
        }
    }
}

/// Whether to colour output: only on a terminal, and never with NO_COLOR set
/// (https://no-color.org).
pub(crate) fn use_color(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub(crate) fn stdout_style() -> Style {
    Style {
        color: use_color(std::io::stdout().is_terminal()),
    }
}

/// The decode setting asked for on the command line, if any.
fn requested_decode(d: &DecodeArgs) -> Option<(DecodeMode, u32)> {
    let fast_default = (DecodeMode::Fast, crate::ingest::decode::FAST_MIN_SIDE);
    if d.exact {
        Some((DecodeMode::Exact, crate::ingest::decode::FAST_MIN_SIDE))
    } else {
        d.thumb_side
            .map(|n| (DecodeMode::Fast, n))
            .or(d.fast.then_some(fast_default))
    }
}

/// Queries are decoded as the index was: a setting on the command line
/// that differs from the index's is an error, not a silent override
/// (`--thumb-side 128` against a 512 index hashes queries differently and
/// finds fewer copies).
pub(crate) fn same_decode_as_index(d: &DecodeArgs, idx: &Index) -> Result<()> {
    let (Some(asked), Some(label)) = (requested_decode(d), idx.manifest().decode.as_deref()) else {
        return Ok(());
    };
    let Some(built) = DecodeMode::parse_label(label) else {
        return Ok(());
    };
    if asked.0 == built.0 && (asked.0 == DecodeMode::Exact || asked.1 == built.1) {
        return Ok(());
    }
    let limits = Limits {
        fast_min_side: asked.1,
        ..Limits::default()
    };
    bail!(
        "index {} was built with decode {label}; this run asks for {}, which hashes the \
         queries unlike the corpus and misses copies. Leave out --exact/--fast/--thumb-side \
         (the index's setting is the default)",
        idx.dir().display(),
        asked.0.label(&limits)
    )
}

/// Decode mode and limits: the command line's choice, else the one the index
/// records (so queries hash like the corpus did), else fast at 512 px.
pub(crate) fn decode_setting(d: &DecodeArgs, recorded: Option<&str>) -> (DecodeMode, Limits) {
    let recorded = recorded.and_then(DecodeMode::parse_label);
    let (mode, side) = requested_decode(d)
        .or(recorded)
        .unwrap_or((DecodeMode::Fast, crate::ingest::decode::FAST_MIN_SIDE));
    (
        mode,
        Limits {
            max_bytes: d.max_mib.saturating_mul(1 << 20),
            max_pixels: d.max_pixels,
            fast_min_side: side,
        },
    )
}

fn mode(exact: bool) -> DecodeMode {
    if exact {
        DecodeMode::Exact
    } else {
        DecodeMode::Fast
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal or with --quiet.
pub fn progress(len: Option<u64>, what: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    // "13.9/s", not indicatif's "13.9551/s".
    let rate = |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.1}/s", s.per_sec());
    };
    let pb = match len {
        Some(n) => {
            let pb = ProgressBar::new(n);
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} images, {rate}, ETA {eta}",
                )
                .unwrap()
                .with_key("rate", rate)
                .progress_chars("=> "),
            );
            pb
        }
        None => {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg} {pos} images, {rate}, {elapsed}")
                    .unwrap()
                    .with_key("rate", rate),
            );
            pb
        }
    };
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// A progress bar's total: a quick extra walk of the inputs (names and
/// sizes only), done only when the bar is shown, for its ETA. None with a
/// shard among the inputs: counting its members would read it.
fn bar_total(srcs: &crate::ingest::Inputs, quiet: bool) -> Option<u64> {
    let shown = !quiet && std::io::stderr().is_terminal();
    shown
        .then(|| srcs.count())
        .and_then(|(n, shards)| (!shards).then_some(n))
}

/// Whether queries get embedded: the index has embeddings of the built-in
/// model and `--hash-only` was not given. Another model's embeddings are an
/// error, not a silent downgrade.
pub(crate) fn use_embeddings(idx: &Index, hash_only: bool, quiet: bool) -> Result<bool> {
    match idx.manifest().embedding.as_deref() {
        None => {
            if !hash_only && !quiet {
                eprintln!(
                    "note: index {} is hash-only (built with --hash-only): no embeddings, \
                     hashes and keypoints only",
                    idx.dir().display()
                );
            }
            Ok(false)
        }
        Some(_) if hash_only => Ok(false),
        Some(m) if m == crate::descriptors::embedding::model_label() => Ok(true),
        Some(m) => bail!(
            "index {} holds embeddings of {m}, this run embeds with {}: queries would not be comparable \
             (pass the index's model with --model PATH, use --hash-only, or rebuild the index)",
            idx.dir().display(),
            crate::descriptors::embedding::model_label()
        ),
    }
}

/// The folder that holds named indexes (`HOME/indexes/NAME`):
/// `$LOOKALIKE_HOME`, else `$XDG_DATA_HOME/lookalike` (when absolute, as
/// the XDG spec asks), else `$HOME/.local/share/lookalike`.
fn lookalike_home() -> Option<std::path::PathBuf> {
    let var = |n: &str| {
        std::env::var_os(n)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    var("LOOKALIKE_HOME")
        .or_else(|| {
            var("XDG_DATA_HOME")
                .filter(|p| p.is_absolute())
                .map(|p| p.join("lookalike"))
        })
        .or_else(|| var("HOME").map(|h| h.join(".local/share/lookalike")))
}

/// Where `--index` points (see `index_name`).
pub(crate) fn index_ref(sel: &args::IndexSel) -> Result<index_name::IndexRef> {
    index_name::resolve(&sel.index, lookalike_home().as_deref())
}

pub(crate) fn open_index(sel: &args::IndexSel) -> Result<Index> {
    let r = index_ref(sel)?;
    match Index::open(r.dir()) {
        Ok(idx) => Ok(idx),
        Err(crate::error::IndexError::Missing(_)) => bail!(index_name::missing(&r)),
        Err(e) => Err(e.into()),
    }
}

/// Benchmark knob: `LOOKALIKE_HAMMING_KERNEL` (generic | avx2 | avx512) picks
/// the CPU scan's copy; default (or unknown name) the fastest this CPU has.
fn hamming_kernel() -> crate::search::hamming::Kernel {
    let name = std::env::var("LOOKALIKE_HAMMING_KERNEL").unwrap_or_default();
    crate::search::hamming::Kernel::from_name(&name).unwrap_or_default()
}

/// Test knob: `LOOKALIKE_PDQ_TABLE_MIN_ROWS` overrides from how many rows
/// a segment's PDQ table is tried before the scan for top-k queries (tests
/// force it with 0 to compare the table's answers with the scan's).
pub(crate) fn pdq_table_min_rows() -> usize {
    std::env::var("LOOKALIKE_PDQ_TABLE_MIN_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(crate::search::hamming::PDQ_TABLE_MIN_ROWS)
}

/// Benchmark and test knob: `LOOKALIKE_KEYPOINT_SCAN=1` compares the query's
/// keypoints with every indexed record instead of asking the keypoint
/// tables (the reference the tables are measured against).
pub(crate) fn keypoint_scan() -> bool {
    std::env::var("LOOKALIKE_KEYPOINT_SCAN").as_deref() == Ok("1")
}

/// The engine for `--device`; says on stderr which one runs. The GPU
/// engine's test knobs come from `LOOKALIKE_CNN_F32=1` (f32 CNN storage) and
/// `LOOKALIKE_GPU_CNN=1` (the CNN on a software adapter too).
fn engine(
    choice: crate::gpu::DeviceChoice,
    quiet: bool,
) -> Result<std::sync::Arc<dyn crate::engine::Engine>> {
    let gpu_opts = crate::engine::GpuOptions {
        cnn_f32: std::env::var("LOOKALIKE_CNN_F32").as_deref() == Ok("1"),
        cnn_on_software: std::env::var("LOOKALIKE_GPU_CNN").as_deref() == Ok("1"),
    };
    let e = crate::engine::choose(choice, gpu_opts)?;
    if !quiet {
        let on_cpu = e.label() == crate::engine::Engine::label(&crate::engine::CpuEngine);
        match choice {
            _ if !on_cpu => eprintln!("device: {}", e.label()),
            crate::gpu::DeviceChoice::Auto => {
                eprintln!(
                    "device: {} (no hardware GPU adapter; --device gpu accepts software ones)",
                    e.label()
                )
            }
            _ => eprintln!("device: {}", e.label()),
        }
    }
    Ok(e)
}

/// A positive number from an environment variable (tuning and test knobs).
fn env_number(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
}

/// Segments with at least this many records search embeddings through
/// their graph: `LOOKALIKE_ANN_MIN_ROWS` overrides the default (tests force
/// the graph with 0).
pub(crate) fn ann_min_rows() -> usize {
    std::env::var("LOOKALIKE_ANN_MIN_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(crate::search::fusion::ANN_MIN_ROWS)
}

/// Says on stderr when verification was asked for but the index has no
/// keypoints to verify against, so a user knows what the scores rest on.
pub(crate) fn note_unverifiable(idx: &Index, no_verify: bool, quiet: bool) {
    if !no_verify && !quiet && !idx.has_keypoints() {
        eprintln!(
            "note: index {} has no keypoints (built with --no-keypoints): \
             no geometric verification, hash evidence only",
            idx.dir().display()
        );
    }
}

/// Warns on stderr when a compact index could not read back some training
/// files to verify candidates (gone, changed or unreadable since indexing):
/// those candidates were scored without verification.
pub(crate) fn note_unread(idx: &Index, quiet: bool) {
    let (n, named) = idx.unverifiable();
    if n == 0 || quiet {
        return;
    }
    eprintln!(
        "warning: {} of compact index {} could not be read back to verify candidates \
         (its keypoints come from the training files); those candidates were scored without verification:",
        output::count(n as u64, "training file"),
        idx.dir().display()
    );
    const SHOWN: usize = 5;
    for (path, why) in named.iter().take(SHOWN) {
        eprintln!("  {}: {why}", crate::report::terminal(path));
    }
    if n > SHOWN {
        eprintln!("  ... and {} more", n - SHOWN);
    }
}

fn cmd_hash(a: args::HashArgs, quiet: bool) -> Result<i32> {
    let (files, mut skipped) = check::collect_queries(&a.path);
    let pb = progress(
        Some(files.len() as u64),
        "hashing",
        quiet || files.len() < 2,
    );
    let limits = Limits {
        fast_min_side: a.thumb_side.unwrap_or(crate::ingest::decode::FAST_MIN_SIDE),
        ..Limits::default()
    };
    let fast = a.fast || a.thumb_side.is_some();
    let mut rows = Vec::with_capacity(files.len());
    for chunk in files.chunks(BATCH) {
        for p in process_batch(
            chunk.to_vec(),
            mode(!fast),
            &limits,
            |_| None,
            |d| HashRow::of(&d.rgb),
        ) {
            let path = report::path_text(&p.entry.path);
            match p.outcome {
                Outcome::Done(r) | Outcome::Duplicate(r) => rows.push(r.named(path)),
                Outcome::Skipped(f) => skipped.push(crate::ingest::Skipped {
                    path,
                    reason: f.reason,
                }),
            }
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if a.out.json {
        report::json::write_pretty(
            &mut out,
            &serde_json::json!({ "results": rows, "skipped": skipped }),
        )?;
        writeln!(out)?;
    } else if a.out.csv {
        writeln!(out, "path,pdq,quality,phash")?;
        for r in &rows {
            let line = format!("{},{},{},{}", field(&r.path), r.pdq, r.quality, r.phash);
            report::csv::write_line(&mut out, &line)?;
        }
    } else {
        // ThreatExchange's hasher prints "hash,quality,filename"; we add pHash.
        for r in &rows {
            let path = report::terminal(&r.path);
            writeln!(out, "{}  {:>3}  {}  {}", r.pdq, r.quality, r.phash, path)?;
        }
    }
    for s in &skipped {
        eprintln!("skipped {}: {}", report::terminal(&s.path), s.reason);
    }
    Ok(if rows.is_empty() && !skipped.is_empty() {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

fn cmd_compact(a: args::CompactArgs) -> Result<i32> {
    let dir = index_ref(&a.sel)?.dir().to_path_buf();
    let s = crate::pipeline::compact(&dir, None)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        report::json::write_pretty(&mut out, &s)?;
    } else {
        write!(
            out,
            "compacted {}: {} segments ({} records) -> {} ({} records), {} images searchable ({:.1} s)",
            dir.display(),
            s.segments_before,
            s.records_before,
            s.segments_after,
            s.records_after,
            s.live_images,
            s.seconds
        )?;
    }
    writeln!(out)?;
    Ok(EXIT_OK)
}

fn cmd_info(a: args::InfoArgs) -> Result<i32> {
    let idx = open_index(&a.sel)?;
    let segs: Vec<_> = idx
        .segments()
        .iter()
        .map(|s| serde_json::json!({ "id": s.info.id, "records": s.info.records, "path_bytes": s.info.path_bytes }))
        .collect();
    let live = idx.live_count();
    let records = idx.record_count();
    let digest = idx.content_digest_hex();
    let with = |f: fn(&crate::index::segment::Segment) -> bool| {
        idx.segments().iter().filter(|s| f(s)).count()
    };
    let keypoint_segs = with(|s| s.keypoints().is_some());
    let graph_segs = with(|s| s.graph().is_some());
    // Code length of the projected segments (fewer axes in small ones).
    let axes: Vec<usize> = idx
        .segments()
        .iter()
        .filter_map(|s| s.projection().map(|p| p.out))
        .collect();
    let projected = axes.len();
    let most_axes = axes.iter().copied().max().unwrap_or(0);
    let compact = idx.profile() == crate::index::Profile::Compact;
    let mut descriptors = vec!["pdq", "quality", "phash"];
    if keypoint_segs > 0 || (compact && idx.has_keypoints()) {
        descriptors.push("keypoints");
    }
    if idx.manifest().embedding.is_some() {
        descriptors.push("embedding");
    }
    let old_tables = with(|s| {
        s.mih()
            .is_some_and(|m| m.layout != crate::index::mih::CURRENT)
    });
    // The CNN precisions that computed the embeddings (none listed: f32).
    let precisions = match &idx.manifest().embedding_precisions {
        p if p.is_empty() && idx.manifest().embedding.is_some() => vec!["f32".to_string()],
        p => p.clone(),
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let v = serde_json::json!({
            "index": report::path_text(idx.dir()),
            "format": idx.manifest().format,
            "version": idx.manifest().version,
            "generation": idx.manifest().generation,
            "writer": idx.manifest().writer,
            "decode": idx.manifest().decode,
            "segments": segs,
            "segment_count": idx.segments().len(),
            "pdq_table_segments": with(|s| s.mih().is_some()),
            "pdq_table_old_layout_segments": old_tables,
            "keypoint_table_segments": with(|s| s.keypoint_table().is_some()),
            "whitened_segments": with(|s| s.whitening().is_some()),
            "records": records,
            "live_images": live,
            "content_digest": digest,
            "descriptors": descriptors,
            "embedding_model": idx.manifest().embedding,
            "embedding_precisions": precisions,
            "keypoints": idx.manifest().keypoints,
            "profile": idx.profile().name(),
            "hnsw_segments": graph_segs,
            "projected_segments": projected,
            "projection_axes": most_axes,
        });
        report::json::write_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        writeln!(out, "index       {}", idx.dir().display())?;
        writeln!(
            out,
            "format      {} v{} (generation {}, written by {})",
            idx.manifest().format,
            idx.manifest().version,
            idx.manifest().generation,
            idx.manifest().writer
        )?;
        writeln!(
            out,
            "images      {live} searchable ({} in {})",
            output::count(records as u64, "record"),
            output::count(idx.segments().len() as u64, "segment")
        )?;
        // Keypoints without a table get no shortlist past the scan limit.
        let kp_tables = with(|s| s.keypoint_table().is_some());
        let kp_note = format!(
            ", keypoints ({} of {keypoint_segs} segments without a keypoint table: \
             `lookalike compact` writes them)",
            keypoint_segs - kp_tables
        );
        writeln!(
            out,
            "descriptors PDQ (256 bit) + quality, pHash (64 bit){}",
            match (keypoint_segs > 0, idx.manifest().keypoints) {
                (true, _) if kp_tables < keypoint_segs => &kp_note,
                (true, _) => ", keypoints",
                (false, false) => " (no keypoints: built with --no-keypoints)",
                (false, true) if compact => ", keypoints (read back from the training files)",
                (false, true) => "",
            }
        )?;
        writeln!(
            out,
            "profile     {}",
            if compact {
                "compact (int8 codes, no stored keypoints or f16 embeddings)"
            } else {
                "full"
            }
        )?;
        if let Some(model) = &idx.manifest().embedding {
            writeln!(
                out,
                "embedding   {model} (computed in {}; HNSW graph in {graph_segs} of {})",
                precisions.join(" and "),
                output::count(idx.segments().len() as u64, "segment")
            )?;
            if projected > 0 {
                writeln!(
                    out,
                    "projection  int8 codes on up to {most_axes} principal axes in {projected} of {} ({})",
                    output::count(idx.segments().len() as u64, "segment"),
                    if compact {
                        "searched and scored on the codes"
                    } else {
                        "graph search; rescored exactly"
                    }
                )?;
            }
            let white = with(|s| s.whitening().is_some());
            let used = crate::search::calibrate::Calibration::for_index(&idx).whitens();
            if !compact {
                writeln!(
                    out,
                    "whitening   fitted in {white} of {}{}",
                    output::count(idx.segments().len() as u64, "segment"),
                    match (used, white < idx.segments().len()) {
                        (false, _) => " (not used: this model's similarity is scored raw)",
                        (true, true) =>
                            " (one without is scored on raw cosines: it has under \
                                          256 embeddings, or is older than whitening, which \
                                          `lookalike compact` then fits)",
                        (true, false) => "",
                    }
                )?;
            }
        }
        let tables = with(|s| s.mih().is_some());
        if tables > 0 {
            writeln!(
                out,
                "pdq table   multi-index hashing in {tables} of {} (radius-31 search reads a few buckets){}",
                output::count(idx.segments().len() as u64, "segment"),
                if old_tables > 0 {
                    format!(
                        "; {old_tables} in the 16-block layout of earlier versions (`lookalike compact` rewrites them)"
                    )
                } else {
                    String::new()
                }
            )?;
        }
        writeln!(
            out,
            "decode      {}",
            idx.manifest().decode.as_deref().unwrap_or("fast:512")
        )?;
        writeln!(
            out,
            "digest      {digest}\n            (content digest: images and descriptors in index order, not paths or mtimes)"
        )?;
        writeln!(
            out,
            "all column files validated (sizes, versions, checksums)"
        )?;
    }
    Ok(EXIT_OK)
}

//! A check fanned out over several index parts, run in this process: the
//! driver of `crate::search::fanout` (describe once, stage 1 on every part,
//! combine, stage 2, combine, stage 3, report), one part after the other.
//! Distributed callers (the Python package's `Part`, Ray actors) run the
//! same stages where the parts live and move the messages as bytes.

use image::RgbImage;

use super::check::CheckOptions;
use crate::descriptors::{Extras, QueryDescriptors};
use crate::index::Index;
use crate::ingest::{Skipped, BATCH};
use crate::search::fanout::{self, FanoutError, PartSettings, Query, Request};
use crate::search::result::CheckReport;

/// The settings of the first part with segments (else of the first part):
/// what queries are described for. `Err` without parts.
pub fn settings_of(parts: &[&Index]) -> Result<PartSettings, FanoutError> {
    parts
        .iter()
        .find(|p| !p.segments().is_empty())
        .or(parts.first())
        .map(|p| PartSettings::of(p))
        .ok_or_else(|| FanoutError("a check needs at least one index part".into()))
}

/// Describes decoded images (name, content hash of the bytes they were
/// decoded from or 0, pixels) once for a fan-out check of parts with
/// `settings`: `opts.top_k`, `opts.verify` (when the parts hold keypoints)
/// and `opts.embed` (the queries are embedded) as `check` takes them,
/// described on `opts.engine`. `skipped` and `total_records` (the parts'
/// live records, when known) are carried in the request.
pub fn describe(
    images: &[(String, u128, RgbImage)],
    settings: &PartSettings,
    opts: &CheckOptions,
    skipped: Vec<Skipped>,
    total_records: Option<u64>,
) -> Result<Request, FanoutError> {
    let verify = opts.verify && settings.keypoints;
    let extras = Extras {
        embedding: opts.embed,
        keypoints: verify,
        regions: opts.regions,
    };
    if opts.embed && settings.embedding.is_none() {
        return Err(FanoutError(
            "the parts are hash-only: queries cannot be compared by embedding".into(),
        ));
    }
    let engine = opts.engine.as_ref();
    let mut queries = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH) {
        let pixels: Vec<RgbImage> = chunk.iter().map(|i| i.2.clone()).collect();
        let described: Vec<QueryDescriptors> = engine
            .describe_queries(&pixels, extras)
            .map_err(|e| FanoutError(format!("describing queries failed: {e}")))?;
        for (i, mut q) in chunk.iter().zip(described) {
            // Each region travels as a query of its own after its image.
            let regions = std::mem::take(&mut q.regions);
            queries.push(Query {
                name: i.0.clone(),
                content_hash: i.1,
                q,
                region: None,
            });
            queries.extend(regions.into_iter().map(|r| Query {
                name: i.0.clone(),
                content_hash: 0,
                q: r.q,
                region: Some(r.rect),
            }));
        }
    }
    Ok(Request {
        settings: settings.clone(),
        top_k: opts.top_k.max(1),
        verify,
        embed: opts.embed,
        total_records,
        device: engine.label(),
        queries,
        skipped,
    })
}

/// Runs every stage of `req` on `parts` (in order) and returns the report;
/// `label` is its `index`. Hash scans run on `engine` where it accepts.
pub fn run(
    parts: &[&Index],
    req: &Request,
    engine: &dyn crate::engine::Engine,
    label: &str,
) -> Result<CheckReport, FanoutError> {
    let s1 = parts
        .iter()
        .map(|p| fanout::stage1(p, req, engine))
        .collect::<Result<Vec<_>, _>>()?;
    let (plan, p2) = fanout::combine1(req, &s1)?;
    let s2 = parts
        .iter()
        .zip(&p2)
        .map(|(p, plan)| fanout::stage2(p, req, plan))
        .collect::<Result<Vec<_>, _>>()?;
    let (judged, p3) = fanout::combine2(req, &plan, &s2)?;
    let s3 = parts
        .iter()
        .zip(&p3)
        .map(|(p, plan)| fanout::stage3(p, req, plan))
        .collect::<Result<Vec<_>, _>>()?;
    fanout::report(req, &judged, &s3, label)
}

/// The label of a fan-out report's `index`: the parts' folders joined by "+".
pub fn parts_label(parts: &[&Index]) -> String {
    parts
        .iter()
        .map(|p| crate::ingest::names::path_text(p.dir()))
        .collect::<Vec<_>>()
        .join("+")
}

/// Checks decoded images (as [`super::check::check_decoded`] takes them)
/// against the parts: the report `check_decoded` gives on the merged index
/// (`index` aside: [`parts_label`]). Batches of [`BATCH`] images are
/// described and fanned out in turn, so memory stays flat.
///
/// ```no_run
/// use lookalike::index::Index;
/// use lookalike::pipeline::check::CheckOptions;
/// use lookalike::pipeline::check_parts::{check_parts, settings_of};
/// let a = Index::open("indexes/part-0".as_ref())?;
/// let b = Index::open("indexes/part-1".as_ref())?;
/// let s = settings_of(&[&a, &b])?;
/// let opts = CheckOptions::for_settings(s.decode.as_deref(), s.embedding.as_deref());
/// let img = image::open("out/0001.png")?.into_rgb8();
/// let report = check_parts(&[&a, &b], &[("0001.png".into(), 0, img)], &opts)?;
/// println!("{} of {} matched", report.matched, report.images_checked);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_parts(
    parts: &[&Index],
    images: &[(String, u128, RgbImage)],
    opts: &CheckOptions,
) -> Result<CheckReport, FanoutError> {
    let settings = settings_of(parts)?;
    let total: u64 = parts.iter().map(|p| p.live_count() as u64).sum();
    let label = parts_label(parts);
    let engine = opts.engine.as_ref();
    let mut report: Option<CheckReport> = None;
    for chunk in images.chunks(BATCH) {
        let req = describe(chunk, &settings, opts, vec![], Some(total))?;
        let r = run(parts, &req, engine, &label)?;
        match report.as_mut() {
            Some(all) => all.results.extend(r.results),
            None => report = Some(r),
        }
    }
    let mut report = match report {
        Some(r) => r,
        None => run(
            parts,
            &describe(&[], &settings, opts, vec![], Some(total))?,
            engine,
            &label,
        )?,
    };
    report.count_verdicts();
    Ok(report)
}

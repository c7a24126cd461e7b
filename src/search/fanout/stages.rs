//! The stages of a fan-out check (see the module docs of `fanout`): what a
//! part computes, and how the driver combines the parts' answers with the
//! same ranking functions the single-index check uses.

use rayon::prelude::*;

use super::{
    part_fingerprint, FanoutError, First, Judged, PartInfo, PartSettings, Plan, Request, Scored,
    Stage1, Stage2, Stage2Plan, Stage3, Stage3Plan,
};
use crate::engine::Engine;
use crate::index::{Index, RecordRef};
use crate::search::batch::batch_search;
use crate::search::calibrate::Calibration;
use crate::search::dedup::{count_copies, CopyKey};
use crate::search::fusion::{self, FuseParams, Planned};
use crate::search::hamming::{rank_matches, Kernel, PDQ_TABLE_MIN_ROWS};
use crate::search::judge::{
    judge_candidate, matched_records, query_result, set_corpus_copies, CandidateRecord,
};
use crate::search::regions;
use crate::search::result::{CheckReport, QueryResult, Thresholds};
use crate::search::{search, SearchParams};

fn err<T>(s: String) -> Result<T, FanoutError> {
    Err(FanoutError(s))
}

/// The PDQ candidates searched and the nearest embeddings kept per query.
fn first_k(req: &Request) -> usize {
    req.top_k.max(fusion::VERIFY_PDQ)
}

fn nearest_k(req: &Request) -> usize {
    fusion::VERIFY_EMBEDDING.max(req.top_k)
}

fn fuse_params(req: &Request) -> FuseParams {
    FuseParams {
        top_k: req.top_k,
        parallel: req.queries.len() == 1,
        verify: req.verify,
        ann_min_rows: fusion::ANN_MIN_ROWS,
        keypoint_scan: false,
        calibration: Calibration::for_model(req.settings.embedding.as_deref()),
    }
}

fn info(index: &Index) -> PartInfo {
    PartInfo {
        fingerprint: part_fingerprint(index),
        segments: index.segments().len() as u32,
        live: index.live_count() as u64,
    }
}

/// A part with no segments holds nothing and may have any settings.
fn compatible(s: &PartSettings, segments: u32, req: &Request) -> bool {
    segments == 0 || *s == req.settings
}

/// Stage 1 on a part: per query its PDQ matches, keypoint shortlist and
/// nearest embeddings (see [`super::First`]). `engine` scans hashes in
/// batches where it accepts (as `check` does), else the CPU scans.
pub fn stage1(index: &Index, req: &Request, engine: &dyn Engine) -> Result<Stage1, FanoutError> {
    let settings = PartSettings::of(index);
    let part = info(index);
    if !compatible(&settings, part.segments, req) {
        return err(format!(
            "index {} was built with {}, the queries were described for {}: the parts of a \
             check must share decode setting, embedding model and keypoints",
            index.dir().display(),
            settings.text(),
            req.settings.text()
        ));
    }
    let total = req.total_records.unwrap_or(part.live);
    // A compact part stores no keypoints to scan (it verifies by reading
    // its training files again): it reports no scan, as `check` would.
    let scanned = req.verify && fusion::keypoints_stored(index);
    let how = fusion::keypoint_search_for(total.max(part.live) as usize, false);
    let p = fuse_params(req);
    let sp = SearchParams {
        top_k: first_k(req),
        max_distance: 256,
        parallel: p.parallel,
        kernel: Kernel::default(),
        pdq_index: true,
        pdq_table_min_rows: PDQ_TABLE_MIN_ROWS,
    };
    let first = |q: &crate::descriptors::QueryDescriptors, pdq: Vec<crate::search::Match>| {
        let how = match scanned && !q.keypoints.is_empty() {
            true => how,
            false => fusion::KeypointSearch::Off,
        };
        let ev = fusion::evidence(index, q, &[], how, nearest_k(req), &p);
        First {
            pdq,
            shortlist: ev.shortlist,
            nearest: ev.nearest,
        }
    };
    let qs: Vec<&crate::descriptors::QueryDescriptors> = req.queries.iter().map(|q| &q.q).collect();
    let hits = if qs.is_empty() {
        Some(vec![])
    } else {
        batch_search(index, engine, &qs, sp.top_k)
    };
    let queries = match hits {
        Some(hits) => qs.par_iter().zip(hits).map(|(q, m)| first(q, m)).collect(),
        None => qs
            .par_iter()
            .map(|q| first(q, search(index, q, &sp)))
            .collect(),
    };
    Ok(Stage1 {
        request: req.id(),
        settings,
        fingerprint: part.fingerprint,
        segments: part.segments,
        live: part.live,
        scanned,
        has_keypoints: index.has_keypoints(),
        queries,
    })
}

/// Where part `i`'s segments start in the merged numbering.
fn offsets(parts: &[PartInfo]) -> Vec<u32> {
    let mut at = 0u32;
    parts
        .iter()
        .map(|p| {
            let o = at;
            at = at.saturating_add(p.segments);
            o
        })
        .collect()
}

fn global(r: RecordRef, offset: u32) -> RecordRef {
    RecordRef {
        seg: r.seg.saturating_add(offset),
        row: r.row,
    }
}

/// The part holding merged record `r`, and `r` in its numbering.
fn local(r: RecordRef, offsets: &[u32], parts: &[PartInfo]) -> Option<(usize, RecordRef)> {
    let i = offsets.iter().rposition(|&o| o <= r.seg)?;
    let seg = r.seg - offsets[i];
    (seg < parts[i].segments).then_some((i, RecordRef { seg, row: r.row }))
}

fn check_request(what: &str, got: u64, req: &Request, id: u64) -> Result<(), FanoutError> {
    if got != id {
        return err(format!(
            "{what} belongs to another request than the {} queries given",
            req.queries.len()
        ));
    }
    Ok(())
}

/// Combines the parts' stage-1 answers (in part order): the keypoint scan
/// decided from the total count, each query's evidence ranked as on the
/// merged index, and each part's share of the candidates to score.
pub fn combine1(req: &Request, s1: &[Stage1]) -> Result<(Plan, Vec<Stage2Plan>), FanoutError> {
    let id = req.id();
    if s1.is_empty() {
        return err("a check needs at least one part".into());
    }
    for (i, s) in s1.iter().enumerate() {
        check_request(
            &format!("the stage-1 answer of part {i}"),
            s.request,
            req,
            id,
        )?;
        if s.queries.len() != req.queries.len() {
            return err(format!(
                "the stage-1 answer of part {i} has the wrong query count"
            ));
        }
        if !compatible(&s.settings, s.segments, req) {
            return err(format!(
                "part {i} has {}, the queries were described for {}",
                s.settings.text(),
                req.settings.text()
            ));
        }
    }
    let parts: Vec<PartInfo> = s1
        .iter()
        .map(|s| PartInfo {
            fingerprint: s.fingerprint,
            segments: s.segments,
            live: s.live,
        })
        .collect();
    let total: u64 = parts.iter().map(|p| p.live).sum();
    if req.total_records.is_some_and(|t| t != total) {
        return err(format!(
            "the request says the parts hold {} records, they hold {total}",
            req.total_records.unwrap_or(0)
        ));
    }
    // Verification runs when the merged index would hold keypoints.
    let verify = req.verify && s1.iter().any(|s| s.has_keypoints);
    // A keypoint shortlist ran when a part stores keypoints (as `check`
    // decides on the merged index): a scan under the total's limit, the
    // parts' keypoint tables above. Parts that did not store none.
    let keypoint_shortlist = verify && s1.iter().any(|s| s.scanned);
    let offs = offsets(&parts);
    let mut plans: Vec<Stage2Plan> = parts
        .iter()
        .map(|&part| Stage2Plan {
            request: id,
            part,
            queries: vec![Vec::new(); req.queries.len()],
        })
        .collect();
    for qi in 0..req.queries.len() {
        let mut pdq = Vec::new();
        let mut short = Vec::new();
        let mut near = Vec::new();
        for (s, &o) in s1.iter().zip(&offs) {
            let f = &s.queries[qi];
            pdq.extend(f.pdq.iter().map(|m| crate::search::Match {
                rec: global(m.rec, o),
                ..*m
            }));
            if keypoint_shortlist {
                short.extend(f.shortlist.iter().map(|&(n, r)| (n, global(r, o))));
            }
            near.extend(f.nearest.iter().map(|&(x, r)| (x, global(r, o))));
        }
        rank_matches(&mut pdq, first_k(req));
        short.sort_by(fusion::shortlist_order);
        short.truncate(fusion::VERIFY_KEYPOINT);
        fusion::rank_nearest(&mut near, nearest_k(req));
        let short: Vec<RecordRef> = short.iter().map(|s| s.1).collect();
        let near: Vec<RecordRef> = near.iter().map(|n| n.1).collect();
        for c in fusion::plan(&pdq, &short, &near, verify) {
            let Some((i, rec)) = local(c.rec, &offs, &parts) else {
                return err(format!(
                    "a stage-1 answer names record {:?} of no part",
                    c.rec
                ));
            };
            plans[i].queries[qi].push(Planned {
                rec,
                pdq: c.pdq.map(|m| crate::search::Match { rec, ..m }),
                verify: c.verify,
            });
        }
    }
    let plan = Plan {
        request: id,
        parts,
        keypoint_shortlist,
    };
    Ok((plan, plans))
}

/// Whether `r` is a record of `index`.
fn in_bounds(index: &Index, r: RecordRef) -> bool {
    index
        .segments()
        .get(r.seg as usize)
        .is_some_and(|s| (r.row as usize) < s.len())
}

fn check_part(index: &Index, want: &PartInfo, what: &str) -> Result<(), FanoutError> {
    if info(index) != *want {
        return err(format!(
            "the {what} is for another part than index {} (pass the parts in the same order \
             at every stage, and do not update them during a check)",
            index.dir().display()
        ));
    }
    Ok(())
}

/// Stage 2 on a part: verifies and scores the candidates `plan` gives it,
/// and returns each query's best `k` with what judging them needs.
pub fn stage2(index: &Index, req: &Request, plan: &Stage2Plan) -> Result<Stage2, FanoutError> {
    check_request("the stage-2 plan", plan.request, req, req.id())?;
    check_part(index, &plan.part, "stage-2 plan")?;
    if plan.queries.len() != req.queries.len() {
        return err("the stage-2 plan has the wrong query count".into());
    }
    if plan
        .queries
        .iter()
        .flatten()
        .any(|c| !in_bounds(index, c.rec))
    {
        return err("the stage-2 plan names a record the part does not have".into());
    }
    let p = fuse_params(req);
    let queries = req
        .queries
        .par_iter()
        .zip(&plan.queries)
        .map(|(q, cands)| {
            let scorers = fusion::Scorers::new(index, &q.q, &p.calibration);
            let mut out: Vec<fusion::Candidate> = cands
                .iter()
                .map(|c| fusion::score(index, &q.q, c, None, &p.calibration, &scorers))
                .collect();
            // Ranked again with every part's claims (see `combine2`).
            fusion::sort_fused(&mut out);
            fusion::truncate_keeping_claims(&mut out, req.top_k);
            out.into_iter()
                .map(|c| {
                    let (pdq, (_, phash, _)) = crate::search::dedup::copy_key(index, c.m.rec);
                    Scored {
                        record: CandidateRecord::of(index, c.m.rec),
                        c,
                        pdq,
                        phash,
                    }
                })
                .collect()
        })
        .collect();
    Ok(Stage2 {
        request: plan.request,
        part: plan.part,
        queries,
    })
}

/// The results the judged candidates make (no corpus copies yet), one per
/// image: its regions' folded in as `check` folds them.
fn results(req: &Request, judged: &Judged, cal: &Calibration) -> Vec<QueryResult> {
    let per_query = req
        .queries
        .iter()
        .zip(&judged.queries)
        .map(|(q, cands)| {
            let matches = cands
                .iter()
                .map(|s| judge_candidate(&s.c, &s.record, q.q.quality, q.content_hash, cal))
                .collect();
            query_result(&q.name, &q.q, matches)
        })
        .collect::<Vec<_>>();
    let tagged = req
        .queries
        .iter()
        .map(|q| q.region)
        .zip(per_query)
        .collect();
    regions::fold(tagged, req.top_k)
}

fn copy_key(s: &Scored) -> CopyKey {
    (s.pdq, (s.record.quality, s.phash, s.record.content_hash))
}

/// Combines the parts' stage-2 answers (in part order): every query's
/// candidates ranked in the fused order and cut to `k`, and what each part
/// counts in stage 3.
pub fn combine2(
    req: &Request,
    plan: &Plan,
    s2: &[Stage2],
) -> Result<(Judged, Vec<Stage3Plan>), FanoutError> {
    let id = req.id();
    check_request("the combine-1 state", plan.request, req, id)?;
    if s2.len() != plan.parts.len() {
        return err(format!(
            "{} stage-2 answers for {} parts",
            s2.len(),
            plan.parts.len()
        ));
    }
    let offs = offsets(&plan.parts);
    for (i, s) in s2.iter().enumerate() {
        check_request(
            &format!("the stage-2 answer of part {i}"),
            s.request,
            req,
            id,
        )?;
        if s.part != plan.parts[i] || s.queries.len() != req.queries.len() {
            return err(format!(
                "the stage-2 answer of part {i} is not that part's answer to this plan"
            ));
        }
    }
    let cal = Calibration::for_model(req.settings.embedding.as_deref());
    let mut queries = Vec::with_capacity(req.queries.len());
    for qi in 0..req.queries.len() {
        let mut all: Vec<Scored> = Vec::new();
        for (i, (s, &o)) in s2.iter().zip(&offs).enumerate() {
            for c in &s.queries[qi] {
                if c.c.m.rec.seg >= plan.parts[i].segments {
                    return err(format!(
                        "the stage-2 answer of part {i} names a foreign record"
                    ));
                }
                let mut c = c.clone();
                c.c.m.rec = global(c.c.m.rec, o);
                all.push(c);
            }
        }
        // As one index would: the shared keypoints of all parts' verified
        // candidates counted in share, then ranked.
        let keys: Vec<CopyKey> = all.iter().map(copy_key).collect();
        fusion::share_inliers(&mut all, &keys, &cal);
        all.sort_by(|a, b| fusion::fused_order(&a.c, &b.c));
        all.truncate(req.top_k);
        queries.push(all);
    }
    let judged = Judged {
        plan: plan.clone(),
        queries,
    };
    let res = results(req, &judged, &cal);
    let matched = matched_records(&res);
    let keys: Vec<CopyKey> = matched
        .iter()
        .map(|&r| {
            let s = judged
                .queries
                .iter()
                .flatten()
                .find(|s| s.c.m.rec == r)
                .ok_or_else(|| FanoutError("a matched record went missing".into()))?;
            Ok(copy_key(s))
        })
        .collect::<Result<_, FanoutError>>()?;
    let plans = plan
        .parts
        .iter()
        .enumerate()
        .map(|(i, &part)| Stage3Plan {
            request: id,
            part,
            keys: matched
                .iter()
                .zip(&keys)
                .map(|(&r, &k)| {
                    let own = local(r, &offs, &plan.parts)
                        .filter(|l| l.0 == i)
                        .map(|l| l.1);
                    (k, own)
                })
                .collect(),
        })
        .collect();
    Ok((judged, plans))
}

/// Stage 3 on a part: how many of its live records are near copies of
/// each matched candidate (the candidate itself not counted).
pub fn stage3(index: &Index, req: &Request, plan: &Stage3Plan) -> Result<Stage3, FanoutError> {
    check_request("the stage-3 plan", plan.request, req, req.id())?;
    check_part(index, &plan.part, "stage-3 plan")?;
    if plan
        .keys
        .iter()
        .any(|k| k.1.is_some_and(|r| !in_bounds(index, r)))
    {
        return err("the stage-3 plan names a record the part does not have".into());
    }
    let keys: Vec<CopyKey> = plan.keys.iter().map(|k| k.0).collect();
    let own: Vec<Option<RecordRef>> = plan.keys.iter().map(|k| k.1).collect();
    Ok(Stage3 {
        request: plan.request,
        part: plan.part,
        counts: count_copies(index, &keys, &own),
    })
}

/// The report of a fan-out check: the parts' corpus copies summed, counts,
/// rate and thresholds as `check` reports them on the merged index;
/// `index` names the parts.
pub fn report(
    req: &Request,
    judged: &Judged,
    s3: &[Stage3],
    index: &str,
) -> Result<CheckReport, FanoutError> {
    let id = req.id();
    check_request("the combine-2 state", judged.plan.request, req, id)?;
    let parts = &judged.plan.parts;
    if s3.len() != parts.len() || judged.queries.len() != req.queries.len() {
        return err(format!(
            "{} stage-3 answers for {} parts",
            s3.len(),
            parts.len()
        ));
    }
    let cal = Calibration::for_model(req.settings.embedding.as_deref());
    let mut res = results(req, judged, &cal);
    let matched = matched_records(&res);
    let mut counts = vec![0u32; matched.len()];
    for (i, s) in s3.iter().enumerate() {
        check_request(
            &format!("the stage-3 answer of part {i}"),
            s.request,
            req,
            id,
        )?;
        if s.part != parts[i] || s.counts.len() != matched.len() {
            return err(format!(
                "the stage-3 answer of part {i} is not that part's answer to this plan"
            ));
        }
        counts
            .iter_mut()
            .zip(&s.counts)
            .for_each(|(t, &c)| *t = t.saturating_add(c));
    }
    set_corpus_copies(&mut res, &matched, &counts);
    // Two parts holding one path would not survive a merge (the later
    // record supersedes): refuse what the candidates show of it.
    let offs = offsets(parts);
    let part_of = |r: RecordRef| local(r, &offs, parts).map(|l| l.0);
    let mut seen: std::collections::HashMap<&str, RecordRef> = Default::default();
    for s in judged.queries.iter().flatten() {
        if let Some(&r) = seen.get(s.record.path.as_str()) {
            if part_of(r) != part_of(s.c.m.rec) {
                return err(format!(
                    "{} is in two parts: parts must hold disjoint paths",
                    s.record.path
                ));
            }
        }
        seen.insert(&s.record.path, s.c.m.rec);
    }
    let total = parts.iter().map(|p| p.live as usize).sum();
    let thresholds = Thresholds::of_check(
        req.verify,
        req.embed,
        req.settings.embedding.clone(),
        &cal,
        // The parts' shortlists come from their keypoint tables (a part of
        // an earlier build, without tables, is scanned unreported).
        (false, judged.plan.keypoint_shortlist),
    );
    Ok(CheckReport::new(
        index.to_string(),
        total,
        req.device.clone(),
        thresholds,
        req.skipped.clone(),
        res,
    ))
}

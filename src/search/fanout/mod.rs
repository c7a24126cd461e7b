//! A check fanned out over several index *parts*: disjoint sets of images,
//! each a normal index folder built with the same settings, held by
//! different processes or machines. The combined answer is the report
//! `check` gives on the merged index (`lookalike merge OUT PARTS...`: the
//! parts' segments in part order), field for field.
//!
//! A part cannot simply check on its own and hand over its best `k`: which
//! candidates get verified depends on the global ranking (the global PDQ
//! top 8, the global keypoint shortlist, and whether that shortlist runs at
//! all depends on the total record count), and `corpus_copies` counts over
//! the whole corpus. So the check runs in stages, each part answering with
//! its own record numbers and the driver combining with the merged index's
//! numbering (a part's segments come after the earlier parts' segments),
//! so every tie is broken as on the merged index:
//!
//! 1. [`Request`]: the driver describes the queries once (the engine and
//!    model the parts share) with the check's settings.
//! 2. [`stage1`] on every part: per query the PDQ top `max(k, 8)`, the
//!    keypoint shortlist's top 8 with their counts, the nearest `max(k, 8)`
//!    embeddings, and the part's live count.
//! 3. [`combine1`]: merges each list as the single-index code ranks it,
//!    decides the keypoint scan from the total count, and plans which
//!    records each part scores and verifies ([`crate::search::fusion::plan`]).
//! 4. [`stage2`] on every part: verifies and scores its share, returns its
//!    best `k` with what judging them needs.
//! 5. [`combine2`]: ranks all in the fused order, keeps the top `k`, and asks
//!    every part for the corpus copies of the matched candidates.
//! 6. [`stage3`] on every part: counts the near copies it holds.
//! 7. [`report`]: sums them and builds the [`crate::search::CheckReport`].
//!
//! Every message crosses as opaque bytes (`to_bytes` / `from_bytes`;
//! floats bit-exact). Each names the request it belongs to, and the plans
//! name the part they are for, so a message of another check, or parts
//! passed in another order at a later stage, is an error, as are bytes that
//! are no such message.
//!
//! Parts must hold **disjoint paths**: on a merged index a later part's
//! record of the same path would supersede an earlier one, which a fan-out
//! cannot see. [`report`] refuses a check in which two parts returned a
//! candidate of the same path; other overlaps go unnoticed.

mod stages;
mod wire;

pub use stages::{combine1, combine2, report, stage1, stage2, stage3};

use crate::descriptors::{Hash256, QueryDescriptors};
use crate::index::{Index, RecordRef};
use crate::ingest::Skipped;
use crate::search::fusion::{Candidate, Planned};
use crate::search::judge::CandidateRecord;
use crate::search::Match;
use wire::{Kind, Reader, Writer};

/// Why a fan-out stage could not run: incompatible parts, or a message
/// that is not what the stage takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FanoutError(pub String);

/// The settings every part must share, as its manifest records them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartSettings {
    /// The decode label ("fast:512", "exact"); queries are decoded so.
    pub decode: Option<String>,
    /// The embedding model, `None` for a hash-only index.
    pub embedding: Option<String>,
    /// Whether the index keeps keypoints (off: `index --no-keypoints`).
    pub keypoints: bool,
}

impl PartSettings {
    /// The settings of `index`.
    pub fn of(index: &Index) -> PartSettings {
        PartSettings {
            decode: index.manifest().decode.clone(),
            embedding: index.embedding_model().map(str::to_string),
            keypoints: index.manifest().keypoints,
        }
    }

    fn text(&self) -> String {
        format!(
            "decode {}, embeddings {}, {}",
            self.decode.as_deref().unwrap_or("unset"),
            self.embedding.as_deref().unwrap_or("none (hash-only)"),
            if self.keypoints {
                "keypoints"
            } else {
                "no keypoints"
            }
        )
    }

    fn write(&self, w: &mut Writer) {
        w.opt_str(self.decode.as_deref());
        w.opt_str(self.embedding.as_deref());
        w.bool(self.keypoints);
    }

    fn read(r: &mut Reader) -> Result<PartSettings, FanoutError> {
        Ok(PartSettings {
            decode: r.opt_str()?,
            embedding: r.opt_str()?,
            keypoints: r.bool()?,
        })
    }
}

/// One described query image.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// What the report calls it.
    pub name: String,
    /// xxh3-128 of the bytes it was decoded from (0: none), for `same_bytes`.
    pub content_hash: u128,
    /// Its descriptors.
    pub q: QueryDescriptors,
    /// None: the whole image. Some: a region of the whole image listed just
    /// before (same name), searched as an image of its own and folded into
    /// that image's result ([`crate::search::regions`]); a request lists
    /// regions this way, its descriptors never hold any.
    pub region: Option<crate::descriptors::regions::Rect>,
}

/// A batch of described queries and how to check them: what the driver
/// sends every part at every stage.
#[derive(Clone, Debug)]
pub struct Request {
    /// The settings the queries were described for (the parts').
    pub settings: PartSettings,
    /// Candidates reported per query.
    pub top_k: usize,
    /// Verification runs (asked for, and the parts hold keypoints).
    pub verify: bool,
    /// Embeddings are compared (the queries have them).
    pub embed: bool,
    /// The parts' total live records when the driver knows it: a part then
    /// skips a keypoint scan the total rules out (checked in [`combine1`]).
    pub total_records: Option<u64>,
    /// The engine that described the queries (the report's `device`).
    pub device: String,
    /// The queries, in report order.
    pub queries: Vec<Query>,
    /// Inputs that could not be read or decoded, for the report.
    pub skipped: Vec<Skipped>,
}

impl Request {
    /// The request as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Request);
        self.settings.write(&mut w);
        w.len(self.top_k);
        w.bool(self.verify);
        w.bool(self.embed);
        w.bool(self.total_records.is_some());
        w.u64(self.total_records.unwrap_or(0));
        w.str(&self.device);
        w.len(self.queries.len());
        for q in &self.queries {
            w.str(&q.name);
            w.u128(q.content_hash);
            w.bool(q.region.is_some());
            if let Some(r) = q.region {
                [r.x, r.y, r.w, r.h].iter().for_each(|&v| w.f32(v));
            }
            w.query(&q.q);
        }
        w.len(self.skipped.len());
        for s in &self.skipped {
            w.str(&s.path);
            w.str(&s.reason);
        }
        w.finish()
    }

    /// A request from [`Request::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Request, FanoutError> {
        let mut r = Reader::open(b, Kind::Request)?;
        let settings = PartSettings::read(&mut r)?;
        let top_k = r.u64()?;
        if top_k == 0 || top_k > 1 << 20 {
            return Err(r.bad("k out of range"));
        }
        let (verify, embed) = (r.bool()?, r.bool()?);
        let total = (r.bool()?, r.u64()?);
        let device = r.str()?;
        let n = r.len(8 + 16 + 8 * 32 + 10)?;
        let mut queries = Vec::with_capacity(n);
        for _ in 0..n {
            let (name, content_hash) = (r.str()?, r.u128()?);
            let region = if r.bool()? {
                let (x, y, w, h) = (r.f32()?, r.f32()?, r.f32()?, r.f32()?);
                if ![x, y, w, h].iter().all(|v| (0.0..=1.0).contains(v)) {
                    return Err(r.bad("a region outside its image"));
                }
                Some(crate::descriptors::regions::Rect { x, y, w, h })
            } else {
                None
            };
            let q = r.query()?;
            if q.embedding.is_some() != embed {
                return Err(r.bad("a query's embedding disagrees with the request"));
            }
            if region.is_some() && queries.last().is_none_or(|p: &Query| p.name != name) {
                return Err(r.bad("a region that does not follow its whole image"));
            }
            queries.push(Query {
                name,
                content_hash,
                q,
                region,
            });
        }
        let n = r.len(16)?;
        let mut skipped = Vec::with_capacity(n);
        for _ in 0..n {
            skipped.push(Skipped {
                path: r.str()?,
                reason: r.str()?,
            });
        }
        r.done()?;
        Ok(Request {
            settings,
            top_k: top_k as usize,
            verify,
            embed,
            total_records: total.0.then_some(total.1),
            device,
            queries,
            skipped,
        })
    }

    /// The identity of this request that every later message carries.
    pub fn id(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.to_bytes())
    }
}

/// What identifies a part between stages: its commit and segments.
pub fn part_fingerprint(index: &Index) -> u64 {
    let m = index.manifest();
    let mut b = m.generation.to_le_bytes().to_vec();
    for s in &m.segments {
        b.extend_from_slice(&s.id.to_le_bytes());
        b.extend_from_slice(&s.records.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&b)
}

/// One part's first-stage evidence for one query, in its own numbering.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct First {
    /// PDQ matches, best first (at most `max(k, 8)`).
    pub pdq: Vec<Match>,
    /// The keypoint shortlist with its counts (at most 8).
    pub shortlist: Vec<(u32, RecordRef)>,
    /// The nearest embeddings, most similar first (at most `max(k, 8)`).
    pub nearest: Vec<(f32, RecordRef)>,
}

/// A part's answer to stage 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage1 {
    /// [`Request::id`] of the request answered.
    pub request: u64,
    /// The part's settings.
    pub settings: PartSettings,
    /// [`part_fingerprint`].
    pub fingerprint: u64,
    /// Its segments (the next part's numbering starts after them).
    pub segments: u32,
    /// Its live records.
    pub live: u64,
    /// Whether it ran the keypoint shortlist (not when it stores no
    /// keypoints, as a compact index, or when the total is past the limit).
    pub scanned: bool,
    /// Whether any of its segments holds keypoints (a segment of images
    /// without any leaves the column out): verification runs when any
    /// part's does, as on the merged index.
    pub has_keypoints: bool,
    /// Per query of the request.
    pub queries: Vec<First>,
}

impl Stage1 {
    /// The message as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Stage1);
        w.u64(self.request);
        self.settings.write(&mut w);
        w.u64(self.fingerprint);
        w.u32(self.segments);
        w.u64(self.live);
        w.bool(self.scanned);
        w.bool(self.has_keypoints);
        w.len(self.queries.len());
        for f in &self.queries {
            w.len(f.pdq.len());
            f.pdq.iter().for_each(|m| w.matched(m));
            w.len(f.shortlist.len());
            for &(n, r) in &f.shortlist {
                w.u32(n);
                w.rec(r);
            }
            w.len(f.nearest.len());
            for &(s, r) in &f.nearest {
                w.f32(s);
                w.rec(r);
            }
        }
        w.finish()
    }

    /// The message from [`Stage1::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Stage1, FanoutError> {
        let mut r = Reader::open(b, Kind::Stage1)?;
        let request = r.u64()?;
        let settings = PartSettings::read(&mut r)?;
        let (fingerprint, segments, live) = (r.u64()?, r.u32()?, r.u64()?);
        let (scanned, has_keypoints) = (r.bool()?, r.bool()?);
        let n = r.len(24)?;
        let mut queries = Vec::with_capacity(n);
        for _ in 0..n {
            let mut f = First::default();
            for _ in 0..r.len(17)? {
                f.pdq.push(r.matched()?);
            }
            for _ in 0..r.len(12)? {
                f.shortlist.push((r.u32()?, r.rec()?));
            }
            for _ in 0..r.len(12)? {
                f.nearest.push((r.f32()?, r.rec()?));
            }
            queries.push(f);
        }
        r.done()?;
        Ok(Stage1 {
            request,
            settings,
            fingerprint,
            segments,
            live,
            scanned,
            has_keypoints,
            queries,
        })
    }
}

/// What a part is known by between stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartInfo {
    /// [`part_fingerprint`].
    pub fingerprint: u64,
    /// Its segments.
    pub segments: u32,
    /// Its live records.
    pub live: u64,
}

/// The driver's state after [`combine1`].
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// [`Request::id`].
    pub request: u64,
    /// The parts, in order.
    pub parts: Vec<PartInfo>,
    /// Whether the keypoint shortlist ran (as on the merged index: verified
    /// and some part stores keypoints; by scan or keypoint tables).
    pub keypoint_shortlist: bool,
}

fn write_parts(w: &mut Writer, parts: &[PartInfo]) {
    w.len(parts.len());
    for p in parts {
        w.u64(p.fingerprint);
        w.u32(p.segments);
        w.u64(p.live);
    }
}

fn read_parts(r: &mut Reader) -> Result<Vec<PartInfo>, FanoutError> {
    let n = r.len(20)?;
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        parts.push(PartInfo {
            fingerprint: r.u64()?,
            segments: r.u32()?,
            live: r.u64()?,
        });
    }
    Ok(parts)
}

impl Plan {
    /// The state as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Plan);
        w.u64(self.request);
        write_parts(&mut w, &self.parts);
        w.bool(self.keypoint_shortlist);
        w.finish()
    }

    /// The state from [`Plan::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Plan, FanoutError> {
        let mut r = Reader::open(b, Kind::Plan)?;
        let p = Plan {
            request: r.u64()?,
            parts: read_parts(&mut r)?,
            keypoint_shortlist: r.bool()?,
        };
        r.done()?;
        Ok(p)
    }
}

/// What one part scores in stage 2, in its own numbering.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage2Plan {
    /// [`Request::id`].
    pub request: u64,
    /// The part it is for.
    pub part: PartInfo,
    /// Per query: the part's candidates.
    pub queries: Vec<Vec<Planned>>,
}

impl Stage2Plan {
    /// The plan as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Stage2Plan);
        w.u64(self.request);
        write_parts(&mut w, &[self.part]);
        w.len(self.queries.len());
        for q in &self.queries {
            w.len(q.len());
            q.iter().for_each(|p| w.planned(p));
        }
        w.finish()
    }

    /// The plan from [`Stage2Plan::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Stage2Plan, FanoutError> {
        let mut r = Reader::open(b, Kind::Stage2Plan)?;
        let request = r.u64()?;
        let part = match read_parts(&mut r)?.as_slice() {
            [p] => *p,
            _ => return Err(r.bad("not one part")),
        };
        let n = r.len(8)?;
        let mut queries = Vec::with_capacity(n);
        for _ in 0..n {
            let m = r.len(10)?;
            let mut q = Vec::with_capacity(m);
            for _ in 0..m {
                q.push(r.planned()?);
            }
            queries.push(q);
        }
        r.done()?;
        Ok(Stage2Plan {
            request,
            part,
            queries,
        })
    }
}

/// One scored candidate with what judging it and counting its copies need.
#[derive(Clone, Debug)]
pub struct Scored {
    /// The candidate (its record in the sender's numbering).
    pub c: Candidate,
    /// Its path, quality and content hash.
    pub record: CandidateRecord,
    /// Its upright PDQ hash.
    pub pdq: Hash256,
    /// Its pHash.
    pub phash: u64,
}

impl AsMut<Candidate> for Scored {
    fn as_mut(&mut self) -> &mut Candidate {
        &mut self.c
    }
}

/// Per query, scored candidates in the fused order.
fn write_scored(w: &mut Writer, queries: &[Vec<Scored>]) {
    w.len(queries.len());
    for q in queries {
        w.len(q.len());
        for s in q {
            w.candidate(&s.c);
            w.record(&s.record);
            w.hash(&s.pdq);
            w.u64(s.phash);
        }
    }
}

fn read_scored(r: &mut Reader) -> Result<Vec<Vec<Scored>>, FanoutError> {
    let n = r.len(8)?;
    let mut queries = Vec::with_capacity(n);
    for _ in 0..n {
        let m = r.len(80)?;
        let mut q = Vec::with_capacity(m);
        for _ in 0..m {
            q.push(Scored {
                c: r.candidate()?,
                record: r.record()?,
                pdq: r.hash()?,
                phash: r.u64()?,
            });
        }
        queries.push(q);
    }
    Ok(queries)
}

/// A part's answer to stage 2: per query its best `k` candidates.
#[derive(Clone, Debug)]
pub struct Stage2 {
    /// [`Request::id`].
    pub request: u64,
    /// The part that answered.
    pub part: PartInfo,
    /// Per query, best first, records in the part's numbering.
    pub queries: Vec<Vec<Scored>>,
}

impl Stage2 {
    /// The message as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Stage2);
        w.u64(self.request);
        write_parts(&mut w, &[self.part]);
        write_scored(&mut w, &self.queries);
        w.finish()
    }

    /// The message from [`Stage2::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Stage2, FanoutError> {
        let mut r = Reader::open(b, Kind::Stage2)?;
        let request = r.u64()?;
        let part = match read_parts(&mut r)?.as_slice() {
            [p] => *p,
            _ => return Err(r.bad("not one part")),
        };
        let queries = read_scored(&mut r)?;
        r.done()?;
        Ok(Stage2 {
            request,
            part,
            queries,
        })
    }
}

/// The driver's state after [`combine2`]: every query's candidates as
/// reported, in the merged index's numbering.
#[derive(Clone, Debug)]
pub struct Judged {
    /// The state of [`combine1`].
    pub plan: Plan,
    /// Per query, its top `k` in the fused order.
    pub queries: Vec<Vec<Scored>>,
}

impl Judged {
    /// The state as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Judged);
        w.u64(self.plan.request);
        write_parts(&mut w, &self.plan.parts);
        w.bool(self.plan.keypoint_shortlist);
        write_scored(&mut w, &self.queries);
        w.finish()
    }

    /// The state from [`Judged::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Judged, FanoutError> {
        let mut r = Reader::open(b, Kind::Judged)?;
        let plan = Plan {
            request: r.u64()?,
            parts: read_parts(&mut r)?,
            keypoint_shortlist: r.bool()?,
        };
        let queries = read_scored(&mut r)?;
        r.done()?;
        Ok(Judged { plan, queries })
    }
}

/// What one part counts in stage 3: the matched candidates' copy keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage3Plan {
    /// [`Request::id`].
    pub request: u64,
    /// The part it is for.
    pub part: PartInfo,
    /// Each matched candidate's key ([`crate::search::dedup::CopyKey`]),
    /// and its record when it is in this part (not counted as its own copy).
    pub keys: Vec<(crate::search::dedup::CopyKey, Option<RecordRef>)>,
}

impl Stage3Plan {
    /// The plan as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Stage3Plan);
        w.u64(self.request);
        write_parts(&mut w, &[self.part]);
        w.len(self.keys.len());
        for ((h, (q, ph, ch)), own) in &self.keys {
            w.hash(h);
            w.u8(*q);
            w.u64(*ph);
            w.u128(*ch);
            w.bool(own.is_some());
            if let Some(r) = own {
                w.rec(*r);
            }
        }
        w.finish()
    }

    /// The plan from [`Stage3Plan::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Stage3Plan, FanoutError> {
        let mut r = Reader::open(b, Kind::Stage3Plan)?;
        let request = r.u64()?;
        let part = match read_parts(&mut r)?.as_slice() {
            [p] => *p,
            _ => return Err(r.bad("not one part")),
        };
        let n = r.len(58)?;
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let key = (r.hash()?, (r.u8()?, r.u64()?, r.u128()?));
            let own = if r.bool()? { Some(r.rec()?) } else { None };
            keys.push((key, own));
        }
        r.done()?;
        Ok(Stage3Plan {
            request,
            part,
            keys,
        })
    }
}

/// A part's answer to stage 3: near copies per key of its plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage3 {
    /// [`Request::id`].
    pub request: u64,
    /// The part that answered.
    pub part: PartInfo,
    /// Per key of the plan.
    pub counts: Vec<u32>,
}

impl Stage3 {
    /// The message as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Stage3);
        w.u64(self.request);
        write_parts(&mut w, &[self.part]);
        w.len(self.counts.len());
        self.counts.iter().for_each(|&c| w.u32(c));
        w.finish()
    }

    /// The message from [`Stage3::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Stage3, FanoutError> {
        let mut r = Reader::open(b, Kind::Stage3)?;
        let request = r.u64()?;
        let part = match read_parts(&mut r)?.as_slice() {
            [p] => *p,
            _ => return Err(r.bad("not one part")),
        };
        let n = r.len(4)?;
        let mut counts = Vec::with_capacity(n);
        for _ in 0..n {
            counts.push(r.u32()?);
        }
        r.done()?;
        Ok(Stage3 {
            request,
            part,
            counts,
        })
    }
}

#[cfg(test)]
mod tests;

//! The byte encoding of the fan-out messages: a 6-byte header (magic
//! `LKFO`, format version, message kind), then little-endian fields; floats
//! as their IEEE bits, so they cross exactly. Reading never panics and
//! never allocates more than the message could hold: a count is checked
//! against the bytes left before anything is reserved.

use super::FanoutError;
use crate::descriptors::{Hash256, KeyPoint, QueryDescriptors};
use crate::index::RecordRef;
use crate::search::fusion::{Candidate, Planned};
use crate::search::judge::CandidateRecord;
use crate::search::verify::{QueryPoints, Verification};
use crate::search::Match;

const MAGIC: &[u8; 4] = b"LKFO";
/// 2: a query may be a region of the one before it. 3: a verification
/// carries its consensus and the query keypoints it explains.
const VERSION: u8 = 3;

/// The kinds of message, with the names errors use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Request = 1,
    Stage1 = 2,
    Plan = 3,
    Stage2Plan = 4,
    Stage2 = 5,
    Judged = 6,
    Stage3Plan = 7,
    Stage3 = 8,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Request => "request (describe)",
            Kind::Stage1 => "stage-1",
            Kind::Plan => "combine-1 state",
            Kind::Stage2Plan => "stage-2 plan",
            Kind::Stage2 => "stage-2",
            Kind::Judged => "combine-2 state",
            Kind::Stage3Plan => "stage-3 plan",
            Kind::Stage3 => "stage-3",
        }
    }
}

/// Appends fields to a message.
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub fn new(kind: Kind) -> Writer {
        let mut v = Vec::with_capacity(1024);
        v.extend_from_slice(MAGIC);
        v.push(VERSION);
        v.push(kind as u8);
        Writer(v)
    }
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.0.push(v as u8);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.u32(v.to_bits());
    }
    pub fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    pub fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
    pub fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    pub fn opt_str(&mut self, s: Option<&str>) {
        self.bool(s.is_some());
        if let Some(s) = s {
            self.str(s);
        }
    }
    pub fn hash(&mut self, h: &Hash256) {
        for w in h.words {
            self.u64(w);
        }
    }
    pub fn rec(&mut self, r: RecordRef) {
        self.u32(r.seg);
        self.u32(r.row);
    }
    pub fn matched(&mut self, m: &Match) {
        self.rec(m.rec);
        self.u32(m.pdq_distance);
        self.u8(m.variant);
        self.u32(m.phash_distance);
    }
    pub fn planned(&mut self, p: &Planned) {
        self.rec(p.rec);
        self.bool(p.verify);
        self.bool(p.pdq.is_some());
        if let Some(m) = &p.pdq {
            self.matched(m);
        }
    }
    pub fn candidate(&mut self, c: &Candidate) {
        self.matched(&c.m);
        self.bool(c.verification.is_some());
        if let Some(v) = &c.verification {
            self.u32(v.matches);
            self.u32(v.inliers);
            self.u32(v.consensus);
            v.affine.iter().for_each(|&a| self.f32(a));
            v.query_points.iter().for_each(|&w| self.u64(w));
        }
        self.bool(c.similarity.is_some());
        if let Some(s) = c.similarity {
            self.f32(s);
        }
        self.f64(c.score);
    }
    pub fn record(&mut self, r: &CandidateRecord) {
        self.str(&r.path);
        self.u8(r.quality);
        self.u128(r.content_hash);
    }
    pub fn query(&mut self, q: &QueryDescriptors) {
        q.pdq.iter().for_each(|h| self.hash(h));
        self.u8(q.quality);
        self.u64(q.phash);
        self.bool(q.pdq_trim.is_some());
        if let Some(t) = &q.pdq_trim {
            t.iter().for_each(|h| self.hash(h));
        }
        self.len(q.keypoints.len());
        for k in &q.keypoints {
            k.desc.iter().for_each(|&d| self.u32(d));
            self.u32(u32::from(k.x) | u32::from(k.y) << 16);
        }
        self.bool(q.embedding.is_some());
        if let Some(e) = &q.embedding {
            self.len(e.len());
            e.iter().for_each(|&x| self.f32(x));
        }
    }
}

/// Reads the fields of one message, checking every length.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    kind: Kind,
}

impl<'a> Reader<'a> {
    /// Opens `b` as a message of `kind`.
    pub fn open(b: &'a [u8], kind: Kind) -> Result<Reader<'a>, FanoutError> {
        let not = || FanoutError(format!("not a lookalike {} message", kind.name()));
        if b.len() < 6 || &b[..4] != MAGIC {
            return Err(not());
        }
        if b[4] != VERSION {
            return Err(FanoutError(format!(
                "lookalike {} message of format version {} (this build reads version {VERSION})",
                kind.name(),
                b[4]
            )));
        }
        if b[5] != kind as u8 {
            return Err(not());
        }
        Ok(Reader { b: &b[6..], kind })
    }

    /// An error about this message.
    pub fn bad(&self, why: &str) -> FanoutError {
        FanoutError(format!(
            "corrupt lookalike {} message: {why}",
            self.kind.name()
        ))
    }

    /// Ends reading: no bytes may be left over.
    pub fn done(self) -> Result<(), FanoutError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(self.bad("trailing bytes"))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FanoutError> {
        if self.b.len() < n {
            return Err(self.bad("truncated"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], FanoutError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, FanoutError> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, FanoutError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.bad("a flag is neither 0 nor 1")),
        }
    }
    pub fn u32(&mut self) -> Result<u32, FanoutError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    pub fn u64(&mut self) -> Result<u64, FanoutError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    pub fn u128(&mut self) -> Result<u128, FanoutError> {
        Ok(u128::from_le_bytes(self.arr()?))
    }
    pub fn f32(&mut self) -> Result<f32, FanoutError> {
        Ok(f32::from_bits(self.u32()?))
    }
    pub fn f64(&mut self) -> Result<f64, FanoutError> {
        Ok(f64::from_bits(self.u64()?))
    }
    /// A count of items that take at least `min_size` bytes each.
    pub fn len(&mut self, min_size: usize) -> Result<usize, FanoutError> {
        let n = self.u64()?;
        if n.saturating_mul(min_size.max(1) as u64) > self.b.len() as u64 {
            return Err(self.bad("a count exceeds the message"));
        }
        Ok(n as usize)
    }
    pub fn str(&mut self) -> Result<String, FanoutError> {
        let n = self.len(1)?;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.bad("text is not UTF-8"))
    }
    pub fn opt_str(&mut self) -> Result<Option<String>, FanoutError> {
        Ok(if self.bool()? {
            Some(self.str()?)
        } else {
            None
        })
    }
    pub fn hash(&mut self) -> Result<Hash256, FanoutError> {
        Ok(Hash256 {
            words: [self.u64()?, self.u64()?, self.u64()?, self.u64()?],
        })
    }
    pub fn rec(&mut self) -> Result<RecordRef, FanoutError> {
        Ok(RecordRef {
            seg: self.u32()?,
            row: self.u32()?,
        })
    }
    pub fn matched(&mut self) -> Result<Match, FanoutError> {
        let m = Match {
            rec: self.rec()?,
            pdq_distance: self.u32()?,
            variant: self.u8()?,
            phash_distance: self.u32()?,
        };
        if m.pdq_distance > 256 || m.variant >= 32 || m.phash_distance > 64 {
            return Err(self.bad("a PDQ match out of range"));
        }
        Ok(m)
    }
    pub fn planned(&mut self) -> Result<Planned, FanoutError> {
        let rec = self.rec()?;
        let verify = self.bool()?;
        let pdq = if self.bool()? {
            Some(self.matched()?)
        } else {
            None
        };
        if pdq.is_some_and(|m| m.rec != rec) {
            return Err(self.bad("a planned candidate's match names another record"));
        }
        Ok(Planned { rec, pdq, verify })
    }
    pub fn candidate(&mut self) -> Result<Candidate, FanoutError> {
        let m = self.matched()?;
        let verification = if self.bool()? {
            let (matches, inliers, consensus) = (self.u32()?, self.u32()?, self.u32()?);
            let mut affine = [0f32; 6];
            for a in &mut affine {
                *a = self.f32()?;
            }
            let mut query_points = QueryPoints::default();
            for w in &mut query_points {
                *w = self.u64()?;
            }
            Some(Verification {
                matches,
                inliers,
                consensus,
                affine,
                query_points,
            })
        } else {
            None
        };
        let similarity = if self.bool()? {
            Some(self.f32()?)
        } else {
            None
        };
        Ok(Candidate {
            m,
            verification,
            similarity,
            score: self.f64()?,
        })
    }
    pub fn record(&mut self) -> Result<CandidateRecord, FanoutError> {
        Ok(CandidateRecord {
            path: self.str()?,
            quality: self.u8()?,
            content_hash: self.u128()?,
        })
    }
    pub fn query(&mut self) -> Result<QueryDescriptors, FanoutError> {
        let mut pdq = [Hash256::default(); 8];
        for h in &mut pdq {
            *h = self.hash()?;
        }
        let quality = self.u8()?;
        let phash = self.u64()?;
        let pdq_trim = if self.bool()? {
            let mut t = [Hash256::default(); 8];
            for h in &mut t {
                *h = self.hash()?;
            }
            Some(t)
        } else {
            None
        };
        let n = self.len(36)?;
        if n > crate::descriptors::keypoints::QUERY_KEYPOINTS {
            return Err(self.bad("more keypoints than a query has"));
        }
        let mut keypoints = Vec::with_capacity(n);
        for _ in 0..n {
            let mut desc = [0u32; 8];
            for d in &mut desc {
                *d = self.u32()?;
            }
            let xy = self.u32()?;
            keypoints.push(KeyPoint {
                desc,
                x: xy as u16,
                y: (xy >> 16) as u16,
            });
        }
        let embedding = if self.bool()? {
            let n = self.len(4)?;
            if n != crate::descriptors::embedding::EMBED_DIM {
                return Err(self.bad("an embedding of the wrong length"));
            }
            let mut e = Vec::with_capacity(n);
            for _ in 0..n {
                e.push(self.f32()?);
            }
            Some(e)
        } else {
            None
        };
        Ok(QueryDescriptors {
            pdq,
            quality,
            phash,
            pdq_trim,
            keypoints,
            embedding,
            regions: vec![],
        })
    }
}

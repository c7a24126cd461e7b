//! Request batching for engines that describe a batch at once (the GPU
//! engine: one dispatch for many images costs about what one image does).
//!
//! Each request decodes its images on the rayon pool, then queues them
//! here and waits. One thread takes everything queued (up to
//! [`MAX_IMAGES`]), optionally lingering [`super::Config::batch_wait`] for
//! more, and checks requests that share the index snapshot and options in
//! one [`crate::pipeline::check_decoded`] call: one `describe_queries`
//! (one dispatch per engine batch) for all of them. Under load the queue
//! fills while a batch runs, so batches grow with the load and add no wait
//! when there is none (continuous batching, as inference servers do it).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;

use super::metrics::Metrics;
use super::reload::Snapshot;
use crate::pipeline::CheckOptions;
use crate::search::result::QueryResult;

/// Most images checked in one call: what the GPU engine describes in one
/// batch of `check` (larger batches gain little and delay the first answer).
pub const MAX_IMAGES: usize = 32;

/// One request's decoded images: (name, content hash, pixels).
pub type Images = Vec<(String, u128, RgbImage)>;

/// A request waiting for its batch.
struct Job {
    snap: Arc<Snapshot>,
    opts: CheckOptions,
    images: Images,
    reply: tokio::sync::oneshot::Sender<Result<Vec<QueryResult>, String>>,
}

/// The queue and its thread (the thread ends when the `Batcher` is dropped).
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the batching thread; `wait`: how long a batch waits for more
    /// requests after the first (zero: only what is already queued).
    pub fn start(wait: Duration, metrics: Arc<Metrics>) -> std::io::Result<Batcher> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("lookalike-batcher".into())
            .spawn(move || run(rx, wait, &metrics))?;
        Ok(Batcher { tx })
    }

    /// Checks `images` with the next batch; results in input order. `Err`:
    /// the engine failed (its message) or the thread is gone.
    pub async fn check(
        &self,
        snap: Arc<Snapshot>,
        opts: CheckOptions,
        images: Images,
    ) -> Result<Vec<QueryResult>, String> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            snap,
            opts,
            images,
            reply,
        };
        self.tx
            .send(job)
            .map_err(|_| "the batching thread stopped".to_string())?;
        rx.await
            .map_err(|_| "the batching thread dropped a request".to_string())?
    }
}

/// Requests that can share one check call: the same snapshot and the same
/// per-request options (the rest of [`CheckOptions`] is the snapshot's).
fn same_call(a: &Job, b: &Job) -> bool {
    Arc::ptr_eq(&a.snap, &b.snap)
        && a.opts.top_k == b.opts.top_k
        && a.opts.verify == b.opts.verify
        && a.opts.regions == b.opts.regions
        && a.opts.embed == b.opts.embed
}

fn run(rx: mpsc::Receiver<Job>, wait: Duration, metrics: &Metrics) {
    while let Ok(first) = rx.recv() {
        let mut queued = first.images.len();
        let mut jobs = vec![first];
        let until = Instant::now() + wait;
        while queued < MAX_IMAGES {
            let next = match until.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => rx.recv_timeout(left).ok(),
                _ => rx.try_recv().ok(),
            };
            let Some(job) = next else { break };
            queued += job.images.len();
            jobs.push(job);
        }
        while !jobs.is_empty() {
            // The first job's group, in arrival order; the rest next round.
            let head = jobs.remove(0);
            let (mut group, rest): (Vec<Job>, Vec<Job>) =
                jobs.into_iter().partition(|j| same_call(&head, j));
            group.insert(0, head);
            jobs = rest;
            check_group(group, metrics);
        }
    }
}

/// One check call for `group`; each job gets its own images' results.
fn check_group(group: Vec<Job>, metrics: &Metrics) {
    let counts: Vec<usize> = group.iter().map(|j| j.images.len()).collect();
    let (snap, opts) = (group[0].snap.clone(), group[0].opts.clone());
    let mut replies = Vec::with_capacity(group.len());
    let mut all: Images = Vec::with_capacity(counts.iter().sum());
    for j in group {
        all.extend(j.images);
        replies.push(j.reply);
    }
    metrics.record_batch(all.len());
    match crate::pipeline::check_decoded(&snap.index, &all, &opts) {
        Ok(report) => {
            let mut results = report.results.into_iter();
            for (reply, n) in replies.into_iter().zip(counts) {
                // A client that gave up has dropped its receiver: nothing to do.
                let _ = reply.send(Ok(results.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(msg.clone()));
            }
        }
    }
}

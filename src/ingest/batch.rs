//! Batched, parallel read → content hash → decode → describe.
//!
//! Work proceeds one batch at a time (a few hundred files), so at most one
//! batch of compressed bytes and decoded thumbnails is in memory, whatever the
//! corpus size. Within a batch rayon spreads files over all cores.

use rayon::prelude::*;

use super::{decode, DecodeMode, Failure, FileEntry, Limits};

/// Files per batch: enough to keep every core busy, small enough that memory stays flat.
pub const BATCH: usize = 256;

/// One file of a batch after `process_batch`.
pub struct Processed<T> {
    /// The file as the walk found it.
    pub entry: FileEntry,
    /// xxh3-128 of the file bytes (exact-duplicate detection), 0 when unreadable.
    pub content_hash: u128,
    /// What became of it.
    pub outcome: Outcome<T>,
}

/// What `process_batch` made of one file.
pub enum Outcome<T> {
    /// Decoded and described.
    Done(T),
    /// Same bytes as a file already described: descriptors are copied, not recomputed.
    Duplicate(T),
    /// Not described: unreadable, over a limit, or undecodable.
    Skipped(Failure),
}

/// A file's bytes and their content hash, or why they could not be read.
type ReadResult = Result<(Vec<u8>, u128), Failure>;

/// Reads and hashes every file of the batch, then decodes and describes with
/// `describe` only the files whose content hash `known` does not already
/// resolve (exact duplicates inside the batch are described once).
pub fn process_batch<T, K, D>(
    entries: Vec<FileEntry>,
    mode: DecodeMode,
    limits: &Limits,
    known: K,
    describe: D,
) -> Vec<Processed<T>>
where
    T: Clone + Send + Sync,
    K: Fn(u128) -> Option<T>,
    D: Fn(&decode::Decoded) -> T + Sync,
{
    let read: Vec<(FileEntry, ReadResult)> = entries
        .into_par_iter()
        .map(|mut e| {
            // A streamed tar member comes with its bytes; a file is read here.
            let r = match e.bytes.take() {
                Some(r) => r,
                None => read_file(&e, limits),
            };
            let r = r.map(|bytes| {
                let h = xxhash_rust::xxh3::xxh3_128(&bytes);
                (bytes, h)
            });
            (e, r)
        })
        .collect();

    // Which files need decoding: first occurrence of each unknown content hash.
    let mut first_of: std::collections::HashMap<u128, usize> = Default::default();
    let mut plan: Vec<Plan<T>> = Vec::with_capacity(read.len());
    for (i, (_, r)) in read.iter().enumerate() {
        plan.push(match r {
            Err(why) => Plan::Skip(why.clone()),
            Ok((_, h)) => match known(*h) {
                Some(t) => Plan::Known(t),
                None => match first_of.get(h) {
                    Some(&j) => Plan::SameAs(j),
                    None => {
                        first_of.insert(*h, i);
                        Plan::Decode
                    }
                },
            },
        });
    }

    let decoded: Vec<Option<Result<T, Failure>>> = read
        .par_iter()
        .zip(plan.par_iter())
        .map(|((_, r), p)| match (r, p) {
            (Ok((bytes, _)), Plan::Decode) => {
                Some(decode::decode(bytes, mode, limits).map(|d| describe(&d)))
            }
            _ => None,
        })
        .collect();

    let mut out = Vec::with_capacity(read.len());
    for (i, ((entry, r), p)) in read.into_iter().zip(plan).enumerate() {
        let content_hash = r.as_ref().map(|(_, h)| *h).unwrap_or(0);
        let outcome = match p {
            Plan::Skip(why) => Outcome::Skipped(why),
            Plan::Known(t) => Outcome::Duplicate(t),
            Plan::Decode => match decoded[i].clone() {
                Some(Ok(t)) => Outcome::Done(t),
                Some(Err(why)) => Outcome::Skipped(why),
                None => unreachable!("planned decode always produces a result"),
            },
            Plan::SameAs(j) => match &decoded[j] {
                Some(Ok(t)) => Outcome::Duplicate(t.clone()),
                Some(Err(why)) => Outcome::Skipped(why.clone()),
                None => unreachable!("first occurrence was decoded"),
            },
        };
        out.push(Processed {
            entry,
            content_hash,
            outcome,
        });
    }
    out
}

enum Plan<T> {
    Skip(Failure),
    Known(T),
    SameAs(usize),
    Decode,
}

/// `Err` when a file of `size` bytes is over the `--max-mib` limit (it is
/// then not read at all: a tar member's bytes are skipped in the stream).
pub fn check_size(size: u64, limits: &Limits) -> Result<(), Failure> {
    if size > limits.max_bytes {
        return Err(too_big(limits));
    }
    Ok(())
}

fn too_big(limits: &Limits) -> Failure {
    Failure::limit(format!(
        "file larger than the {} MiB limit",
        limits.max_bytes >> 20
    ))
}

fn read_file(e: &FileEntry, limits: &Limits) -> Result<Vec<u8>, Failure> {
    read_regular(&e.path, e.size, limits)
}

/// The bytes of the regular file at `path`, listed at `size` bytes. It may
/// have been swapped since it was listed: open without blocking (a FIFO
/// cannot hang the worker), check the open file itself, and never read past
/// the limit whatever it grows to.
pub fn read_regular(
    path: &std::path::Path,
    size: u64,
    limits: &Limits,
) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    check_size(size, limits)?;
    let cannot = |err: std::io::Error| Failure::io(format!("cannot read: {err}"));
    let (file, md) = super::walk::open_nonblocking(path).map_err(cannot)?;
    if !md.is_file() {
        return Err(Failure::content(format!(
            "not a regular file ({})",
            super::walk::file_kind(&md)
        )));
    }
    let mut buf = Vec::with_capacity(md.len().min(limits.max_bytes) as usize);
    file.take(limits.max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(cannot)?;
    if buf.len() as u64 > limits.max_bytes {
        return Err(too_big(limits));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn entry(path: PathBuf, size: u64) -> FileEntry {
        FileEntry::on_disk(path, size, 0)
    }

    /// A FIFO put where the walk saw a file is refused at once (no hang
    /// waiting for a writer), and is not the file's own fault to retry.
    #[cfg(unix)]
    #[test]
    fn a_fifo_swapped_in_after_the_walk_is_refused_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.jpg");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_file(&entry(p, 10), &Limits::default()).unwrap_err();
        assert!(
            err.reason.contains("not a regular file (FIFO)"),
            "{}",
            err.reason
        );
    }

    /// A file that grew past the limit since it was listed is cut off at
    /// the limit, never read whole.
    #[test]
    fn a_file_grown_past_the_limit_is_not_read_whole() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.jpg");
        std::fs::write(&p, vec![7u8; 5000]).unwrap();
        let limits = Limits {
            max_bytes: 4096,
            ..Limits::default()
        };
        let err = read_file(&entry(p.clone(), 100), &limits).unwrap_err();
        assert!(err.reason.contains("larger than"), "{}", err.reason);
        assert_eq!(
            read_file(&entry(p, 5000), &Limits::default())
                .unwrap()
                .len(),
            5000
        );
    }
}

//! `skipped.tsv`: the files the last `index` run could not index, with the
//! reason, one per line (`path<TAB>reason`; control characters, tabs and
//! newlines included, and bytes that are not UTF-8 are escaped visibly, as
//! `ingest::names::terminal` writes them). Part of the index folder (see indexes/README.md);
//! rewritten by every run; `merge` adds the parts' lists to it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::IndexError;
use crate::ingest::names::terminal;
use crate::ingest::Skipped;

/// The file's name inside an index folder.
pub const FILE: &str = "skipped.tsv";

/// Writes `skipped` as the index folder's `skipped.tsv`; returns its path.
pub fn write(index_dir: &Path, skipped: &[Skipped]) -> Result<PathBuf, IndexError> {
    let path = index_dir.join(FILE);
    let io = |e| IndexError::io(&path, e);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
    writeln!(f, "path\treason").map_err(io)?;
    for s in skipped {
        writeln!(f, "{}\t{}", terminal(&s.path), terminal(&s.reason)).map_err(io)?;
    }
    f.flush().map_err(io)?;
    Ok(path)
}

/// Largest `skipped.tsv` a merge reads from a part (1 GiB: millions of lines).
const MAX_BYTES: u64 = 1 << 30;

/// Appends the lines of each part's `skipped.tsv` (escaped already) to
/// `index_dir`'s, after its own, leaving out lines already there: a build
/// split over machines and merged keeps one list of what it skipped. A part
/// without the file adds nothing. The new file replaces the old by rename.
/// Returns the lines added.
pub fn append_parts(index_dir: &Path, parts: &[PathBuf]) -> Result<usize, IndexError> {
    let read = |dir: &Path| -> Result<Vec<String>, IndexError> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(vec![]);
        }
        let bytes = super::column::read_regular(&path, MAX_BYTES, "the cap on skipped.tsv")?;
        Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    };
    let mut lines = read(index_dir)?;
    let mut seen: std::collections::HashSet<String> = lines.iter().cloned().collect();
    let before = lines.len();
    for p in parts {
        for l in read(p)? {
            if seen.insert(l.clone()) {
                lines.push(l);
            }
        }
    }
    let added = lines.len() - before;
    if added == 0 {
        return Ok(0);
    }
    let tmp = index_dir.join(format!("{FILE}.tmp"));
    let io = |e| IndexError::io(&tmp, e);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    writeln!(f, "path\treason").map_err(io)?;
    for l in &lines {
        writeln!(f, "{l}").map_err(io)?;
    }
    f.flush().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, index_dir.join(FILE)).map_err(io)?;
    Ok(added)
}

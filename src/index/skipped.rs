//! `skipped.tsv`: the files the last `index` run could not index, with the
//! reason, one per line (`path<TAB>reason`; control characters, tabs and
//! newlines included, and bytes that are not UTF-8 are escaped visibly, as
//! `ingest::names::terminal` writes them). Part of the index folder (see indexes/README.md);
//! rewritten by every run.

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

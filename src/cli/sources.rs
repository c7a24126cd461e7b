//! The inputs of `index` and `check`: the positional path (a folder, a tar
//! shard, an image, or a brace pattern) and `--files-from`.

use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result};

use crate::ingest::Inputs;

/// `DIR` (brace pattern expanded) followed by the paths `--files-from`
/// lists (`-`: standard input).
pub fn inputs(dir: Option<&Path>, files_from: Option<&Path>) -> Result<Inputs> {
    let mut inputs = match dir {
        Some(d) => Inputs::pattern(d).map_err(anyhow::Error::msg)?,
        None => Inputs::default(),
    };
    if let Some(list) = files_from {
        let listed = if list == Path::new("-") {
            Inputs::list(std::io::stdin().lock(), "standard input")
        } else {
            std::fs::File::open(list)
                .and_then(|f| Inputs::list(BufReader::new(f), &crate::report::path_text(list)))
        }
        .with_context(|| format!("reading the file list {}", list.display()))?;
        inputs = inputs.and(listed);
    }
    Ok(inputs)
}

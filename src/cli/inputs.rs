//! What a command was given, checked before it starts work: an input that
//! holds no image is an error (a typo'd folder must not pass a CI gate).

use std::path::Path;

use crate::ingest::walk::WalkItem;
use crate::ingest::{Inputs, Skipped, Walker};
use crate::report;

/// The image types the walk picks up, for messages.
const IMAGE_TYPES: &str = "JPEG, PNG, WebP, GIF, BMP, TIFF";

/// The error for an input with no image to work on. A path that does not
/// exist is an error whatever `--allow-empty` says; `skipped` (entries that
/// could not be read) are listed on stderr first; `allow_hint`: the command
/// has `--allow-empty`.
pub(crate) fn no_images(path: &Path, skipped: &[Skipped], allow_hint: bool) -> anyhow::Error {
    let text = report::path_text(path);
    let shown = report::terminal(&text);
    if !path.exists() {
        return anyhow::anyhow!("{shown}: no such file or folder");
    }
    empty(&shown, skipped, allow_hint)
}

/// [`no_images`] for all of a command's inputs (a brace pattern, a file
/// list): one path is judged as itself, several by their label.
pub(crate) fn no_images_among(
    srcs: &Inputs,
    skipped: &[Skipped],
    allow_hint: bool,
) -> anyhow::Error {
    match srcs.paths.as_slice() {
        [p] => no_images(p, skipped, allow_hint),
        _ => empty(&report::terminal(&srcs.label), skipped, allow_hint),
    }
}

fn empty(shown: &str, skipped: &[Skipped], allow_hint: bool) -> anyhow::Error {
    for s in skipped {
        eprintln!(
            "skipped {}: {}",
            report::terminal(&s.path),
            report::terminal(&s.reason)
        );
    }
    let unreadable = match skipped.len() {
        0 => String::new(),
        1 => " (1 entry could not be read, listed above)".into(),
        n => format!(" ({n} entries could not be read, listed above)"),
    };
    let hint = if allow_hint {
        "; pass --allow-empty to accept an empty folder"
    } else {
        ""
    };
    anyhow::anyhow!("{shown}: no image files in it ({IMAGE_TYPES}){unreadable}{hint}")
}

/// The error for a check in which every image file failed to decode.
pub(crate) fn none_readable(label: &str, skipped: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: 0 images checked, all {skipped} files were skipped (listed in the output); \
         pass --allow-empty to accept that",
        report::terminal(label)
    )
}

/// Whether the inputs hold at least one image file or tar shard (the walk
/// stops at the first), and what could not be read on the way: all of it
/// when there is none, for the message.
pub(crate) fn find_images(srcs: &Inputs) -> (bool, Vec<Skipped>) {
    let mut skipped = Vec::new();
    for p in &srcs.paths {
        if p.is_dir() {
            for item in Walker::new(p).with_shards() {
                match item {
                    WalkItem::File(_) | WalkItem::Shard(_) => return (true, skipped),
                    WalkItem::Skipped(s) => skipped.push(s),
                }
            }
        } else if p.is_file() {
            return (true, skipped);
        } else {
            let reason = if p.exists() {
                "not a regular file"
            } else {
                "no such file or folder"
            };
            skipped.push(Skipped {
                path: report::path_text(p),
                reason: reason.into(),
            });
        }
    }
    (false, skipped)
}

/// Fails before any work when `path` cannot be written (its folder is
/// missing, it is a folder, no permission), so a long run is not lost at
/// the end. A file that exists is opened for appending (not changed); one
/// that does not is created and removed again.
pub(crate) fn writable_output(path: &Path) -> anyhow::Result<()> {
    let shown = path.display();
    if path.is_dir() {
        anyhow::bail!("{shown}: is a folder, not a file to write");
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        anyhow::bail!(
            "{shown}: cannot write there: folder {} does not exist",
            parent.display()
        );
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("{shown}: cannot write there: {e}"))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

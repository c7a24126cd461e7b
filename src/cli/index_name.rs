//! Where `--index NAME|PATH` points. A value with a `/` in it or starting
//! with `.` is a path, taken as given. Any other value is a name: the index
//! folder `./NAME` if one exists there (a folder with a MANIFEST.json, so an
//! empty or unrelated `./NAME` never captures it), else `HOME/indexes/NAME`,
//! where HOME is `$LOOKALIKE_HOME`, else `$XDG_DATA_HOME/lookalike`, else
//! `~/.local/share/lookalike` (the CLI reads those variables; see `home`
//! in `cli/mod.rs`). So `-i mymodel` finds the same index from any folder.

use std::path::{Path, PathBuf};

use crate::index::manifest;

/// How an `--index` value was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexRef {
    /// A path (has a `/` or starts with `.`), or a name that is an index
    /// folder in the current folder.
    Path(PathBuf),
    /// A name, stored in the named-index folder.
    Named {
        /// The name as given.
        name: String,
        /// Its folder: `HOME/indexes/NAME`.
        dir: PathBuf,
    },
}

impl IndexRef {
    /// The index folder.
    pub(crate) fn dir(&self) -> &Path {
        match self {
            IndexRef::Path(p) => p,
            IndexRef::Named { dir, .. } => dir,
        }
    }
}

/// Whether an `--index` value is a path rather than a name.
pub(crate) fn is_path(arg: &str) -> bool {
    arg.starts_with('.') || arg.contains('/') || arg.contains(std::path::MAIN_SEPARATOR)
}

/// Resolves an `--index` value; `home` is the lookalike data folder (None:
/// no home could be found, and a name must be an index in the current folder).
pub(crate) fn resolve(arg: &str, home: Option<&Path>) -> anyhow::Result<IndexRef> {
    if arg.is_empty() {
        anyhow::bail!("--index: empty name");
    }
    let here = Path::new(arg);
    if is_path(arg) || here.join(manifest::FILE).is_file() {
        return Ok(IndexRef::Path(here.to_path_buf()));
    }
    match home {
        Some(home) => Ok(IndexRef::Named {
            name: arg.to_string(),
            dir: home.join("indexes").join(arg),
        }),
        None => anyhow::bail!(
            "--index {arg}: no folder for named indexes (set LOOKALIKE_HOME or HOME), \
             or give a path such as ./{arg}"
        ),
    }
}

/// The message for an index that is not there: where it was looked for and
/// how to make one, without repeating the command that just failed.
pub(crate) fn missing(r: &IndexRef) -> String {
    match r {
        IndexRef::Path(p) => format!(
            "no index at {} (`lookalike index TRAINING_DIR --index {}` builds one there)",
            p.display(),
            p.display()
        ),
        IndexRef::Named { name, dir } => {
            let mut s = format!(
                "no index named {name} (looked in {}; `lookalike index TRAINING_DIR --index {name}` \
                 builds it there, LOOKALIKE_HOME moves that folder)",
                dir.display()
            );
            if Path::new(name).exists() {
                s.push_str(&format!(
                    "; ./{name} exists but is not an index (no {})",
                    manifest::FILE
                ));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_live_under_home_and_paths_are_paths() {
        let home = Path::new("/h");
        let r = resolve("mymodel", Some(home)).unwrap();
        assert_eq!(r.dir(), Path::new("/h/indexes/mymodel"));
        for p in ["./mymodel", "../x", "a/b", "/abs/idx", ".hidden"] {
            assert_eq!(resolve(p, Some(home)).unwrap(), IndexRef::Path(p.into()));
        }
        assert!(resolve("mymodel", None).is_err());
        assert!(resolve("", Some(home)).is_err());
    }
}

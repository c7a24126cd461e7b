//! Where `--index NAME` lives: under $LOOKALIKE_HOME (or the XDG data
//! folder), the same from every working folder; a path is a path.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

/// Runs lookalike in `cwd` with only the given location variables set.
fn run_in(cwd: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut c = bin();
    c.current_dir(cwd)
        .env_remove("LOOKALIKE_HOME")
        .env_remove("XDG_DATA_HOME");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

#[test]
fn a_name_finds_the_same_index_from_any_folder() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("train");
    make_corpus(&data, 2, 0);
    let home = t.path().join("home");
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let env = [("LOOKALIKE_HOME", home.as_path())];
    let d = data.to_str().unwrap();
    let o = run_in(
        &work,
        &env,
        &["index", d, "-i", "mymodel", "-q", "--hash-only"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(home.join("indexes/mymodel/MANIFEST.json").is_file());
    assert!(!work.join("mymodel").exists() && !work.join("indexes").exists());
    // From the root folder too.
    let o = run_in(
        Path::new("/"),
        &env,
        &["check", d, "-i", "mymodel", "-q", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // An empty ./mymodel does not capture the name.
    std::fs::create_dir(work.join("mymodel")).unwrap();
    let o = run_in(&work, &env, &["info", "-i", "mymodel", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("home/indexes/mymodel"),
        "{}",
        stdout(&o)
    );
    // ./mymodel is a path, and not an index.
    let o = run_in(&work, &env, &["info", "-i", "./mymodel"]);
    assert_eq!(o.status.code(), Some(2));
    // Without LOOKALIKE_HOME: $XDG_DATA_HOME/lookalike/indexes.
    let xdg = t.path().join("xdg");
    let o = run_in(
        &work,
        &[("XDG_DATA_HOME", xdg.as_path())],
        &["index", d, "-i", "other", "-q", "--hash-only"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(xdg.join("lookalike/indexes/other/MANIFEST.json").is_file());
}

#[test]
fn a_missing_name_says_where_it_looked_without_repeating_the_command() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let o = run_in(
        t.path(),
        &[("LOOKALIKE_HOME", home.as_path())],
        &["check", "x", "-i", "nothere"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("no index named nothere"), "{err}");
    assert!(
        err.contains(&home.join("indexes/nothere").display().to_string()),
        "{err}"
    );
    assert!(!err.contains("check"), "{err}");
}

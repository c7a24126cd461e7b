//! Where results go: stdout that closes early (`| head`), output files that
//! cannot be written, error text.

mod common;

use std::process::Stdio;

use common::*;

/// A hash-only index of `n` synthetic images: (guard, training folder, index path).
fn small_index(n: usize) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("train");
    make_corpus(&data, n, 0);
    let idx = t.path().join("idx").display().to_string();
    let o = run(&[
        "index",
        data.to_str().unwrap(),
        "-i",
        &idx,
        "-q",
        "--hash-only",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (t, data, idx)
}

/// Runs lookalike with its stdout closed before it writes anything (what
/// `| head -1` does once it has its line): (exit code, stderr).
fn run_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    (o.status.code(), stderr(&o))
}

#[test]
fn json_into_a_closed_pipe_is_a_quiet_exit() {
    let (_t, data, idx) = small_index(3);
    let d = data.to_str().unwrap();
    let img = format!("{d}/img_000.jpg");
    for args in [
        &["query", &img, "-i", &idx, "--json"][..],
        &["hash", d, "--json"],
        &["info", "-i", &idx, "--json"],
        &["dedup", "-i", &idx, "--json"],
        &["check", d, "-i", &idx, "--json", "-q"],
    ] {
        let (code, err) = run_closed_stdout(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
    // The gate still fails on a match when nobody reads the results.
    let (code, err) =
        run_closed_stdout(&["check", d, "-i", &idx, "--json", "-q", "--fail-on-match"]);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn an_unwritable_report_path_fails_before_the_work() {
    let (t, data, idx) = small_index(2);
    let d = data.to_str().unwrap();
    let bad = t.path().join("no/such/dir/r.html");
    let o = run(&[
        "check",
        d,
        "-i",
        &idx,
        "-q",
        "--report",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("does not exist"), "{err}");
    // Failing early means no results were printed and nothing was checked.
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    let o = run(&["dedup", "-i", &idx, "--report", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    // A folder is not a file.
    let o = run(&[
        "check",
        d,
        "-i",
        &idx,
        "-q",
        "--report",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is a folder"), "{}", stderr(&o));
    // A good path is not left behind by the early check when the run fails.
    let good = t.path().join("r.html");
    let o = run(&[
        "check",
        "/no/such/input",
        "-i",
        &idx,
        "-q",
        "--report",
        good.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!good.exists());
}

#[test]
fn a_broken_model_breaks_only_the_commands_that_embed() {
    let (t, data, idx) = small_index(2);
    let d = data.to_str().unwrap();
    let model = t.path().join("missing.safetensors");
    let m = model.to_str().unwrap();
    let o = run(&["--model", m, "hash", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["--model", m, "info", "-i", &idx]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["--model", m, "check", d, "-i", &idx, "-q"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("missing.safetensors"), "{err}");
    // The reason is given once, not "...(os error 2): ...(os error 2)".
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
}

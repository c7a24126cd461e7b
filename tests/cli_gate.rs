//! The CI gate of `check`: what must fail it (nothing checked, a typo'd
//! path, -k 0) and the gate options (--min-score, --max-replication-rate).

mod common;

use common::*;

/// A hash-only index of `n` synthetic images in a fresh temp folder:
/// (guard, training folder, index path).
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

#[test]
fn a_missing_folder_fails_the_gate_and_is_named_once() {
    let (t, _, idx) = small_index(2);
    let typo = t.path().join("outptus");
    let o = run(&[
        "check",
        typo.to_str().unwrap(),
        "-i",
        &idx,
        "--fail-on-match",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("outptus: no such file or folder"), "{err}");
    assert_eq!(err.matches("outptus").count(), 1, "{err}");
    // --allow-empty does not excuse a path that is not there.
    let o = run(&[
        "check",
        typo.to_str().unwrap(),
        "-i",
        &idx,
        "--allow-empty",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn an_empty_folder_fails_unless_allowed() {
    let (t, _, idx) = small_index(2);
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "not an image").unwrap();
    let o = run(&["check", empty.to_str().unwrap(), "-i", &idx, "-q"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("empty: no image files in it"), "{err}");
    assert!(err.contains("--allow-empty"), "{err}");
    let o = run(&[
        "check",
        empty.to_str().unwrap(),
        "-i",
        &idx,
        "--allow-empty",
        "--json",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["images_checked"], 0);
}

#[test]
fn a_folder_of_unreadable_images_fails_unless_allowed() {
    let (t, _, idx) = small_index(2);
    let bad = t.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("broken.jpg"), b"\xff\xd8 not really").unwrap();
    let o = run(&["check", bad.to_str().unwrap(), "-i", &idx, "-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("0 images checked"), "{}", stderr(&o));
    let o = run(&[
        "check",
        bad.to_str().unwrap(),
        "-i",
        &idx,
        "-q",
        "--allow-empty",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn indexing_an_empty_or_missing_folder_fails_unless_allowed() {
    let t = tempfile::tempdir().unwrap();
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let idx = t.path().join("idx");
    let idx = idx.to_str().unwrap();
    let o = run(&["index", empty.to_str().unwrap(), "-i", idx, "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no image files"), "{}", stderr(&o));
    assert!(!std::path::Path::new(idx).exists(), "no index is created");
    let missing = t.path().join("nope");
    let o = run(&["index", missing.to_str().unwrap(), "-i", idx, "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no such file or folder"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "index",
        empty.to_str().unwrap(),
        "-i",
        idx,
        "-q",
        "--allow-empty",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn zero_candidates_is_rejected() {
    let (_t, data, idx) = small_index(2);
    let d = data.to_str().unwrap();
    let o = run(&["check", d, "-i", &idx, "-k", "0", "--fail-on-match", "-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("-k"), "{}", stderr(&o));
    let img = format!("{d}/img_000.jpg");
    let o = run(&["query", &img, "-i", &idx, "-k", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    // 1 is fine, and exact copies still fail the gate.
    let o = run(&["check", d, "-i", &idx, "-k", "1", "--fail-on-match", "-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

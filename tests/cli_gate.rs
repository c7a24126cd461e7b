//! The CI gate of `check`: what must fail it (nothing checked, a typo'd
//! path, -k 0) and the gate options (--min-score, --max-replication-rate).

mod common;

use common::*;

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

/// Queries: exact copies of the first `copies` training images plus
/// `novel` unrelated images, in a new folder under `t`.
fn queries(t: &std::path::Path, train: &std::path::Path, copies: usize, novel: usize) -> String {
    let q = t.join("queries");
    make_corpus(&q, novel, 500);
    for i in 0..copies {
        let name = format!("img_{i:03}.jpg");
        std::fs::copy(train.join(&name), q.join(format!("copy_{name}"))).unwrap();
    }
    q.display().to_string()
}

#[test]
fn max_replication_rate_gates_on_the_rate() {
    let (t, data, idx) = small_index(4);
    let q = queries(t.path(), &data, 2, 2); // rate 0.5
    let gate = |r: &str| run(&["check", &q, "-i", &idx, "-q", "--max-replication-rate", r]);
    let o = gate("0.6");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(gate("50%").status.code(), Some(0), "at the rate passes");
    let o = gate("40%");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("above --max-replication-rate"),
        "{}",
        stderr(&o)
    );
    assert_eq!(gate("1.5").status.code(), Some(2), "out of range");
    assert_eq!(gate("lots").status.code(), Some(2));
}

#[test]
fn min_score_raises_the_bar_for_a_match() {
    let (t, data, idx) = small_index(4);
    let q = queries(t.path(), &data, 2, 1);
    let o = run(&["check", &q, "-i", &idx, "-q", "--json", "--fail-on-match"]);
    assert_eq!(o.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["matched"], 2);
    let best = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["best_score"].as_f64().unwrap())
        .fold(0.0, f64::max);
    // A bar above every score: nothing counts, the gate passes.
    let o = run(&[
        "check",
        &q,
        "-i",
        &idx,
        "-q",
        "--json",
        "--fail-on-match",
        "--min-score",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["matched"], 0);
    assert_eq!(r["replication_rate"], 0.0);
    assert_eq!(r["thresholds"]["match_score"], 1.0);
    // A bar at the best score keeps that match.
    let s = format!("{best}");
    let o = run(&["check", &q, "-i", &idx, "-q", "--json", "--min-score", &s]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["matched"].as_u64().unwrap() >= 1, "{r}");
    // A bar under the default thresholds changes nothing.
    let o = run(&["check", &q, "-i", &idx, "-q", "--json", "--min-score", "0"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["matched"], 2);
}

//! Settings that change results are never overridden silently.

mod common;

use common::*;

#[test]
fn a_decode_setting_unlike_the_index_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("train");
    make_corpus(&data, 2, 0);
    let idx = t.path().join("idx").display().to_string();
    let d = data.to_str().unwrap();
    let o = run(&[
        "index",
        d,
        "-i",
        &idx,
        "-q",
        "--hash-only",
        "--thumb-side",
        "128",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for cmd in [&["check", d][..], &["query", &format!("{d}/img_000.jpg")]] {
        let mut args = cmd.to_vec();
        args.extend_from_slice(&["-i", &idx, "-q", "--thumb-side", "512"]);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}");
        let err = stderr(&o);
        assert!(
            err.contains("fast:128") && err.contains("fast:512"),
            "{err}"
        );
    }
    let o = run(&["check", d, "-i", &idx, "-q", "--exact"]);
    assert_eq!(o.status.code(), Some(2));
    // The index's own setting, said or implied, is fine.
    let o = run(&["check", d, "-i", &idx, "-q", "--thumb-side", "128"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["check", d, "-i", &idx, "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_hash_only_index_is_noted_and_recorded() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("train");
    make_corpus(&data, 2, 0);
    let idx = t.path().join("idx").display().to_string();
    let d = data.to_str().unwrap();
    let o = run(&["index", d, "-i", &idx, "-q", "--hash-only"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["check", d, "-i", &idx, "--json", "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("is hash-only").count(), 1, "{err}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["thresholds"]["embedding_model"].is_null(), "{r}");
    // Asked for: no note.
    let o = run(&[
        "check",
        d,
        "-i",
        &idx,
        "--json",
        "--device",
        "cpu",
        "--hash-only",
    ]);
    assert!(!stderr(&o).contains("is hash-only"), "{}", stderr(&o));
}

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

/// A quantised model runs in int8 on the CPU engine: the `device:` line
/// says so, the index lists it, and a later run in f32
/// (`LOOKALIKE_CNN_F32=1`) is added to the list; a float model's index
/// keeps the manifest older builds read (no list written).
#[test]
fn the_cnn_precision_is_said_and_recorded() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    make_corpus(&a, 2, 0);
    make_corpus(&b, 3, 0);
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tiny_resnet.onnx");
    let idx = t.path().join("idx").display().to_string();
    let precisions = |idx: &str| {
        let o = run(&["info", "-i", idx, "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["embedding_precisions"].clone()
    };
    // `index DIR -i IDX --device cpu` with the model, in f32 if asked;
    // returns its stderr after checking it succeeded.
    let index = |dir: &std::path::Path, idx: &str, f32: bool| {
        let mut c = bin();
        if f32 {
            c.env("LOOKALIKE_CNN_F32", "1");
        }
        let dir = dir.to_str().unwrap();
        let o = c
            .args(["--model", model, "index", dir, "-i", idx, "--device", "cpu"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    let err = index(&a, &idx, false);
    assert!(err.contains("device: CPU engine (CNN: int8"), "{err}");
    assert_eq!(precisions(&idx), serde_json::json!(["int8"]));
    let err = index(&b, &idx, true);
    assert!(err.contains("device: CPU engine (CNN: f32)"), "{err}");
    assert_eq!(precisions(&idx), serde_json::json!(["int8", "f32"]));
    let o = run(&["info", "-i", &idx]);
    assert!(
        stdout(&o).contains("computed in int8 and f32"),
        "{}",
        stdout(&o)
    );

    // A merge joins the inputs' lists (an input without one was f32).
    let f32_only = t.path().join("f32").display().to_string();
    index(&b, &f32_only, true);
    let merged = t.path().join("merged").display().to_string();
    let o = run(&["merge", &merged, &f32_only, &idx]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(precisions(&merged), serde_json::json!(["f32", "int8"]));

    let plain = t.path().join("plain").display().to_string();
    let o = run(&["index", a.to_str().unwrap(), "-i", &plain, "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(precisions(&plain), serde_json::json!(["f32"]));
    let manifest = std::fs::read_to_string(t.path().join("plain/MANIFEST.json")).unwrap();
    assert!(!manifest.contains("embedding_precisions"), "{manifest}");
}

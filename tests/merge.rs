//! Segment merging and the PDQ table through the CLI and the library:
//! incremental runs stay at a few segments, `compact` leaves one with the
//! same check results, a merge stopped midway loses nothing, a reader keeps
//! the segments it opened, and the table answers as the scan does.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use lookalike::index::merge::StopAt;
use serde_json::Value;

fn ok(args: &[&str]) -> Value {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

fn index(data: &Path, idx: &Path, extra: &[&str]) -> Value {
    let mut a = vec!["index", data.to_str().unwrap(), "-i", idx.to_str().unwrap()];
    a.extend_from_slice(&["--json", "-q"]);
    a.extend_from_slice(extra);
    ok(&a)
}

fn info(idx: &Path) -> Value {
    ok(&["info", "-i", idx.to_str().unwrap(), "--json"])
}

/// `check --json`'s results (matches and scores), without the index path.
fn check(queries: &str, idx: &Path, extra: &[&str]) -> Value {
    let mut a = vec![
        "check",
        queries,
        "-i",
        idx.to_str().unwrap(),
        "--json",
        "-q",
    ];
    a.extend_from_slice(extra);
    // Every segment tries its PDQ table first, however small.
    let o = bin()
        .env("LOOKALIKE_PDQ_TABLE_MIN_ROWS", "0")
        .args(&a)
        .output()
        .unwrap();
    assert!(o.status.success(), "{a:?}: {}", stderr(&o));
    let mut v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_object_mut().unwrap().remove("index");
    v
}

fn segment_dirs(idx: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(idx)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn training(n: usize) -> PathBuf {
    PathBuf::from(format!("{SAMPLE}/training/train_{n:02}.jpg"))
}

const GENERATED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample/generated");

#[test]
fn twenty_incremental_runs_leave_few_segments_and_compact_keeps_check_results() {
    let t = tempfile::tempdir().unwrap();
    let (data, idx) = (t.path().join("data"), t.path().join("idx"));
    std::fs::create_dir_all(&data).unwrap();
    // A file that is not an image: skipped every run, not retried.
    std::fs::write(data.join("broken.jpg"), b"not a jpeg at all").unwrap();
    let mut copies = vec![];
    for run in 0..20 {
        // A photo or two per run, plus changes that leave superseded and
        // removed records behind for the merges to drop.
        for n in [run, run + 20].into_iter().filter(|&n| n < 30) {
            let to = data.join(format!("train_{n:02}.jpg"));
            std::fs::copy(training(n), &to).unwrap();
            copies.push(to);
        }
        if run % 5 == 4 {
            std::fs::remove_file(&copies[run - 2]).unwrap();
        }
        if run % 7 == 6 {
            let p = &copies[run - 1];
            std::fs::copy(training(29 - run), p).unwrap();
        }
        index(&data, &idx, &["--hash-only"]);
        let n = info(&idx)["segment_count"].as_u64().unwrap();
        assert!(n <= 4, "run {run}: {n} segments");
        assert_eq!(segment_dirs(&idx).len() as u64, n, "no leftover folders");
    }
    let before = info(&idx);
    let check_before = check(GENERATED, &idx, &[]);
    let o = run(&["compact", "-i", idx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("-> 1"), "{}", stdout(&o));
    let after = info(&idx);
    assert_eq!(after["segment_count"], 1);
    assert_eq!(after["pdq_table_segments"], 1);
    assert_eq!(after["pdq_table_old_layout_segments"], 0);
    assert_eq!(after["keypoint_table_segments"], 1);
    assert_eq!(segment_dirs(&idx).len(), 1);
    assert_eq!(after["content_digest"], before["content_digest"]);
    assert_eq!(after["live_images"], before["live_images"]);
    assert_eq!(check(GENERATED, &idx, &[]), check_before);
    // The incremental logic sees the same files: nothing to do, the broken
    // file not retried.
    let s = index(&data, &idx, &["--hash-only"]);
    assert_eq!(s["described"], 0);
    assert_eq!(s["previously_failed"], 1);
    assert_eq!(s["unchanged"], before["live_images"].as_u64().unwrap() + 1);
    // The text of `info` names the count too.
    let o = run(&["info", "-i", idx.to_str().unwrap()]);
    assert!(stdout(&o).contains("in 1 segment)"), "{}", stdout(&o));
}

/// Three default-mode runs (keypoints, embeddings, graphs): three segments.
fn three_segments(t: &Path) -> (PathBuf, PathBuf) {
    let (data, idx) = (t.join("data"), t.join("idx"));
    std::fs::create_dir_all(&data).unwrap();
    for part in [0..10, 10..20, 20..30] {
        for n in part {
            std::fs::copy(training(n), data.join(format!("train_{n:02}.jpg"))).unwrap();
        }
        index(&data, &idx, &[]);
    }
    assert_eq!(info(&idx)["segment_count"], 3);
    (data, idx)
}

#[test]
fn a_merge_stopped_midway_loses_nothing_and_a_rerun_finishes() {
    let t = tempfile::tempdir().unwrap();
    let (_data, idx) = three_segments(t.path());
    let want = check(GENERATED, &idx, &[]);
    let digest = info(&idx)["content_digest"].clone();
    for (name, stop) in [
        ("written", StopAt::SegmentWritten),
        ("committed", StopAt::ManifestCommitted),
    ] {
        let copy = t.path().join(name);
        copy_dir(&idx, &copy);
        let e = lookalike::pipeline::compact(&copy, Some(stop)).unwrap_err();
        assert!(e.to_string().contains("simulated crash"), "{e}");
        // Both the merged folder and the old ones are on disk now...
        assert_eq!(segment_dirs(&copy).len(), 4, "{name}");
        let mid = info(&copy);
        let segs = if stop == StopAt::SegmentWritten { 3 } else { 1 };
        assert_eq!(mid["segment_count"], segs, "{name}");
        assert_eq!(mid["content_digest"], digest, "{name}");
        assert_eq!(check(GENERATED, &copy, &[]), want, "{name}");
        // ...and the next writer removes what the manifest does not name.
        let o = run(&["compact", "-i", copy.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(segment_dirs(&copy).len(), 1, "{name}");
        assert_eq!(info(&copy)["content_digest"], digest, "{name}");
        assert_eq!(check(GENERATED, &copy, &[]), want, "{name}");
    }
    // The merged segment carries every column, the graph and the table.
    let seg = idx.join(&segment_dirs(&idx)[0]);
    let o = run(&["compact", "-i", idx.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(!seg.exists(), "old segments removed");
    let merged = idx.join(&segment_dirs(&idx)[0]);
    for f in [
        "files.col",
        "paths.col",
        "pdq.col",
        "quality.col",
        "phash.col",
        "pdq_trim.col",
        "keypoints.col",
        "embedding.col",
        "hnsw.col",
        "pdq_mih_v2.col",
    ] {
        assert!(merged.join(f).is_file(), "{f}");
    }
    assert_eq!(check(GENERATED, &idx, &[]), want);
}

#[test]
fn a_reader_keeps_reading_the_segments_it_opened() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let idx = t.path().join("idx");
    make_corpus(&data, 6, 0);
    index(&data, &idx, &["--hash-only"]);
    make_corpus(&data, 6, 50);
    index(&data, &idx, &["--hash-only"]);
    let reader = lookalike::index::Index::open(&idx).unwrap();
    let digest = reader.content_digest();
    assert_eq!(reader.segments().len(), 2);
    lookalike::pipeline::compact(&idx, None).unwrap();
    assert_eq!(segment_dirs(&idx).len(), 1, "old folders removed");
    // The unlinked files stay mapped: every column is still readable.
    assert_eq!(reader.content_digest(), digest);
    assert_eq!(
        lookalike::index::Index::open(&idx)
            .unwrap()
            .content_digest(),
        digest
    );
}

/// Real images with many near copies each (resized, re-encoded), so a
/// query has more than k candidates within distance 31 and `check` takes
/// the PDQ table's path: its results equal those of the same index with
/// the tables deleted (which scans).
#[test]
fn the_pdq_table_gives_the_scans_check_results_on_real_images() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for n in 0..4 {
        let img = image::open(training(n)).unwrap().to_rgb8();
        for (v, side) in [96u32, 128, 160, 200, 240, 280, 320, 360, 400, 480, 512, 640]
            .into_iter()
            .enumerate()
        {
            let small = image::imageops::resize(
                &img,
                side,
                side * img.height() / img.width(),
                image::imageops::FilterType::Triangle,
            );
            save_jpeg(
                &small,
                &data.join(format!("t{n}_{v:02}.jpg")),
                60 + 3 * v as u8,
            );
        }
    }
    let idx = t.path().join("idx");
    index(&data, &idx, &["--hash-only"]);
    let scan = t.path().join("scan");
    copy_dir(&idx, &scan);
    for s in segment_dirs(&scan) {
        std::fs::remove_file(scan.join(s).join("pdq_mih_v2.col")).unwrap();
    }
    assert_eq!(info(&scan)["pdq_table_segments"], 0);
    let queries = format!("{SAMPLE}/training");
    let a = check(&queries, &idx, &["-k", "10"]);
    let b = check(&queries, &scan, &["-k", "10"]);
    let near = a["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["matches"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["pdq_distance"].as_u64().unwrap() <= 31)
                .count()
        })
        .max()
        .unwrap();
    assert!(near >= 10, "a query has {near} candidates within 31");
    assert_eq!(a, b);
}

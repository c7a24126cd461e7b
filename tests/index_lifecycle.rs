//! Index lifecycle through the CLI: incremental runs, duplicates, bad input,
//! crash safety and damaged index files.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn index_json(data: &Path, index: &Path) -> Value {
    index_json_with(data, index, &[])
}

fn info_json(index: &Path) -> Value {
    let o = run(&["info", "--index", index.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "info failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn incremental_reindex_processes_only_new_files_and_records_duplicates() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let idx = t.path().join("idx");
    make_corpus(&data, 20, 0);
    let s = index_json(&data, &idx);
    assert_eq!(
        (s["described"].as_u64(), s["unchanged"].as_u64()),
        (Some(20), Some(0))
    );

    // Unchanged folder: nothing decoded.
    let s = index_json(&data, &idx);
    assert_eq!(
        (s["described"].as_u64(), s["unchanged"].as_u64()),
        (Some(0), Some(20))
    );

    // 10 new files, two of them byte-identical copies of existing ones.
    make_corpus(&data, 8, 100);
    std::fs::copy(data.join("img_003.jpg"), data.join("copy_a.jpg")).unwrap();
    std::fs::copy(data.join("img_004.jpg"), data.join("sub_copy_b.jpg")).unwrap();
    let s = index_json(&data, &idx);
    assert_eq!(s["described"].as_u64(), Some(8), "{s}");
    assert_eq!(s["duplicates"].as_u64(), Some(2), "{s}");
    assert_eq!(s["unchanged"].as_u64(), Some(20));
    assert_eq!(info_json(&idx)["live_images"].as_u64(), Some(30));

    // A removed file is marked removed and no longer searchable.
    std::fs::remove_file(data.join("img_000.jpg")).unwrap();
    let s = index_json(&data, &idx);
    assert_eq!(s["removed"].as_u64(), Some(1));
    assert_eq!(info_json(&idx)["live_images"].as_u64(), Some(29));
}

#[test]
fn bad_files_are_skipped_with_reasons_and_the_rest_indexed() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let idx = t.path().join("idx");
    make_corpus(&data, 5, 0);
    std::fs::write(data.join("empty.jpg"), b"").unwrap();
    std::fs::write(data.join("notes.png"), b"this is not an image at all").unwrap();
    let good = std::fs::read(data.join("img_001.jpg")).unwrap();
    std::fs::write(data.join("truncated.jpg"), &good[..good.len() / 3]).unwrap();
    let mut garbled = good.clone();
    for b in garbled[good.len() / 4..].iter_mut().step_by(3) {
        *b = 0xFF;
    }
    std::fs::write(data.join("garbled.jpg"), &garbled).unwrap();
    std::fs::write(data.join("bomb.png"), png_bomb(50_000, 50_000)).unwrap();
    std::fs::write(data.join("readme.txt"), b"captions").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&data, data.join("loop")).unwrap();

    let o = run(&[
        "index",
        data.to_str().unwrap(),
        "--index",
        idx.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    let skipped: Vec<(String, String)> = s["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["path"].as_str().unwrap().to_string(),
                v["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason = |name: &str| {
        skipped
            .iter()
            .find(|(p, _)| p.ends_with(name))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{name} not reported: {skipped:?}"))
    };
    assert!(reason("empty.jpg").contains("empty"));
    assert!(
        reason("notes.png").contains("not an image"),
        "{}",
        reason("notes.png")
    );
    assert!(
        reason("truncated.jpg").contains("truncated"),
        "{}",
        reason("truncated.jpg")
    );
    assert!(
        reason("bomb.png").contains("too large"),
        "{}",
        reason("bomb.png")
    );
    #[cfg(unix)]
    assert!(reason("loop").contains("loop"), "{}", reason("loop"));
    // The five good images (and possibly the garbled one, if it still decodes) are indexed.
    let live = info_json(&idx)["live_images"].as_u64().unwrap();
    assert!(live == 5 || live == 6, "live = {live}");
    // The log file lists them too.
    let log = std::fs::read_to_string(idx.join("skipped.tsv")).unwrap();
    assert!(log.contains("bomb.png") && log.contains("empty.jpg"));
    // Unchanged bad files are not retried.
    let s = index_json(&data, &idx);
    assert_eq!(s["described"].as_u64(), Some(0), "{s}");
}

#[cfg(unix)]
#[test]
fn kill_during_index_then_rerun_equals_uninterrupted_run() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    make_corpus(&data, 400, 0);
    let clean = t.path().join("clean");
    // Hash-only: the crash-safety logic is the same with embeddings, and a
    // commit comes every batch within the wait below even in a debug build.
    index_json_with(&data, &clean, &["--hash-only"]);

    let crashed = t.path().join("crashed");
    for attempt in 0..3 {
        let _ = std::fs::remove_dir_all(&crashed);
        let mut child = bin()
            .args([
                "index",
                data.to_str().unwrap(),
                "--index",
                crashed.to_str().unwrap(),
                "-q",
                "--threads",
                "1",
                "--hash-only",
            ])
            .env("LOOKALIKE_COMMIT_EVERY", "20")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill (SIGKILL) right after the first commit: mid-run, with work pending.
        let start = Instant::now();
        while !crashed.join("MANIFEST.json").exists() && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(30 * attempt));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if !status.success() {
            break; // killed mid-run, as intended
        }
    }
    // What was committed is readable...
    let mid = info_json(&crashed);
    let mid_n = mid["live_images"].as_u64().unwrap();
    assert!(
        mid_n < 400,
        "the kill came too late to test anything ({mid_n} indexed)"
    );
    // ...and a rerun finishes the job, giving the same index content.
    let s = index_json_with(&data, &crashed, &["--hash-only"]);
    assert_eq!(s["unchanged"].as_u64(), Some(mid_n));
    let (a, b) = (info_json(&clean), info_json(&crashed));
    assert_eq!(a["live_images"], b["live_images"]);
    assert_eq!(a["content_digest"], b["content_digest"]);
}

fn first_segment(idx: &Path) -> std::path::PathBuf {
    idx.join("seg-000001")
}

#[test]
fn damaged_index_files_give_clear_errors_not_panics() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    make_corpus(&data, 6, 0);
    let pristine = t.path().join("pristine");
    index_json(&data, &pristine);

    let copy = |name: &str| {
        let dst = t.path().join(name);
        std::fs::create_dir_all(dst.join("seg-000001")).unwrap();
        for e in std::fs::read_dir(&pristine).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
            }
        }
        for e in std::fs::read_dir(first_segment(&pristine))
            .unwrap()
            .flatten()
        {
            std::fs::copy(e.path(), dst.join("seg-000001").join(e.file_name())).unwrap();
        }
        dst
    };
    let expect_error = |idx: &Path, needle: &str| {
        let o = run(&["info", "--index", idx.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.to_lowercase().contains(needle),
            "expected '{needle}' in: {err}"
        );
        // Queries refuse it the same way.
        let img = data.join("img_001.jpg");
        let o = run(&[
            "query",
            img.to_str().unwrap(),
            "--index",
            idx.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(!stderr(&o).contains("panicked"));
    };

    // Truncated column.
    let d = copy("truncated");
    let f = first_segment(&d).join("pdq.col");
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    expect_error(&d, "truncated");

    // One flipped bit in the payload.
    let d = copy("tampered");
    let f = first_segment(&d).join("phash.col");
    let mut b = std::fs::read(&f).unwrap();
    b[70] ^= 1;
    std::fs::write(&f, &b).unwrap();
    expect_error(&d, "checksum");

    // A path offset pointing outside paths.col, with a fixed-up checksum: caught by range validation.
    let d = copy("badoffset");
    let f = first_segment(&d).join("files.col");
    let mut b = std::fs::read(&f).unwrap();
    b[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&b[64..]);
    b[40..48].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&f, &b).unwrap();
    expect_error(&d, "outside");

    // Tiny file (shorter than the header).
    let d = copy("tiny");
    std::fs::write(first_segment(&d).join("quality.col"), b"LK").unwrap();
    expect_error(&d, "shorter than");

    // Future format version.
    let d = copy("future");
    let m = std::fs::read_to_string(d.join("MANIFEST.json"))
        .unwrap()
        .replace("\"version\": 1", "\"version\": 99");
    std::fs::write(d.join("MANIFEST.json"), m).unwrap();
    expect_error(&d, "version 99");

    // Foreign files.
    let d = copy("foreign");
    std::fs::write(d.join("MANIFEST.json"), b"{\"hello\": 1}").unwrap();
    expect_error(&d, "not a lookalike index");
    let d = copy("garbage");
    std::fs::write(d.join("MANIFEST.json"), b"\x00\x01binary").unwrap();
    expect_error(&d, "not a lookalike index");

    // Missing segment directory.
    let d = copy("missing");
    std::fs::remove_dir_all(first_segment(&d)).unwrap();
    expect_error(&d, "missing");

    // No index at all.
    expect_error(&t.path().join("nothing-here"), "no index");
}

#[test]
fn refuses_to_write_an_index_into_a_folder_with_other_files() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    make_corpus(&data, 2, 0);
    let o = run(&[
        "index",
        data.to_str().unwrap(),
        "--index",
        data.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("refusing"), "{}", stderr(&o));
}

#[test]
fn index_records_its_decode_setting_and_refuses_a_different_one() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let idx = t.path().join("idx");
    make_corpus(&data, 3, 0);
    let (d, i) = (data.to_str().unwrap(), idx.to_str().unwrap());
    let o = run(&["index", d, "--index", i, "--thumb-side", "128", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(info_json(&idx)["decode"], "fast:128");
    // Same setting implied: fine. A different one: refused with a reason.
    assert!(run(&["index", d, "--index", i, "-q"]).status.success());
    let o = run(&["index", d, "--index", i, "--exact", "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("fast:128"), "{}", stderr(&o));
    // Queries are decoded like the index: an indexed file matches itself at distance 0.
    let o = run(&[
        "query",
        data.join("img_001.jpg").to_str().unwrap(),
        "--index",
        i,
        "--json",
    ]);
    let q: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(q["matches"][0]["pdq_distance"], 0);
}

#[test]
fn no_keypoints_is_recorded_kept_and_matches_on_hashes_alone() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let idx = t.path().join("idx");
    // Photos (the sample's): the synthetic fixtures are too smooth to have corners.
    std::fs::create_dir_all(&data).unwrap();
    let photo = |n: usize| {
        let to = data.join(format!("train_{n:02}.jpg"));
        std::fs::copy(format!("{SAMPLE}/training/train_{n:02}.jpg"), &to).unwrap();
        to
    };
    let files: Vec<_> = (0..3).map(photo).collect();
    let (d, i) = (data.to_str().unwrap(), idx.to_str().unwrap());
    index_json_with(&data, &idx, &["--hash-only", "--no-keypoints"]);
    let info = info_json(&idx);
    assert_eq!(info["keypoints"], false);
    assert!(!info["descriptors"]
        .as_array()
        .unwrap()
        .contains(&"keypoints".into()));
    // A later run without the flag keeps the index's setting.
    photo(3);
    photo(4);
    let s = index_json_with(&data, &idx, &["--hash-only"]);
    assert_eq!(s["described"], 2);
    let keypoint_columns = |idx: &Path| -> (usize, usize) {
        let segs: Vec<_> = std::fs::read_dir(idx)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("paths.col").exists())
            .collect();
        let with = segs.iter().filter(|p| p.join("keypoints.col").exists());
        (segs.len(), with.count())
    };
    assert_eq!(keypoint_columns(&idx), (2, 0), "2 segments, no keypoints");
    // An indexed file still matches itself, on hash evidence, unverified.
    let o = run(&["query", files[0].to_str().unwrap(), "--index", i, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("no keypoints"), "{}", stderr(&o));
    let q: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(q["matches"][0]["pdq_distance"], 0);
    assert_eq!(q["matches"][0]["verdict"], "exact");
    assert!(q["matches"][0]["inliers"].is_null());
    // Dropping keypoints from an index that keeps them is refused.
    let kept = t.path().join("kept");
    index_json_with(&data, &kept, &["--hash-only"]);
    assert_eq!(info_json(&kept)["keypoints"], true);
    assert_eq!(
        keypoint_columns(&kept),
        (1, 1),
        "these photos have keypoints"
    );
    let o = run(&[
        "index",
        d,
        "--index",
        kept.to_str().unwrap(),
        "--hash-only",
        "--no-keypoints",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--no-keypoints"), "{}", stderr(&o));
}

/// Runs `info` and a hash-only `check` on `idx`; both must fail at once (a
/// FIFO must not hang them) with every needle in the message.
fn refused_at_once(idx: &Path, query: &Path, needles: &[&str]) {
    for args in [
        vec!["info", "--index", idx.to_str().unwrap()],
        vec![
            "check",
            query.to_str().unwrap(),
            "--index",
            idx.to_str().unwrap(),
            "--hash-only",
            "-q",
        ],
    ] {
        let mut child = bin()
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t0.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap();
                panic!("{args:?} hung on {}", idx.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        for n in needles {
            assert!(
                err.to_lowercase().contains(&n.to_lowercase()),
                "{args:?}: expected '{n}' in: {err}"
            );
        }
    }
}

fn copy_index(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_dir() {
            copy_index(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[cfg(unix)]
fn mkfifo(p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let _ = std::fs::remove_file(p);
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// The manifest is read strictly: a key out of the schema, a missing key or
/// a value that does not parse is an error naming the key, never a silent
/// default (a misspelt "embedding" used to turn the index hash-only).
#[test]
fn manifest_is_strict_and_bounded() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    make_corpus(&data, 3, 0);
    let query = data.join("img_000.jpg");
    let pristine = t.path().join("pristine");
    index_json(&data, &pristine); // with embeddings: the manifest has "embedding"
    let text = std::fs::read_to_string(pristine.join("MANIFEST.json")).unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    let edited = |from: &str, to: &str| {
        assert!(text.contains(from), "{from} not in {text}");
        let d = t.path().join(format!(
            "m{}",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        copy_index(&pristine, &d);
        std::fs::write(d.join("MANIFEST.json"), text.replacen(from, to, 1)).unwrap();
        d
    };
    // The case: one letter of "embedding".
    refused_at_once(
        &edited("\"embedding\"", "\"embeddinf\""),
        &query,
        &["embeddinf"],
    );
    refused_at_once(
        &edited("{", "{\"colour\": 1,"),
        &query,
        &["colour", "unknown"],
    );
    refused_at_once(
        &edited("\"path_bytes\"", "\"path_bytez\""),
        &query,
        &["path_bytez"],
    );
    let generation = text.lines().find(|l| l.contains("\"generation\"")).unwrap();
    refused_at_once(&edited(generation, ""), &query, &["missing", "generation"]);
    refused_at_once(
        &edited("\"generation\": ", "\"generation\": \"x\", \"_\": "),
        &query,
        &["generation"],
    );
    for bad in ["fasT:512", "fast:-1", "fast:", "fast:+512", "exact "] {
        let d = edited("\"fast:512\"", &format!("\"{bad}\""));
        refused_at_once(&d, &query, &["decode", bad]);
    }
    let model = text.lines().find(|l| l.contains("\"embedding\"")).unwrap();
    let model = model.split('"').nth(3).unwrap();
    refused_at_once(
        &edited(model, "no-fingerprint"),
        &query,
        &["embedding", "no-fingerprint"],
    );

    // Not a regular file, or too big: refused before reading.
    #[cfg(unix)]
    {
        let d = edited("{", "{");
        mkfifo(&d.join("MANIFEST.json"));
        refused_at_once(&d, &query, &["MANIFEST.json", "not a regular file (FIFO)"]);
        let d = edited("{", "{");
        std::fs::remove_file(d.join("MANIFEST.json")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.join("MANIFEST.json")).unwrap();
        refused_at_once(&d, &query, &["MANIFEST.json", "character device"]);
    }
    let d = edited("{", "{");
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("MANIFEST.json"))
        .unwrap();
    f.set_len(65 << 20).unwrap(); // sparse: costs no disk
    refused_at_once(&d, &query, &["MANIFEST.json", "more than the 67108864"]);

    // Every manifest the writer writes still reads: with and without
    // embeddings, with keypoints off, and an index that holds nothing yet.
    let empty = t.path().join("empty-data");
    std::fs::create_dir_all(&empty).unwrap();
    for (dir, extra) in [
        ("hash-only", &["--hash-only"][..]),
        ("no-kp", &["--hash-only", "--no-keypoints"][..]),
    ] {
        index_json_with(&data, &t.path().join(dir), extra);
        info_json(&t.path().join(dir));
    }
    index_json_with(&empty, &t.path().join("nothing"), &["--allow-empty"]);
    assert_eq!(info_json(&t.path().join("nothing"))["records"], 0);
    assert!(info_json(&pristine)["embedding_model"].is_string());
}

/// Column files and the HNSW graph are opened only when they are regular
/// files no larger than the manifest allows; paths.col damage is named as such.
#[test]
fn index_files_must_be_regular_and_within_their_size() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    make_corpus(&data, 3, 0);
    let query = data.join("img_000.jpg");
    let pristine = t.path().join("pristine");
    index_json(&data, &pristine);
    assert!(first_segment(&pristine).join("hnsw.col").exists());
    let n = std::sync::atomic::AtomicUsize::new(0);
    let fresh = || {
        let d = t.path().join(format!(
            "c{}",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        copy_index(&pristine, &d);
        d
    };
    #[cfg(unix)]
    for file in ["files.col", "paths.col", "hnsw.col"] {
        let d = fresh();
        mkfifo(&first_segment(&d).join(file));
        refused_at_once(&d, &query, &[file, "not a regular file (FIFO)"]);
    }
    #[cfg(unix)]
    {
        let d = fresh();
        let f = first_segment(&d).join("pdq.col");
        std::fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &f).unwrap();
        refused_at_once(
            &d,
            &query,
            &["pdq.col", "not a regular file (character device)"],
        );
    }
    let d = fresh();
    let f = first_segment(&d).join("quality.col");
    std::fs::remove_file(&f).unwrap();
    std::fs::create_dir(&f).unwrap();
    refused_at_once(
        &d,
        &query,
        &["quality.col", "not a regular file (directory)"],
    );

    // Longer than its records allow: refused from its size alone.
    let d = fresh();
    let f = first_segment(&d).join("phash.col");
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len + (1 << 30))
        .unwrap();
    refused_at_once(&d, &query, &["phash.col", "more than"]);

    // paths.col holding one byte more than the manifest says, its header
    // and checksum consistent: damage to the path names, not to records.
    let d = fresh();
    let f = first_segment(&d).join("paths.col");
    let mut b = std::fs::read(&f).unwrap();
    b.push(b'x');
    let count = u64::from_le_bytes(b[32..40].try_into().unwrap()) + 1;
    b[32..40].copy_from_slice(&count.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&b[64..]);
    b[40..48].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&f, &b).unwrap();
    refused_at_once(&d, &query, &["paths.col", "bytes of path names"]);
    // And truncated.
    let d = fresh();
    let f = first_segment(&d).join("paths.col");
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    refused_at_once(
        &d,
        &query,
        &["paths.col", "bytes of path names", "truncated"],
    );
}

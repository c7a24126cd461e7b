//! WebDataset tar shards and `--files-from` as inputs of `index` and
//! `check`: same descriptors as the extracted folder, incremental reruns,
//! damaged shards reported without stopping the run, reports that show
//! images inside shards.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;
use lookalike::descriptors::Descriptors;
use lookalike::index::{Index, RecordRef};
use serde_json::Value;

/// Writes a tar shard of `(name, bytes)` members, all with one mtime.
fn write_shard(path: &Path, members: &[(String, Vec<u8>)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.finish().unwrap();
}

/// img2dataset's layout: `key.jpg` with its `key.txt` and `key.json`.
fn members(files: &[PathBuf]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for f in files {
        let key = f.file_stem().unwrap().to_str().unwrap();
        out.push((format!("{key}.jpg"), std::fs::read(f).unwrap()));
        out.push((format!("{key}.txt"), b"a caption".to_vec()));
        out.push((format!("{key}.json"), b"{\"url\": null}".to_vec()));
    }
    out
}

fn index_json(args: &[&str]) -> Value {
    let mut all = vec!["index"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--hash-only", "--json", "-q"]);
    let o = run(&all);
    assert!(o.status.success(), "index failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("index --json is JSON")
}

/// Live records of an index: file name → (content hash, descriptors), and
/// the full paths.
fn records(dir: &Path) -> (BTreeMap<String, (u128, Descriptors)>, Vec<String>) {
    let idx = Index::open(dir).unwrap();
    let (mut by_name, mut paths) = (BTreeMap::new(), Vec::new());
    for (si, s) in idx.segments().iter().enumerate() {
        for row in 0..s.len() {
            let r = RecordRef {
                seg: si as u32,
                row: row as u32,
            };
            if !idx.is_live(r) {
                continue;
            }
            let p = idx.path(r);
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let v = (s.files()[row].content_hash(), s.descriptors(row));
            by_name.insert(name, v);
            paths.push(p.display().to_string());
        }
    }
    (by_name, paths)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn shards_index_like_the_extracted_folder_and_rerun_incrementally() {
    let t = tempfile::tempdir().unwrap();
    let files = make_corpus(&t.path().join("extracted"), 9, 700);
    let shards = t.path().join("shards");
    write_shard(&shards.join("00000.tar"), &members(&files[..4]));
    write_shard(&shards.join("00001.tar"), &members(&files[4..7]));
    let (idx_dir, idx_tar) = (t.path().join("idx_dir"), t.path().join("idx_tar"));

    // The folder of the first 7 images, and the shards by brace pattern.
    let only7 = t.path().join("seven");
    std::fs::create_dir_all(&only7).unwrap();
    for f in &files[..7] {
        std::fs::copy(f, only7.join(f.file_name().unwrap())).unwrap();
    }
    index_json(&[s(&only7), "--index", s(&idx_dir)]);
    let pattern = format!("{}/{{00000..00001}}.tar", s(&shards));
    let j = index_json(&[&pattern, "--index", s(&idx_tar)]);
    assert_eq!(j["described"], 7, "{j}");
    assert_eq!(j["not_images"], 14, "captions and metadata: {j}");
    assert!(j["skipped"].as_array().unwrap().is_empty(), "{j}");

    let (a, _) = records(&idx_dir);
    let (b, paths) = records(&idx_tar);
    assert_eq!(a.len(), 7);
    assert_eq!(a, b, "same descriptors and content hashes, paths aside");
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with("shards/00000.tar/img_700.jpg")),
        "{paths:?}"
    );

    // Rerun over the folder of shards: nothing new. A new shard: only it.
    let j = index_json(&[s(&shards), "--index", s(&idx_tar)]);
    assert_eq!(j["described"], 0, "{j}");
    assert_eq!(j["unchanged"], 7, "{j}");
    assert_eq!(j["removed"], 0, "{j}");
    write_shard(&shards.join("00002.tar"), &members(&files[7..]));
    let j = index_json(&[s(&shards), "--index", s(&idx_tar)]);
    assert_eq!(
        (j["described"].as_u64(), j["unchanged"].as_u64()),
        (Some(2), Some(7)),
        "{j}"
    );
    assert_eq!(j["live_records"], 9, "{j}");

    // A shard rewritten without one member: that member is removed, the
    // others are not described again.
    write_shard(&shards.join("00000.tar"), &members(&files[..3]));
    let j = index_json(&[s(&shards), "--index", s(&idx_tar)]);
    assert_eq!(
        (j["described"].as_u64(), j["removed"].as_u64()),
        (Some(0), Some(1)),
        "{j}"
    );
    assert_eq!(j["live_records"], 8, "{j}");

    // check against the tar-built index finds the extracted copies, and
    // its HTML report shows the training images inside the shards.
    let report = t.path().join("r.html");
    let o = run(&[
        "check",
        s(&t.path().join("extracted")),
        "--index",
        s(&idx_tar),
        "--json",
        "--report",
        s(&report),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["matched"], 8, "{r}");
    let cand = r["results"][0]["matches"][0]["candidate"].as_str().unwrap();
    assert!(cand.contains(".tar/img_"), "{cand}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("alt=\"training image\""),
        "no training thumbnail"
    );
    assert!(!html.contains("cannot show"), "a thumbnail failed to load");

    // Queries inside a shard are named SHARD.tar/MEMBER.
    let o = run(&[
        "check",
        s(&shards.join("00001.tar")),
        "--index",
        s(&idx_dir),
        "--json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (r["images_checked"].as_u64(), r["matched"].as_u64()),
        (Some(3), Some(3)),
        "{r}"
    );
    let q = r["results"][0]["query"].as_str().unwrap();
    assert!(q.ends_with("00001.tar/img_704.jpg"), "{q}");
}

#[test]
fn damaged_shards_are_reported_and_the_run_goes_on() {
    let t = tempfile::tempdir().unwrap();
    let files = make_corpus(&t.path().join("x"), 6, 800);
    let shards = t.path().join("shards");
    let mut bad = members(&files[..2]);
    bad.insert(
        3,
        (
            "broken.jpg".into(),
            b"\xff\xd8\xff\xe0 not really a JPEG".to_vec(),
        ),
    );
    write_shard(&shards.join("a.tar"), &bad);
    // Cut in the middle of the third image: two images survive.
    let cut = shards.join("b.tar");
    write_shard(&cut, &members(&files[2..6]));
    let whole = std::fs::read(&cut).unwrap();
    let third = whole
        .windows(11)
        .position(|w| w == b"img_804.jpg")
        .expect("third member header");
    std::fs::write(&cut, &whole[..third + 512 + 700]).unwrap();

    let idx = t.path().join("idx");
    let j = index_json(&[s(&shards), "--index", s(&idx)]);
    assert_eq!(j["described"], 4, "{j}");
    let skipped = j["skipped"].as_array().unwrap();
    let reason = |suffix: &str| {
        skipped
            .iter()
            .find(|s| s["path"].as_str().unwrap().ends_with(suffix))
            .map(|s| s["reason"].as_str().unwrap().to_string())
    };
    assert!(reason("a.tar/broken.jpg").is_some(), "{j}");
    assert!(
        reason("b.tar/img_804.jpg").unwrap().contains("truncated"),
        "{j}"
    );
    assert!(reason("shards/b.tar").unwrap().contains("truncated"), "{j}");
    let tsv = std::fs::read_to_string(idx.join("skipped.tsv")).unwrap();
    assert!(tsv.contains("a.tar/broken.jpg"), "{tsv}");

    // The damage lies in the bytes: a rerun reads neither shard again.
    let j = index_json(&[s(&shards), "--index", s(&idx)]);
    assert_eq!(j["described"], 0, "{j}");
    assert_eq!(j["live_records"], 4, "{j}");
    assert!(j["previously_failed"].as_u64().unwrap() >= 2, "{j}");
}

#[test]
fn files_from_standard_input_and_a_list_file() {
    let t = tempfile::tempdir().unwrap();
    let files = make_corpus(&t.path().join("x"), 5, 900);
    let shard = t.path().join("one.tar");
    write_shard(&shard, &members(&files[..3]));
    let idx = t.path().join("idx");
    let list = format!("{}\n\n{}\r\n{}\n", s(&shard), s(&files[3]), s(&files[4]));

    let mut child = bin()
        .args(["index", "--files-from", "-", "--index", s(&idx)])
        .args(["--hash-only", "--json", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["described"], 5, "{j}");
    assert!(j["skipped"].as_array().unwrap().is_empty(), "{j}");

    // check --files-from a list file; a missing entry is listed as skipped.
    let listed = t.path().join("queries.txt");
    std::fs::write(
        &listed,
        format!("{}\n{}/nope.jpg\n", s(&files[0]), s(t.path())),
    )
    .unwrap();
    let o = run(&[
        "check",
        "--files-from",
        s(&listed),
        "--index",
        s(&idx),
        "--json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (r["images_checked"].as_u64(), r["matched"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(r["skipped"][0]["reason"], "no such file or folder", "{r}");
}

//! `lookalike merge OUT INDEX...`: indexes built in parts (one per tar
//! shard) and merged equal the index built in one run (content digest,
//! live images, check results); parts built with other settings are
//! refused; merging appends to an existing index; a later input's record
//! of a path wins; a merge stopped before its commit leaves OUT as it was.
//! (tests/merge.rs is about merging segments inside one index.)

mod common;

use std::path::{Path, PathBuf};

use common::*;
use lookalike::index::{flags, Index};
use serde_json::Value;

fn ok(args: &[&str]) -> Value {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

/// The error message of a command that must fail with exit code 2.
fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
    stderr(&o)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn info(idx: &Path) -> Value {
    ok(&["info", "-i", s(idx), "--json"])
}

/// `index SRC -i IDX --json -q` plus `extra`.
fn index(src: &str, idx: &Path, extra: &[&str]) -> Value {
    let mut a = vec!["index", src, "-i", s(idx), "--json", "-q"];
    a.extend_from_slice(extra);
    ok(&a)
}

fn merge(out: &Path, inputs: &[&Path]) -> Value {
    let mut a = vec!["merge", s(out)];
    a.extend(inputs.iter().map(|p| s(p)));
    a.push("--json");
    ok(&a)
}

/// `check --json` without the index path (the only field that names it).
fn check(queries: &Path, idx: &Path) -> Value {
    let mut v = ok(&["check", s(queries), "-i", s(idx), "--json", "-q"]);
    v.as_object_mut().unwrap().remove("index");
    v
}

/// Writes a tar shard of `(name, bytes)` members, all with one mtime.
fn write_shard(path: &Path, members: &[(String, Vec<u8>)]) {
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

/// Ten shards `s0.tar` … `s9.tar` of three images each, with one file of
/// s2 again in s7 under another name (a cross-shard duplicate) and a
/// truncated JPEG in s4; and a query folder (two copies, a novel image).
fn shards(root: &Path) -> (Vec<PathBuf>, PathBuf) {
    let files = make_corpus(&root.join("images"), 31, 900);
    let read = |i: usize| std::fs::read(&files[i]).unwrap();
    let mut paths = Vec::new();
    for k in 0..10 {
        let mut m: Vec<(String, Vec<u8>)> = (0..3)
            .map(|j| (format!("k{k}_{j}.jpg"), read(3 * k + j)))
            .collect();
        if k == 7 {
            m.push(("again.jpg".into(), read(7)));
        }
        if k == 4 {
            let mut bad = read(12);
            bad.truncate(300);
            m.push(("truncated.jpg".into(), bad));
        }
        let p = root.join(format!("s{k}.tar"));
        write_shard(&p, &m);
        paths.push(p);
    }
    let queries = root.join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::copy(&files[4], queries.join("copy_4.jpg")).unwrap();
    std::fs::copy(&files[7], queries.join("copy_7.jpg")).unwrap();
    std::fs::copy(&files[30], queries.join("novel.jpg")).unwrap();
    (paths, queries)
}

#[test]
fn parts_merged_in_order_equal_one_run_over_all_shards() {
    let t = tempfile::tempdir().unwrap();
    let (shards, queries) = shards(t.path());
    let one = t.path().join("one");
    let pattern = format!("{}/s{{0..9}}.tar", s(t.path()));
    let j = index(&pattern, &one, &["--hash-only"]);
    assert_eq!(j["duplicates"], 1, "{j}");
    assert_eq!(j["skipped"].as_array().unwrap().len(), 1, "{j}");

    let mut parts = Vec::new();
    for (k, shard) in shards.iter().enumerate() {
        let part = t.path().join(format!("parts/part-{k:05}"));
        index(s(shard), &part, &["--hash-only"]);
        parts.push(part);
    }
    let merged = t.path().join("merged");
    let refs: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
    let m = merge(&merged, &refs);
    assert_eq!(m["segments_attached"], 10, "{m}");
    assert_eq!(m["segments"], 10, "no merge policy ran: {m}");
    assert_eq!(m["duplicates_flagged"], 1, "{m}");
    assert_eq!(m["inputs"].as_array().unwrap().len(), 10, "{m}");
    // 30 images + the duplicate + the truncated member + 10 shard records.
    assert_eq!(m["records"], 42, "{m}");
    assert!(m["files_linked"].as_u64().unwrap() > 0, "{m}");

    let (a, b) = (info(&one), info(&merged));
    // Every part's keypoint tables come along (they are not rebuilt).
    let tables = |v: &Value| v["keypoint_table_segments"].as_u64().unwrap();
    let in_parts: u64 = parts.iter().map(|p| tables(&info(p))).sum();
    assert!(in_parts > 0);
    assert_eq!(tables(&b), in_parts, "{b}");
    assert_eq!(a["live_images"], 31);
    assert_eq!(a["live_images"], b["live_images"]);
    assert_eq!(a["content_digest"].as_str().unwrap().len(), 64, "{a}");
    assert_eq!(a["content_digest"], b["content_digest"]);
    let c = check(&queries, &one);
    assert_eq!(c["matched"], 2, "{c}");
    assert_eq!(c, check(&queries, &merged), "same results, same paths");

    // The duplicate is flagged as `index` flags it; the part's own copy of
    // that files.col was not touched (it is a new file, not the link).
    let flagged = |dir: &Path| {
        let idx = Index::open(dir).unwrap();
        idx.segments()
            .iter()
            .flat_map(|s| s.files().iter())
            .filter(|f| f.flags & flags::DUPLICATE != 0)
            .count()
    };
    assert_eq!(flagged(&merged), 1);
    assert_eq!(flagged(&parts[7]), 0);

    // Compacting keeps the digest; the parts still open as before.
    ok(&["compact", "-i", s(&merged)]);
    assert_eq!(info(&merged)["content_digest"], a["content_digest"]);
    assert_eq!(info(&parts[7])["live_images"], 4);
}

/// A folder with `n` images (seeds from `seed`) and its index (`extra` flags).
fn part(root: &Path, name: &str, n: usize, seed: u64, extra: &[&str]) -> PathBuf {
    let data = root.join(format!("{name}-data"));
    let files = make_corpus(&data, n, seed);
    // Small images keep the default mode's CNN quick in debug builds.
    for f in &files {
        let img = image::open(f).unwrap().thumbnail(96, 96).to_rgb8();
        save_jpeg(&img, f, 90);
    }
    let idx = root.join(name);
    index(s(&data), &idx, extra);
    idx
}

#[test]
fn parts_built_with_other_settings_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let hashes = part(r, "hashes", 2, 10, &["--hash-only"]);
    let exact = part(r, "exact", 2, 20, &["--hash-only", "--exact"]);
    let no_kp = part(r, "nokp", 2, 30, &["--hash-only", "--no-keypoints"]);
    let embedded = part(r, "embedded", 1, 40, &[]);
    let out = r.join("out");
    let model = info(&embedded)["embedding_model"]
        .as_str()
        .unwrap()
        .to_string();

    let e = fails(&["merge", s(&out), s(&hashes), s(&embedded)]);
    assert!(
        e.contains(s(&embedded)) && e.contains("embedding model"),
        "{e}"
    );
    assert!(e.contains(&model) && e.contains("--hash-only"), "{e}");
    let e = fails(&["merge", s(&out), s(&hashes), s(&exact)]);
    assert!(e.contains(s(&exact)) && e.contains("decode setting"), "{e}");
    assert!(e.contains("'exact'") && e.contains("'fast:512'"), "{e}");
    let e = fails(&["merge", s(&out), s(&hashes), s(&no_kp)]);
    assert!(e.contains(s(&no_kp)) && e.contains("--no-keypoints"), "{e}");
    assert!(!out.exists(), "refused before OUT is made");

    // OUT is an index built one way, the input another.
    let e = fails(&["merge", s(&hashes), s(&exact)]);
    assert!(e.contains(&format!("index {}", s(&hashes))), "{e}");
    // Missing and foreign inputs: the errors opening them give.
    let e = fails(&["merge", s(&out), s(&r.join("nope"))]);
    assert!(e.contains("no index at"), "{e}");
    std::fs::create_dir_all(r.join("foreign")).unwrap();
    std::fs::write(r.join("foreign/MANIFEST.json"), "{\"format\": \"x\"}").unwrap();
    let e = fails(&["merge", s(&out), s(&r.join("foreign"))]);
    assert!(e.contains("not a lookalike index"), "{e}");
}

#[test]
fn merging_into_an_existing_index_appends_and_out_is_no_input() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let base = part(r, "base", 3, 100, &["--hash-only"]);
    let more = part(r, "more", 2, 200, &["--hash-only"]);
    let empty_dir = r.join("empty-data");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let empty = r.join("empty");
    index(s(&empty_dir), &empty, &["--hash-only", "--allow-empty"]);
    let before = info(&base);

    let m = merge(&base, &[&more, &empty]);
    assert_eq!(m["segments_attached"], 1, "{m}");
    assert_eq!(m["segments"], 2, "{m}");
    assert_eq!(m["live_images"], 5, "{m}");
    let after = info(&base);
    assert_eq!(after["segments"][0], before["segments"][0], "its own first");
    assert_ne!(after["content_digest"], before["content_digest"]);

    let e = fails(&["merge", s(&base), s(&more), s(&base)]);
    assert!(e.contains("both the index merged into and an input"), "{e}");
    let e = fails(&["merge", s(&r.join("x")), s(&more), s(&more)]);
    assert!(e.contains("given twice"), "{e}");
    assert_eq!(info(&base), after, "refusals change nothing");

    // The human summary points at `compact`.
    let o = run(&["merge", s(&r.join("y")), s(&base), s(&more)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("lookalike compact -i"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_merge_keeps_the_parts_lists_of_skipped_files() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let mut parts = vec![];
    for (k, name) in ["a", "b"].iter().enumerate() {
        let data = r.join(format!("{name}-data"));
        make_corpus(&data, 2, 10 * k as u64);
        std::fs::write(
            data.join(format!("broken_{name}.jpg")),
            b"\xFF\xD8\xFFnot a jpeg",
        )
        .unwrap();
        let idx = r.join(name);
        index(s(&data), &idx, &["--hash-only"]);
        parts.push(idx);
    }
    let out = r.join("out");
    merge(&out, &[&parts[0], &parts[1]]);
    let text = std::fs::read_to_string(out.join("skipped.tsv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "path\treason", "{text}");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].contains("broken_a.jpg") && lines[2].contains("broken_b.jpg"),
        "{text}"
    );
    // Merging the same parts into it again adds no line twice.
    let again = r.join("again");
    merge(&again, &[&parts[0]]);
    merge(&again, &[&parts[1]]);
    let text2 = std::fs::read_to_string(again.join("skipped.tsv")).unwrap();
    assert_eq!(text2, text);
}

#[test]
fn a_later_input_supersedes_an_earlier_record_of_the_same_path() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let data = r.join("data");
    let files = make_corpus(&data, 2, 300);
    let (a, b) = (r.join("a"), r.join("b"));
    index(s(&data), &a, &["--hash-only"]);
    // Same path, other bytes: part b holds the newer version.
    save_jpeg(&synthetic(999, 220, 200), &files[0], 90);
    index(s(&data), &b, &["--hash-only", "--keep-missing"]);
    let new_hash = xxhash_rust::xxh3::xxh3_128(&std::fs::read(&files[0]).unwrap());

    let latest_hash = |dir: &Path| {
        let idx = Index::open(dir).unwrap();
        let key = std::fs::canonicalize(&files[0]).unwrap();
        let key = lookalike::index::reader::path_to_bytes(&key);
        let r = idx.latest()[key.as_slice()];
        assert!(idx.is_live(r));
        (
            idx.segments()[r.seg as usize].files()[r.row as usize].content_hash(),
            idx.live_count(),
        )
    };
    let (ab, ba) = (r.join("ab"), r.join("ba"));
    merge(&ab, &[&a, &b]);
    merge(&ba, &[&b, &a]);
    assert_eq!(latest_hash(&ab), (new_hash, 2));
    assert_ne!(latest_hash(&ba).0, new_hash, "the later input wins");
    assert_eq!(latest_hash(&ba).1, 2);
}

#[test]
fn a_merge_stopped_before_its_commit_leaves_out_as_it_was() {
    use lookalike::index::merge::StopAt;
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let base = part(r, "base", 2, 400, &["--hash-only"]);
    let p1 = part(r, "p1", 2, 500, &["--hash-only"]);
    let p2 = part(r, "p2", 2, 600, &["--hash-only"]);
    let before = info(&base);
    let inputs = [p1.clone(), p2.clone()];
    let e = lookalike::pipeline::merge_indexes(&base, &inputs, Some(StopAt::SegmentWritten));
    assert!(e.is_err());
    // The attached folders are there, unreferenced; readers see the old index.
    assert!(base.join("seg-000003").is_dir());
    assert_eq!(info(&base), before);
    // A leftover of a killed merge's copy, too: both cleaned by the next writer.
    std::fs::create_dir_all(base.join("seg-000009.tmp")).unwrap();
    let m = merge(&base, &[&p1, &p2]);
    assert_eq!(m["live_images"], 6, "{m}");
    let mut dirs: Vec<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["seg-000001", "seg-000002", "seg-000003"]);
}

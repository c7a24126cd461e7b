//! `index --profile compact`: codes only on disk, keypoints read back from
//! the training files (folders and tar shards) when a candidate is
//! verified, what happens when such a file is gone or changed, and merges.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::*;
use lookalike::index::{Index, Profile, RecordRef};
use serde_json::Value;

/// The sample's training photos copied into `dir` (so a test may change them).
fn training_copy(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = vec![];
    for e in std::fs::read_dir(format!("{SAMPLE}/training")).unwrap() {
        let p = e.unwrap().path();
        let to = dir.join(p.file_name().unwrap());
        std::fs::copy(&p, &to).unwrap();
        out.push(to);
    }
    out.sort();
    out
}

/// `check --json` of the sample's generated images: (top match's file
/// name, its inliers) per query file name for the queries that matched
/// (a copy), and stderr.
fn top_matches(idx: &Path) -> (HashMap<String, (String, Value)>, String) {
    let o = run(&[
        "check",
        &format!("{SAMPLE}/generated"),
        "--index",
        idx.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut out = HashMap::new();
    for r in v["results"].as_array().unwrap() {
        let q = Path::new(r["query"].as_str().unwrap()).file_name().unwrap();
        if let Some(m) = r["matches"]
            .as_array()
            .unwrap()
            .first()
            .filter(|_| r["verdict"] != "none")
        {
            let t = Path::new(m["candidate"].as_str().unwrap());
            out.insert(
                q.to_string_lossy().into_owned(),
                (
                    t.file_name().unwrap().to_string_lossy().into_owned(),
                    m["inliers"].clone(),
                ),
            );
        }
    }
    (out, stderr(&o))
}

fn segment_dirs(idx: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(idx)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("paths.col").exists())
        .collect();
    v.sort();
    v
}

#[test]
fn compact_keeps_codes_only_and_verifies_like_a_full_index() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let files = training_copy(&data);
    let (full, compact) = (t.path().join("full"), t.path().join("compact"));
    index_json_with(&data, &full, &[]);
    index_json_with(&data, &compact, &["--profile", "compact"]);

    for seg in segment_dirs(&compact) {
        assert!(!seg.join("keypoints.col").exists(), "{}", seg.display());
        assert!(!seg.join("embedding.col").exists(), "{}", seg.display());
        assert!(seg.join("codes.col").exists(), "{}", seg.display());
    }
    let o = run(&["info", "--index", compact.to_str().unwrap(), "--json"]);
    let info: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["profile"], "compact");
    assert!(info["descriptors"]
        .as_array()
        .unwrap()
        .contains(&"keypoints".into()));
    let size = |d: &Path| -> u64 {
        segment_dirs(d)
            .iter()
            .flat_map(|s| std::fs::read_dir(s).unwrap())
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    assert!(
        size(&compact) * 3 < size(&full),
        "compact {} B, full {} B",
        size(&compact),
        size(&full)
    );

    // Keypoints read back from the files are the ones a full index stores.
    let (f, c) = (Index::open(&full).unwrap(), Index::open(&compact).unwrap());
    assert_eq!(c.profile(), Profile::Compact);
    let stored: HashMap<Vec<u8>, RecordRef> = (0..f.segments()[0].len())
        .map(|row| {
            let r = RecordRef {
                seg: 0,
                row: row as u32,
            };
            (f.segments()[0].path_bytes(row).to_vec(), r)
        })
        .collect();
    let seg = &c.segments()[0];
    let mut with_points = 0;
    for row in 0..seg.len() {
        let r = RecordRef {
            seg: 0,
            row: row as u32,
        };
        let back = c.keypoints(r).expect("file readable");
        let kept = f.keypoints(stored[seg.path_bytes(row)]).unwrap();
        assert!(*back == *kept, "row {row}: keypoints differ");
        with_points += usize::from(!back.points().is_empty());
    }
    assert!(
        with_points > seg.len() / 2,
        "{with_points} of {}",
        seg.len()
    );
    assert_eq!(c.unverifiable().0, 0);

    // The same top match, with the same inliers, for every generated image.
    let (want, _) = top_matches(&full);
    let (got, err) = top_matches(&compact);
    assert!(!err.contains("warning"), "{err}");
    let mut verified: Vec<_> = want.iter().filter(|(_, (_, i))| i.is_u64()).collect();
    verified.sort_by_key(|(q, _)| q.as_str());
    assert!(verified.len() >= 5, "{want:?}");
    for (q, (file, inliers)) in &verified {
        assert_eq!(got.get(*q), Some(&(file.clone(), inliers.clone())), "{q}");
    }

    // A training file gone and one changed since indexing: their candidates
    // go unverified, a warning names them, the run goes on.
    let (gone, changed) = (&verified[0].1 .0, &verified[1].1 .0);
    std::fs::remove_file(data.join(gone)).unwrap();
    let mut bytes = std::fs::read(data.join(changed)).unwrap();
    bytes.push(0);
    std::fs::write(data.join(changed), bytes).unwrap();
    let (after, err) = top_matches(&compact);
    assert!(err.contains("could not be read back"), "{err}");
    assert!(
        err.contains(gone.as_str()) && err.contains(changed.as_str()),
        "{err}"
    );
    assert!(err.contains("changed since it was indexed"), "{err}");
    // (A query may lose its verdict without the inliers: then it has no
    // top match here.)
    for q in [verified[0].0, verified[1].0] {
        if let Some((file, inliers)) = after.get(q) {
            if file == gone || file == changed {
                assert!(inliers.is_null(), "{q}: {inliers}");
            }
        }
    }
    assert!(files.len() > 2);
}

#[test]
fn compact_reads_keypoints_back_from_tar_shards() {
    let t = tempfile::tempdir().unwrap();
    let files = training_copy(&t.path().join("data"));
    let shard = t.path().join("shards/00000.tar");
    std::fs::create_dir_all(shard.parent().unwrap()).unwrap();
    let mut b = tar::Builder::new(std::fs::File::create(&shard).unwrap());
    for f in &files[..8] {
        b.append_path_with_name(f, f.file_name().unwrap()).unwrap();
    }
    b.finish().unwrap();
    drop(b);
    let idx = t.path().join("idx");
    index_json_with(&shard, &idx, &["--profile", "compact", "--hash-only"]);
    let c = Index::open(&idx).unwrap();
    let seg = &c.segments()[0];
    let mut checked = 0;
    for row in 0..seg.len() {
        if !c.is_live(RecordRef {
            seg: 0,
            row: row as u32,
        }) {
            continue; // the shard's own record
        }
        let path = String::from_utf8_lossy(seg.path_bytes(row)).into_owned();
        assert!(path.contains("00000.tar/"), "{path}");
        // Decoded as the index records (fast:512): the keypoints of the
        // loose file the member was made from.
        let loose = t
            .path()
            .join("data")
            .join(Path::new(&path).file_name().unwrap());
        let want = lookalike::ingest::decode::decode(
            &std::fs::read(loose).unwrap(),
            lookalike::ingest::DecodeMode::Fast,
            &Default::default(),
        )
        .unwrap();
        let back = c
            .keypoints(RecordRef {
                seg: 0,
                row: row as u32,
            })
            .unwrap();
        let expect = lookalike::descriptors::keypoints::index_keypoints(&want.rgb);
        assert!(!expect.points().is_empty(), "{path}");
        assert!(*back == expect, "{path}");
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn a_profile_is_kept_merged_alike_and_never_mixed() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let files = training_copy(&data);
    let idx = t.path().join("idx");
    // Three runs, a few files each: several segments.
    let part: Vec<PathBuf> = (0..3)
        .map(|k| {
            let d = t.path().join(format!("part{k}"));
            std::fs::create_dir_all(&d).unwrap();
            for f in files.iter().skip(k).step_by(3) {
                std::fs::hard_link(f, d.join(f.file_name().unwrap())).unwrap();
            }
            d
        })
        .collect();
    index_json_with(&part[0], &idx, &["--profile", "compact", "--keep-missing"]);
    index_json_with(&part[1], &idx, &["--keep-missing"]);
    index_json_with(&part[2], &idx, &["--keep-missing"]);
    assert!(segment_dirs(&idx).len() >= 3);
    let (before, _) = top_matches(&idx);
    let o = run(&["compact", "--index", idx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(segment_dirs(&idx).len(), 1);
    for seg in segment_dirs(&idx) {
        assert!(!seg.join("embedding.col").exists());
        assert!(seg.join("codes.col").exists());
    }
    let (after, _) = top_matches(&idx);
    let tops = |m: &HashMap<String, (String, Value)>| -> Vec<(String, String)> {
        let mut v: Vec<_> = m.iter().map(|(q, (f, _))| (q.clone(), f.clone())).collect();
        v.sort();
        v
    };
    assert_eq!(tops(&before), tops(&after));
    assert!(before.values().any(|(_, i)| i.is_u64()));

    // Another profile for the same index, or merging with a full index: refused.
    let o = run(&[
        "index",
        part[0].to_str().unwrap(),
        "--index",
        idx.to_str().unwrap(),
        "--profile",
        "full",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("compact profile"), "{}", stderr(&o));
    let full = t.path().join("full");
    index_json_with(&part[1], &full, &[]);
    let o = run(&[
        "merge",
        t.path().join("both").to_str().unwrap(),
        idx.to_str().unwrap(),
        full.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("profile"), "{}", stderr(&o));
}

#[test]
fn the_manifest_names_its_profile_strictly() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    make_corpus(&data, 3, 0);
    let idx = t.path().join("idx");
    index_json_with(&data, &idx, &["--profile", "compact", "--hash-only"]);
    let m = idx.join("MANIFEST.json");
    let text = std::fs::read_to_string(&m).unwrap();
    assert!(text.contains("\"profile\": \"compact\""), "{text}");
    std::fs::write(&m, text.replace("\"compact\"", "\"compakt\"")).unwrap();
    let o = run(&["info", "--index", idx.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("\"profile\""), "{}", stderr(&o));
    // A full index's manifest does not mention it (older readers read it).
    let full = t.path().join("full");
    index_json_with(&data, &full, &["--hash-only"]);
    let text = std::fs::read_to_string(full.join("MANIFEST.json")).unwrap();
    assert!(!text.contains("profile"), "{text}");
}

#[test]
fn a_compact_segment_missing_its_codes_or_axes_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    make_corpus(&data, 3, 0);
    for (gone, named) in [
        ("codes.col", "codes.col"),
        ("projection.col", "projection.col"),
    ] {
        let idx = t.path().join(gone);
        index_json_with(&data, &idx, &["--profile", "compact"]);
        let seg = &segment_dirs(&idx)[0];
        std::fs::remove_file(seg.join(gone)).unwrap();
        // The codes are a compact index's only embeddings: never dropped quietly.
        let o = run(&["info", "--index", idx.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(named) && stderr(&o).contains("missing"),
            "{}",
            stderr(&o)
        );
    }
}

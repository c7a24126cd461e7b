//! One bad file must never hide a copy: corrupt JPEGs that used to poison the
//! decoder for every JPEG after them on the same thread, and failures that are
//! not the file's own fault being retried.

mod common;

use std::path::Path;

use common::{make_corpus, run, stderr};
use serde_json::Value;

/// JPEGs whose header fails in different ways, each made from a valid JPEG:
/// the attack run's `a_poison.jpg` (a SOF marker with length 1 where the APP0
/// segment was), a SOF of height 0, one of 65535×65535, and random bytes after SOI.
fn write_poison(dir: &Path, valid: &[u8]) -> Vec<String> {
    let mut files = vec![];
    let mut put = |name: &str, bytes: Vec<u8>| {
        std::fs::write(dir.join(name), bytes).unwrap();
        files.push(name.to_string());
    };
    let mut a = valid[..2].to_vec();
    a.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x01]);
    a.extend_from_slice(&valid[6..]);
    put("a_poison.jpg", a);

    let sof = valid
        .windows(2)
        .position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC2))
        .expect("the fixture has a SOF marker");
    // SOF: FF Cx, length (2), precision (1), height (2), width (2).
    let mut zero_h = valid.to_vec();
    zero_h[sof + 5] = 0;
    zero_h[sof + 6] = 0;
    put("b_zero_height.jpg", zero_h);
    let mut huge = valid.to_vec();
    huge[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    put("c_huge.jpg", huge);

    let mut s = 0x2545F4914F6CDD1Du64;
    let mut random = vec![0xFF, 0xD8, 0xFF];
    random.extend((0..4000).map(|_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 24) as u8
    }));
    put("d_random.jpg", random);
    files
}

fn json(o: &std::process::Output) -> Value {
    assert!(
        o.status.code() != Some(2),
        "exit {:?}: {}",
        o.status.code(),
        stderr(o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(o)))
}

/// Paths of the skipped list, by file name.
fn skipped_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            Path::new(s["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_corrupt_jpeg_does_not_poison_the_jpegs_after_it() {
    for mode in [&[][..], &["--exact"][..]] {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        let idx = t.path().join("idx");
        let good = make_corpus(&data, 4, 0);
        let poison = write_poison(&data, &std::fs::read(&good[0]).unwrap());
        // One thread: every JPEG is decoded after the poison on the same thread.
        let mut args = vec!["--threads", "1", "index", data.to_str().unwrap()];
        args.extend_from_slice(&["-i", idx.to_str().unwrap(), "--json", "-q", "--hash-only"]);
        args.extend_from_slice(mode);
        let s = json(&run(&args));
        assert_eq!(s["described"].as_u64(), Some(4), "{mode:?}: {s}");
        assert_eq!(skipped_names(&s), poison, "{mode:?}");

        // check: the poison files come first in name order, then exact copies
        // of three indexed images. The gate must see all three.
        let queries = t.path().join("queries");
        std::fs::create_dir_all(&queries).unwrap();
        write_poison(&queries, &std::fs::read(&good[0]).unwrap());
        for (i, g) in good.iter().take(3).enumerate() {
            std::fs::copy(g, queries.join(format!("z_copy_{i}.jpg"))).unwrap();
        }
        let mut args = vec!["--threads", "1", "check", queries.to_str().unwrap()];
        args.extend_from_slice(&["-i", idx.to_str().unwrap(), "--json", "--fail-on-match"]);
        args.extend_from_slice(mode);
        let o = run(&args);
        let r = json(&o);
        assert_eq!(r["matched"].as_u64(), Some(3), "{mode:?}: {r}");
        assert_eq!(o.status.code(), Some(1), "{mode:?}: the gate must fail");
        assert_eq!(skipped_names(&r), poison, "{mode:?}");
    }
}

#[test]
fn failures_that_are_not_the_files_fault_are_retried() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let idx = t.path().join("idx");
    let good = make_corpus(&data, 3, 10);
    write_poison(&data, &std::fs::read(&good[0]).unwrap());
    let index = |extra: &[&str]| {
        let mut args = vec!["index", data.to_str().unwrap(), "-i", idx.to_str().unwrap()];
        args.extend_from_slice(&["--json", "-q", "--hash-only"]);
        args.extend_from_slice(extra);
        json(&run(&args))
    };
    // A pixel limit below every image: all fail, the good ones by this run's limit.
    let s = index(&["--max-pixels", "1000"]);
    assert_eq!(s["described"].as_u64(), Some(0), "{s}");
    let over_limit = s["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["reason"].as_str().unwrap().contains("too large"))
        .count();
    assert_eq!(over_limit, 3, "{s}");
    // Without the limit the unchanged good files are retried and described;
    // the poison files, whose own bytes are bad, are not retried.
    let s = index(&[]);
    assert_eq!(s["described"].as_u64(), Some(3), "{s}");
    assert_eq!(s["previously_failed"].as_u64(), Some(4), "{s}");
    assert!(skipped_names(&s).is_empty(), "{s}");
    let s = index(&[]);
    assert_eq!(s["described"].as_u64(), Some(0), "{s}");
    assert_eq!(s["unchanged"].as_u64(), Some(7), "{s}");
}

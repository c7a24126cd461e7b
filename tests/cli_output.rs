//! Where results go: stdout that closes early (`| head`), output files that
//! cannot be written, error text.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;

/// Runs lookalike with its stdout closed before it writes anything (what
/// `| head -1` does once it has its line): (exit code, stderr).
fn run_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    (o.status.code(), stderr(&o))
}

#[test]
fn json_into_a_closed_pipe_is_a_quiet_exit() {
    let (_t, data, idx) = small_index(3);
    let d = data.to_str().unwrap();
    let img = format!("{d}/img_000.jpg");
    for args in [
        &["query", &img, "-i", &idx, "--json"][..],
        &["hash", d, "--json"],
        &["info", "-i", &idx, "--json"],
        &["dedup", "-i", &idx, "--json"],
        &["check", d, "-i", &idx, "--json", "-q"],
    ] {
        let (code, err) = run_closed_stdout(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
    // The gate still fails on a match when nobody reads the results.
    let (code, err) =
        run_closed_stdout(&["check", d, "-i", &idx, "--json", "-q", "--fail-on-match"]);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn an_unwritable_report_path_fails_before_the_work() {
    let (t, data, idx) = small_index(2);
    let d = data.to_str().unwrap();
    let bad = t.path().join("no/such/dir/r.html");
    let o = run(&[
        "check",
        d,
        "-i",
        &idx,
        "-q",
        "--report",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("does not exist"), "{err}");
    // Failing early means no results were printed and nothing was checked.
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    let o = run(&["dedup", "-i", &idx, "--report", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    // A folder is not a file.
    let o = run(&[
        "check",
        d,
        "-i",
        &idx,
        "-q",
        "--report",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is a folder"), "{}", stderr(&o));
    // A good path is not left behind by the early check when the run fails.
    let good = t.path().join("r.html");
    let o = run(&[
        "check",
        "/no/such/input",
        "-i",
        &idx,
        "-q",
        "--report",
        good.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!good.exists());
}

#[test]
fn a_broken_model_breaks_only_the_commands_that_embed() {
    let (t, data, idx) = small_index(2);
    let d = data.to_str().unwrap();
    let model = t.path().join("missing.safetensors");
    let m = model.to_str().unwrap();
    let o = run(&["--model", m, "hash", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["--model", m, "info", "-i", &idx]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["--model", m, "check", d, "-i", &idx, "-q"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("missing.safetensors"), "{err}");
    // The reason is given once, not "...(os error 2): ...(os error 2)".
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
}

#[test]
fn json_lines_streams_one_object_per_image() {
    let (_t, data, idx) = small_index(3);
    let d = data.to_str().unwrap();
    let o = run(&[
        "check",
        d,
        "-i",
        &idx,
        "-q",
        "--json-lines",
        "--fail-on-match",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in lines {
        let q: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(q["verdict"], "exact", "{q}");
        assert!(q["matches"][0]["corpus_copies"].is_u64(), "{q}");
    }
    // The summary goes to stderr.
    assert!(stderr(&o).contains("checked 3 images"), "{}", stderr(&o));
    let o = run(&["check", d, "-i", &idx, "--json-lines", "--json"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Every number in `json` with more than `max` decimals.
fn long_decimals(json: &str, max: usize) -> Vec<String> {
    let mut bad = vec![];
    let b = json.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' && i > 0 && b[i - 1].is_ascii_digit() {
            let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n > max {
                bad.push(json[i.saturating_sub(3)..i + 1 + n].to_string());
            }
            i += n;
        }
        i += 1;
    }
    bad
}

#[test]
fn json_floats_are_rounded_and_counts_have_plurals() {
    let (t, data, idx) = small_index(3);
    let d = data.to_str().unwrap();
    // Unrelated images: candidates with all kinds of scores.
    let q = t.path().join("q");
    make_corpus(&q, 3, 700);
    let o = run(&["check", q.to_str().unwrap(), "-i", &idx, "-q", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bad = long_decimals(&stdout(&o), 6);
    assert!(bad.is_empty(), "{bad:?}");
    let one = format!("{d}/img_001.jpg");
    let o = run(&["check", &one, "-i", &idx, "-q"]);
    assert!(
        stdout(&o).contains("checked 1 image against"),
        "{}",
        stdout(&o)
    );
    let o = run(&["info", "-i", &idx]);
    assert!(stdout(&o).contains("in 1 segment)"), "{}", stdout(&o));
}

/// A training image pasted small onto another picture: the tables say
/// which part of the query matched (JSON and CSV carry it as `region`).
#[test]
fn tables_say_when_a_region_of_the_query_matched() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    make_corpus(&db, 4, 1);
    let pic = synthetic(300, 180, 130);
    pic.save(db.join("pic.png")).unwrap();
    let idx = t.path().join("idx");
    index_json_with(&db, &idx, &["--hash-only"]);
    let query1 = |img: &Path| {
        let (img, idx) = (img.to_str().unwrap(), idx.to_str().unwrap());
        run(&["query", img, "-i", idx, "-k", "1"])
    };
    let (w, h) = pic.dimensions();
    let mut page = image::RgbImage::from_fn(w * 3, h * 3, |x, y| {
        image::Rgb([30 + (x / 8).min(60) as u8, 60 + (y / 8).min(60) as u8, 210])
    });
    image::imageops::replace(&mut page, &pic, w as i64, h as i64);
    let q = t.path().join("q");
    std::fs::create_dir_all(&q).unwrap();
    page.save(q.join("page.png")).unwrap();
    let o = query1(&q.join("page.png"));
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stdout(&o)
        .lines()
        .find(|l| l.contains("pic.png"))
        .unwrap_or_default()
        .to_string();
    // The middle ninth of the page (to the region finder's rounding).
    let note = line
        .split("[region ")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let nums: Vec<i32> = note
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nums.len(), 4, "{line}");
    assert!(nums.iter().all(|&n| (31..=36).contains(&n)), "{line}");
    let o = run(&["check", q.to_str().unwrap(), "-i", idx.to_str().unwrap()]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", stderr(&o));
    assert!(stdout(&o).contains("pic.png  [region 3"), "{}", stdout(&o));
    // The whole image matched: no note.
    let o = query1(&db.join("pic.png"));
    assert!(!stdout(&o).contains("[region"), "{}", stdout(&o));
}

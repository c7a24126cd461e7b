//! End to end on the shipped example corpus: index the training images, check
//! the "generated" ones, and hold the verdicts against how they were made
//! (examples/sample/SOURCES.csv).

mod common;

use common::*;
use serde_json::Value;

/// generated file name → training file it was edited from (None: unrelated).
fn truth() -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(format!("{SAMPLE}/SOURCES.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| l.starts_with("generated/"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let name = f[0].trim_start_matches("generated/").to_string();
            let src = f[1]
                .strip_prefix("edited copy of training/")
                .map(|s| s.to_string());
            (name, src)
        })
        .collect()
}

#[test]
fn check_finds_edited_copies_and_clears_unrelated_images() {
    let (_t, idx) = index_sample();
    let o = run(&[
        "check",
        &format!("{SAMPLE}/generated"),
        "--index",
        &idx,
        "--json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["schema"], "lookalike.check/1");
    assert_eq!(r["index_records"].as_u64(), Some(30));
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 16);
    let mut found = 0;
    for (name, src) in truth() {
        let q = results
            .iter()
            .find(|q| q["query"].as_str().unwrap().ends_with(&name))
            .unwrap();
        let top = &q["matches"][0];
        match src {
            Some(src) => {
                // Every edit of ours keeps the source as the top candidate...
                assert!(
                    top["candidate"].as_str().unwrap().ends_with(&src),
                    "{name}: top is {top}"
                );
                if q["verdict"] != "none" {
                    found += 1;
                }
            }
            // ...and no unrelated image is called a copy.
            None => assert_eq!(q["verdict"], "none", "{name} falsely matched: {q}"),
        }
    }
    // Cropping 10 % moves PDQ past its threshold; the other nine edits are caught.
    assert!(found >= 9, "only {found} of 10 copies flagged");
    let rate = r["replication_rate"].as_f64().unwrap();
    assert!((rate - found as f64 / 16.0).abs() < 1e-9);
    // The mirrored copy is reported as such.
    let m = results
        .iter()
        .find(|q| {
            q["query"]
                .as_str()
                .unwrap()
                .ends_with("gen_02_mirrored.jpg")
        })
        .unwrap();
    assert_eq!(m["matches"][0]["orientation"], "flip-y");
}

#[test]
fn fail_on_match_sets_the_exit_code_and_csv_has_scorer_columns() {
    let (_t, idx) = index_sample();
    let gen = format!("{SAMPLE}/generated");
    let o = run(&["check", &gen, "--index", &idx, "--fail-on-match", "-q"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("replication rate"));
    let novel = format!("{SAMPLE}/generated/gen_10_novel.jpg");
    let o = run(&["check", &novel, "--index", &idx, "--fail-on-match", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    let o = run(&["check", &gen, "--index", &idx, "--csv", "-k", "3", "-q"]);
    assert!(o.status.success());
    let csv = stdout(&o);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..3], &["query", "candidate", "score"]);
    assert_eq!(lines.count(), 16 * 3);
}

#[test]
fn query_ranks_the_source_first() {
    let (_t, idx) = index_sample();
    let img = format!("{SAMPLE}/generated/gen_03_rotated.jpg");
    let o = run(&["query", &img, "--index", &idx, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let q: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(q["matches"][0]["candidate"]
        .as_str()
        .unwrap()
        .ends_with("train_09.jpg"));
    assert_eq!(q["matches"].as_array().unwrap().len(), 10);
    assert_ne!(q["verdict"], "none");
    let o = run(&["query", &img, "--index", &idx]);
    let text = stdout(&o);
    assert!(text.contains("train_09.jpg"));
    // Every column has a heading ("TRAINING IMAGE" is two words).
    let mut lines = text.lines().skip(1);
    let (head, row) = (lines.next().unwrap(), lines.next().unwrap());
    assert!(head.starts_with("RANK"), "{head}");
    assert_eq!(
        head.split_whitespace().count(),
        row.split_whitespace().count() + 1,
        "{head}\n{row}"
    );
}

#[test]
fn hash_prints_threatexchange_and_imagehash_hex() {
    let img = format!("{SAMPLE}/training/train_00.jpg");
    let o = run(&["hash", &img, "--csv"]);
    assert!(o.status.success());
    let out = stdout(&o);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[1].len(), 64);
    assert!(row[1].chars().all(|c| c.is_ascii_hexdigit()));
    assert!(row[2].parse::<u8>().unwrap() <= 100);
    assert_eq!(row[3].len(), 16);
    // Exact mode agrees with the library on the same file.
    let rgb = image::open(&img).unwrap().to_rgb8();
    let p = lookalike::descriptors::pdq::pdq_from_rgb(&rgb);
    let d = lookalike::descriptors::Hash256::from_hex(row[1])
        .unwrap()
        .hamming(&p.hash);
    assert!(
        d <= 4,
        "CLI hash differs by {d} bits from the library on the same image"
    );
}

#[test]
fn eval_command_reports_the_metrics_of_its_own_run() {
    let (t, idx) = index_sample();
    let truth = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/eval/scrambled_truth.csv"
    );
    let saved = t.path().join("run.csv");
    let o = run(&[
        "eval",
        &format!("{SAMPLE}/generated"),
        "--truth",
        truth,
        "--index",
        &idx,
        "-k",
        "5",
        "--json",
        "-q",
        "--save-csv",
        saved.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    // Scoring the saved CSV (the score.py-compatible path, see eval_agreement.rs) gives the same numbers.
    let gt =
        lookalike::pipeline::eval::parse_truth(&std::fs::read_to_string(truth).unwrap()).unwrap();
    let by_q =
        lookalike::pipeline::eval::predictions_from_csv(&std::fs::read_to_string(&saved).unwrap())
            .unwrap();
    let (m, r_fa, _) = lookalike::pipeline::eval::score(&by_q, &gt);
    for (k, v) in [
        ("recall_at_1", m.recall_at_1),
        ("recall_at_10", m.recall_at_10),
        ("uap", m.uap),
    ] {
        // JSON floats are rounded to 6 decimals.
        assert!((e["overall"][k].as_f64().unwrap() - v).abs() < 1e-6, "{k}");
    }
    assert!((e["recall_at_fa1"].as_f64().unwrap() - r_fa).abs() < 1e-6);
    assert_eq!(e["overall"]["positives"], 11);
    // The human table names the metrics.
    let o = run(&[
        "eval",
        &format!("{SAMPLE}/generated"),
        "--truth",
        truth,
        "--index",
        &idx,
        "-q",
    ]);
    assert!(stdout(&o).contains("R@FA<=1%"));
}

#[test]
fn graph_search_gives_the_exact_scans_answers() {
    let (_t, idx) = index_sample();
    let seg = std::path::Path::new(&idx).join("seg-000001");
    assert!(
        seg.join("hnsw.col").is_file(),
        "default-mode segments carry a graph"
    );
    let check = |min_rows: &str| {
        let o = bin()
            .env("LOOKALIKE_ANN_MIN_ROWS", min_rows)
            .args([
                "check",
                &format!("{SAMPLE}/generated"),
                "--index",
                &idx,
                "--csv",
                "-k",
                "5",
                "-q",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    // 0: every segment through its graph; a huge minimum: exact scans only.
    let (graph, exact) = (check("0"), check("1000000000"));
    assert!(graph.lines().count() > 16);
    assert_eq!(graph, exact);
    // A segment written before codes existed has a graph but no
    // projection: it is walked over the leading f16 values instead.
    assert!(seg.join("codes.col").is_file() && seg.join("projection.col").is_file());
    std::fs::remove_file(seg.join("codes.col")).unwrap();
    std::fs::remove_file(seg.join("projection.col")).unwrap();
    assert_eq!(check("0"), exact);
}

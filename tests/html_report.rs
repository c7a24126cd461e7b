//! `check --report`: the HTML report of the shipped example, opened in
//! headless Chromium (tests/common/browser.rs): every flagged image present,
//! every thumbnail decodable, no console errors, nothing loaded from outside.

#[path = "common/browser.rs"]
mod browser;
mod common;

use common::*;
use serde_json::Value;

#[test]
fn check_report_shows_every_flagged_image_and_loads_cleanly_in_a_browser() {
    let (t, idx) = index_sample();
    let html = t.path().join("report.html");
    // The report is an extra output: --json still goes to stdout.
    let o = run(&[
        "check",
        &format!("{SAMPLE}/generated"),
        "--index",
        &idx,
        "--json",
        "-q",
        "--report",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["schema"], "lookalike.check/1");
    let flagged: Vec<&Value> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["verdict"] != "none")
        .collect();
    assert!(flagged.len() >= 9);

    let text = std::fs::read_to_string(&html).unwrap();
    for q in &flagged {
        let name = q["query"].as_str().unwrap().rsplit('/').next().unwrap();
        assert!(text.contains(name), "{name} missing from the report");
        let cand = q["matches"][0]["candidate"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        assert!(text.contains(cand), "{cand} missing from the report");
    }
    // Unrelated images are not shown as flagged rows.
    assert!(!text.contains("gen_10_novel.jpg"));
    assert_eq!(text.matches("<article class=\"row").count(), flagged.len());
    // Self-contained: no remote resource.
    for bad in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!text.contains(bad), "report references {bad}");
    }
    assert!(
        text.contains("lookalike.check/1") && text.contains("fast:512") && text.contains("<svg")
    );
    // The rotated copy's difference view is aligned: its mean difference is small.
    let rot = &text[text.find("gen_03_rotated.jpg").unwrap()..];
    let mean: f64 = rot[rot.find("difference, aligned (").unwrap() + 21..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        mean < 8.0,
        "rotated copy not aligned: mean difference {mean} %"
    );

    let Some(chromium) = browser::require() else {
        return;
    };
    let page = browser::load(&chromium, &html);
    assert!(
        page.console.is_empty(),
        "console messages: {:#?}",
        page.console
    );
    let s = &page.selftest;
    assert_eq!(s["rows"], flagged.len());
    assert_eq!(s["textrows"], 0);
    // generated + (training + difference) per shown match.
    assert!(s["images"] >= 3 * flagged.len(), "{s:?}");
    assert_eq!(
        s["decoded"], s["images"],
        "some thumbnails did not decode: {s:?}"
    );
}

#[test]
fn report_limit_lists_the_rest_as_text_and_csv_gains_a_last_column() {
    let (t, idx) = index_sample();
    let html = t.path().join("r.html");
    let o = run(&[
        "check",
        &format!("{SAMPLE}/generated"),
        "--index",
        &idx,
        "--csv",
        "-k",
        "3",
        "-q",
        "--report",
        html.to_str().unwrap(),
        "--report-limit",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = stdout(&o);
    let header = csv.lines().next().unwrap();
    assert!(header.starts_with("query,candidate,score,rank,verdict,pdq_distance,phash_distance,orientation,query_quality,candidate_quality,"));
    assert!(header.ends_with(",corpus_copies,evidence,keypoint_matches,inliers,similarity"));
    let col = |l: &str, name: &str| -> String {
        let at = header.split(',').position(|h| h == name).unwrap();
        l.split(',').nth(at).unwrap().to_string()
    };
    // A matched row carries a count (the sample has no duplicates: 0); a non-match leaves it empty.
    assert!(csv
        .lines()
        .any(|l| col(l, "verdict") == "exact" && col(l, "corpus_copies") == "0"));
    assert!(csv
        .lines()
        .any(|l| col(l, "verdict") == "none" && col(l, "corpus_copies").is_empty()));
    // Verified candidates carry their keypoint evidence.
    assert!(csv
        .lines()
        .skip(1)
        .any(|l| col(l, "inliers").parse::<u32>().is_ok_and(|n| n > 0)));
    let text = std::fs::read_to_string(&html).unwrap();
    assert_eq!(text.matches("<article class=\"row").count(), 2);
    assert!(text.matches("<tr class=\"textrow\"").count() >= 7);
}

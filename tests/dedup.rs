//! `dedup`: planted copies (re-encoded, resized, brightened, byte-identical)
//! of a few images in a corpus of distinct ones are grouped with their source
//! and nothing else; `check` reports how many near copies a match has.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::path::Path;

use common::*;
use image::imageops;
use serde_json::Value;

fn name(p: &Value) -> String {
    p.as_str().unwrap().rsplit('/').next().unwrap().to_string()
}

/// 40 distinct images plus copies of img_000 (3 edits), img_001 (resized) and
/// img_002 (same bytes). Returns the index path.
fn planted(dir: &Path) -> String {
    let train = dir.join("train");
    make_corpus(&train, 40, 0);
    let src = image::open(train.join("img_000.jpg")).unwrap().to_rgb8();
    save_jpeg(&src, &train.join("copy_000_q40.jpg"), 40);
    let small = imageops::resize(
        &src,
        src.width() * 2 / 3,
        src.height() * 2 / 3,
        imageops::FilterType::Triangle,
    );
    save_jpeg(&small, &train.join("copy_000_small.jpg"), 85);
    save_jpeg(
        &image::imageops::colorops::brighten(&src, 25),
        &train.join("copy_000_bright.jpg"),
        90,
    );
    let one = image::open(train.join("img_001.jpg")).unwrap().to_rgb8();
    save_jpeg(
        &imageops::resize(&one, 120, 100, imageops::FilterType::Lanczos3),
        &train.join("copy_001_resized.jpg"),
        90,
    );
    std::fs::copy(train.join("img_002.jpg"), train.join("copy_002_bytes.jpg")).unwrap();
    let idx = dir.join("idx").display().to_string();
    let o = run(&["index", train.to_str().unwrap(), "--index", &idx, "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    idx
}

/// The source number a file was made from: img_007.jpg → 7, copy_000_x.jpg → 0.
fn source(n: &str) -> u32 {
    n.trim_start_matches("img_").trim_start_matches("copy_")[..3]
        .parse()
        .unwrap()
}

#[test]
fn dedup_finds_planted_groups_and_mixes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let idx = planted(t.path());
    let html = t.path().join("dedup.html");
    let o = run(&[
        "dedup",
        "--index",
        &idx,
        "--json",
        "--report",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["schema"], "lookalike.dedup/1");
    assert_eq!(r["grouping"], "clique");
    assert_eq!(r["index_records"], 45);
    let groups = r["groups"].as_array().unwrap();
    let mut found: Vec<(u32, usize)> = vec![];
    for g in groups {
        let members = g["members"].as_array().unwrap();
        let srcs: Vec<u32> = members.iter().map(|m| source(&name(&m["path"]))).collect();
        assert!(
            srcs.iter().all(|&s| s == srcs[0]),
            "group mixes unrelated images: {g}"
        );
        assert!(g["max_pairwise_distance"].as_u64().unwrap() <= 31);
        assert_eq!(
            members
                .iter()
                .filter(|m| m["representative"] == true)
                .count(),
            1
        );
        found.push((srcs[0], members.len()));
    }
    found.sort();
    assert_eq!(found, vec![(0, 4), (1, 2), (2, 2)], "{r:#}");
    let bytes = groups
        .iter()
        .find(|g| {
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| name(&m["path"]) == "copy_002_bytes.jpg")
        })
        .unwrap();
    assert!(bytes["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["distance"] == 0 && m["same_bytes"] == true));

    let o = run(&["dedup", "--index", &idx, "--csv", "--max-distance", "31"]);
    let csv = stdout(&o);
    assert_eq!(
        csv.lines().next().unwrap(),
        "group,path,distance,phash_distance,same_bytes,representative,group_size"
    );
    assert_eq!(csv.lines().count(), 1 + 8);
    let o = run(&["dedup", "--index", &idx]);
    assert!(
        stdout(&o).contains("3 near-duplicate groups holding 8 images"),
        "{}",
        stdout(&o)
    );

    let text = std::fs::read_to_string(&html).unwrap();
    assert_eq!(text.matches("<article class=\"row").count(), 3);
    // Each copy shows its resolution and file size; one per group is marked
    // as the one with the most pixels.
    assert_eq!(
        text.matches(" KB</figcaption>").count() + text.matches(" KB · <b>most pixels").count(),
        8
    );
    assert_eq!(text.matches("most pixels</b>").count(), 3);
    assert!(text.contains("copy_<wbr>001_<wbr>resized.<wbr>jpg"));
    let Some(chromium) = browser::require() else {
        return;
    };
    let page = browser::load(&chromium, &html);
    assert!(
        page.console.is_empty(),
        "console messages: {:#?}",
        page.console
    );
    assert_eq!(page.selftest["images"], 8);
    assert_eq!(page.selftest["decoded"], 8);
}

#[test]
fn check_reports_how_often_the_matched_training_image_is_in_the_corpus() {
    let t = tempfile::tempdir().unwrap();
    let idx = planted(t.path());
    let gen = t.path().join("gen");
    std::fs::create_dir_all(&gen).unwrap();
    let img0 = image::open(t.path().join("train/img_000.jpg"))
        .unwrap()
        .to_rgb8();
    // Upright: these synthetic images have PDQ quality < 50, so a match needs pHash too.
    save_jpeg(&img0, &gen.join("copy_of_000.jpg"), 60);
    let img5 = image::open(t.path().join("train/img_005.jpg"))
        .unwrap()
        .to_rgb8();
    save_jpeg(&img5, &gen.join("copy_of_005.jpg"), 70);
    let o = run(&[
        "check",
        gen.to_str().unwrap(),
        "--index",
        &idx,
        "--json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    for q in r["results"].as_array().unwrap() {
        let m = &q["matches"][0];
        assert_ne!(m["verdict"], "none", "{q}");
        let copies = m["corpus_copies"].as_u64().unwrap();
        let src = source(&name(&m["candidate"]));
        // img_000 has three planted copies; img_005 none.
        if name(&q["query"]).contains("000") {
            assert_eq!((src, copies), (0, 3), "{q}");
        } else {
            assert_eq!((src, copies), (5, 0), "{q}");
        }
        // Candidates below the match threshold are not counted.
        assert!(q["matches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["verdict"] == "none")
            .all(|m| m["corpus_copies"].is_null()));
    }
}

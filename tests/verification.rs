//! Geometric verification end to end: copies that global hashes cannot see
//! (a crop pasted into another picture, a crop turned by an odd angle) are
//! found through keypoints, with their evidence; unrelated images are not.

mod common;

use common::*;
use image::{imageops, Rgb, RgbImage};
use serde_json::Value;

fn training(name: &str) -> RgbImage {
    image::open(format!("{SAMPLE}/training/{name}"))
        .unwrap()
        .to_rgb8()
}

/// Rotates by `deg` about the centre (nearest neighbour), grey outside.
fn rotate(img: &RgbImage, deg: f32) -> RgbImage {
    let (s, c) = deg.to_radians().sin_cos();
    let (w, h) = (img.width() as f32, img.height() as f32);
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let (dx, dy) = (x as f32 - w / 2.0, y as f32 - h / 2.0);
        let (sx, sy) = (c * dx + s * dy + w / 2.0, -s * dx + c * dy + h / 2.0);
        if sx >= 0.0 && sy >= 0.0 && sx < w && sy < h {
            *img.get_pixel(sx as u32, sy as u32)
        } else {
            Rgb([128, 128, 128])
        }
    })
}

/// Writes the hard queries into `q`: a crop pasted into another picture, a
/// photo turned by an odd angle, an unrelated picture.
fn hard_queries(q: &std::path::Path) {
    std::fs::create_dir_all(q).unwrap();
    // 1. The middle 80 % of a photo, enlarged 1.3×, pasted into a larger
    //    synthetic picture (AugLy's overlay_onto_image).
    let src = training("train_12.jpg");
    let crop = imageops::crop_imm(&src, 32, 16, 256, 128).to_image();
    let crop = imageops::resize(&crop, 333, 166, imageops::FilterType::Triangle);
    let mut canvas = synthetic(99, 480, 360);
    imageops::overlay(&mut canvas, &crop, 100, 120);
    canvas.save(q.join("pasted.png")).unwrap();
    // 2. A photo turned by 17° (PDQ's dihedral variants cover 90° steps only).
    rotate(&training("train_18.jpg"), 17.0)
        .save(q.join("rotated.png"))
        .unwrap();
    // 3. Unrelated.
    synthetic(7, 400, 300)
        .save(q.join("unrelated.png"))
        .unwrap();
}

/// `check --json` of `q` on `idx`; `scan`: every record's keypoints
/// compared instead of the keypoint tables' proposals.
fn check_json(q: &std::path::Path, idx: &str, scan: bool, extra: &[&str]) -> Value {
    let mut c = bin();
    if scan {
        c.env("LOOKALIKE_KEYPOINT_SCAN", "1");
    }
    let o = c
        .args(["check", q.to_str().unwrap(), "--index", idx, "--json", "-q"])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Per query file name: (top candidate, verdict, evidence, inliers).
fn tops(r: &Value) -> Vec<(String, String, String, u64)> {
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let top = &x["matches"][0];
            let name = |v: &Value| {
                v.as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            };
            (
                name(&x["query"]),
                name(&top["candidate"]) + " " + x["verdict"].as_str().unwrap(),
                name(&top["evidence"]),
                top["inliers"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn pasted_and_rotated_crops_are_found_by_keypoints_only() {
    let (t, idx) = index_sample();
    let q = t.path().join("queries");
    hard_queries(&q);

    let o = run(&[
        "check",
        q.to_str().unwrap(),
        "--index",
        &idx,
        "--json",
        "-q",
    ]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["thresholds"]["keypoint_table"], true);
    assert_eq!(r["thresholds"]["keypoint_scan"], false);
    let min_inliers = r["thresholds"]["match_inliers"].as_u64().unwrap();
    let result = |name: &str| {
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["query"].as_str().unwrap().ends_with(name))
            .unwrap()
            .clone()
    };
    for (name, src) in [
        ("pasted.png", "train_12.jpg"),
        ("rotated.png", "train_18.jpg"),
    ] {
        let res = result(name);
        let top = &res["matches"][0];
        assert!(
            top["candidate"].as_str().unwrap().ends_with(src),
            "{name}: {top}"
        );
        assert_eq!(res["verdict"], "near-duplicate", "{name}: {top}");
        // PDQ alone misses it; the keypoints carry the verdict.
        assert!(top["pdq_distance"].as_u64().unwrap() > 31, "{name}: {top}");
        assert_eq!(top["evidence"], "keypoints", "{name}: {top}");
        assert!(top["inliers"].as_u64().unwrap() >= min_inliers);
        assert!(top["score"].as_f64().unwrap() >= r["thresholds"]["match_score"].as_f64().unwrap());
    }
    let res = result("unrelated.png");
    assert_eq!(res["verdict"], "none");
    for m in res["matches"].as_array().unwrap() {
        assert!(m["inliers"].as_u64().unwrap_or(0) < min_inliers, "{m}");
    }
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // --no-verify: PDQ evidence only, so the pasted crop goes unseen.
    let o = run(&[
        "check",
        q.to_str().unwrap(),
        "--index",
        &idx,
        "--json",
        "-q",
        "--no-verify",
    ]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["thresholds"]["keypoint_scan"], false);
    assert_eq!(r["thresholds"]["keypoint_table"], false);
    let pasted = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["query"].as_str().unwrap().ends_with("pasted.png"))
        .unwrap();
    assert_eq!(pasted["verdict"], "none");
    assert!(pasted["matches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["inliers"].is_null()));
}

/// The segments' keypoint tables propose the records the query's keypoints
/// are compared with: the hard copies are found as by comparing every
/// record. A segment without a table (written by an older build) is
/// scanned instead, and `compact` writes its table.
#[test]
fn the_keypoint_table_finds_what_the_scan_finds() {
    let (t, idx) = index_sample();
    let q = t.path().join("queries");
    hard_queries(&q);
    let scan = check_json(&q, &idx, true, &[]);
    let table = check_json(&q, &idx, false, &[]);
    let routes = |r: &Value| {
        (
            r["thresholds"]["keypoint_scan"].clone(),
            r["thresholds"]["keypoint_table"].clone(),
        )
    };
    assert_eq!(routes(&scan), (true.into(), false.into()));
    assert_eq!(routes(&table), (false.into(), true.into()));
    assert_eq!(tops(&table), tops(&scan));
    assert!(tops(&table)
        .iter()
        .any(|t| t.1 == "train_12.jpg near-duplicate" && t.2 == "keypoints"));

    // Hash-only, so that the copies' records reach verification only through
    // the keypoint shortlist or the PDQ top 8 (whose verdicts need PDQ).
    let hashes = |scan| check_json(&q, &idx, scan, &["--hash-only"]);
    let want = tops(&hashes(true));
    assert!(
        want.iter().any(|t| t.1 == "train_12.jpg near-duplicate"),
        "{want:?}"
    );
    assert_eq!(tops(&hashes(false)), want);
    let no_verify = tops(&check_json(
        &q,
        &idx,
        false,
        &["--hash-only", "--no-verify"],
    ));
    assert_ne!(
        no_verify, want,
        "without keypoints the pasted crop is missed"
    );
    let seg = std::fs::read_dir(&idx)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .unwrap()
        .path();
    std::fs::remove_file(seg.join("keypoint_table.col")).unwrap();
    let old = hashes(false);
    assert_eq!(routes(&old), (true.into(), false.into()), "scanned instead");
    assert_eq!(tops(&old), want);
    let o = run(&["compact", "--index", &idx, "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = hashes(false);
    assert_eq!(
        routes(&again),
        (false.into(), true.into()),
        "compact wrote the table"
    );
    assert_eq!(tops(&again), want);
}

/// `train_12`'s right half beside another picture's left half: pictures
/// painted on one template (a game's portraits on one background).
fn on_template(left: &str) -> RgbImage {
    let template = training("train_12.jpg");
    let mut out = imageops::resize(
        &training(left),
        template.width(),
        template.height(),
        imageops::FilterType::Triangle,
    );
    let half = template.width() / 2;
    let right = imageops::crop_imm(
        &template,
        half,
        0,
        template.width() - half,
        template.height(),
    );
    imageops::replace(&mut out, &right.to_image(), half as i64, 0);
    out
}

/// Checks `query` against an index of `training` (name, image) and returns
/// the inliers of each candidate by file name.
fn inliers_by_candidate(
    training: &[(&str, &RgbImage)],
    query: &RgbImage,
) -> std::collections::HashMap<String, u64> {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("training");
    std::fs::create_dir_all(&data).unwrap();
    for (name, img) in training {
        save_jpeg(img, &data.join(name), 92);
    }
    let idx = t.path().join("index");
    index_json_with(&data, &idx, &["--hash-only"]);
    let q = t.path().join("query.png");
    query.save(&q).unwrap();
    let o = run(&[
        "check",
        q.to_str().unwrap(),
        "--index",
        idx.to_str().unwrap(),
        "--json",
        "-q",
        "--no-regions",
    ]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    r["results"][0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let name = m["candidate"].as_str().unwrap().rsplit('/').next().unwrap();
            (name.to_string(), m["inliers"].as_u64().unwrap_or(0))
        })
        .collect()
}

#[test]
fn keypoints_many_training_pictures_share_count_in_share() {
    // A new picture on the template: it copies the background, which one
    // sibling in the index explains in full...
    let query = on_template("train_02.jpg");
    let (a, b, c) = (
        on_template("train_05.jpg"),
        on_template("train_07.jpg"),
        on_template("train_09.jpg"),
    );
    let alone = inliers_by_candidate(&[("a.jpg", &a)], &query)["a.jpg"];
    assert!(alone >= 20, "the shared half matches: {alone}");
    // ...but three siblings share it: each gets a part (each explains
    // somewhat other keypoints of it, so not exactly a third), and together
    // about what one got alone, not three times as much.
    let three = inliers_by_candidate(&[("a.jpg", &a), ("b.jpg", &b), ("c.jpg", &c)], &query);
    for name in ["a.jpg", "b.jpg", "c.jpg"] {
        assert!(
            three[name] * 3 < alone * 2,
            "{name}: {three:?}, alone {alone}"
        );
    }
    let sum: u64 = three.values().sum();
    assert!(sum * 2 < alone * 3, "{three:?}, alone {alone}");
    // A training picture stored twice (here also resized) is one picture:
    // both copies keep their evidence.
    let again = imageops::resize(
        &a,
        a.width() * 19 / 20,
        a.height() * 19 / 20,
        imageops::FilterType::Triangle,
    );
    let twice = inliers_by_candidate(&[("a.jpg", &a), ("a_again.jpg", &again)], &query);
    assert_eq!(twice["a.jpg"], alone, "{twice:?}");
    assert!(
        twice["a_again.jpg"] * 4 >= alone * 3,
        "{twice:?}, alone {alone}"
    );
    // A copy of one sibling still matches it in full: its own half is
    // explained by it alone.
    let copy = imageops::resize(
        &b,
        b.width() * 9 / 10,
        b.height() * 9 / 10,
        imageops::FilterType::Triangle,
    );
    let of_b = inliers_by_candidate(&[("a.jpg", &a), ("b.jpg", &b), ("c.jpg", &c)], &copy);
    assert!(
        of_b["b.jpg"] > 2 * of_b["a.jpg"].max(of_b["c.jpg"]),
        "{of_b:?}"
    );
}

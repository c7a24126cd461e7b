//! A check fanned out over index parts (`search::fanout`) gives the report
//! `check` gives on the merged index, field for field, floats exactly.
//!
//! The merged index is made by `lookalike merge` (the parts' segments
//! attached unchanged, in part order).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use image::RgbImage;
use lookalike::engine::CpuEngine;
use lookalike::index::Index;
use lookalike::ingest::decode::{decode, DecodeMode};
use lookalike::ingest::Limits;
use lookalike::pipeline::check::{check_decoded, CheckOptions};
use lookalike::pipeline::check_parts::{check_parts, describe, settings_of};
use lookalike::search::fanout::{self, Judged, Plan, Request, Stage1, Stage2, Stage2Plan};
use lookalike::search::fanout::{Stage3, Stage3Plan};
use serde_json::Value;

fn index(dirs: &[&Path], idx: &Path, extra: &[&str]) {
    let mut args: Vec<&str> = vec!["index"];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    args.extend(["-i", idx.to_str().unwrap(), "-q"]);
    args.extend(extra);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `lookalike merge OUT PARTS...`: the parts' segments attached in order.
fn merge(parts: &[&Path], out: &Path) {
    let mut args: Vec<&str> = vec!["merge", out.to_str().unwrap()];
    args.extend(parts.iter().map(|p| p.to_str().unwrap()));
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn jpeg(img: &RgbImage, p: &Path, q: u8) -> PathBuf {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    save_jpeg(img, p, q);
    p.to_path_buf()
}

/// Three part folders: a third of the sample training images (real
/// pictures, with keypoints) and distinct synthetic images each, plus near
/// copies of one image in parts 0 and 1 (another encoding) and the same
/// bytes of others in parts 1 and 2, so ties and corpus copies cross parts.
fn corpus(root: &Path) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = (0..3).map(|i| root.join(format!("train{i}"))).collect();
    for (i, d) in dirs.iter().enumerate() {
        for k in 0..3u64 {
            let seed = 100 * i as u64 + k;
            jpeg(
                &synthetic(seed, 256, 192),
                &d.join(format!("img_{seed:03}.jpg")),
                90,
            );
        }
        for k in 10 * i..10 * i + 10 {
            let name = format!("train_{k:02}.jpg");
            std::fs::copy(Path::new(SAMPLE).join("training").join(&name), d.join(name)).unwrap();
        }
    }
    let t05 = image::open(Path::new(SAMPLE).join("training/train_05.jpg")).unwrap();
    jpeg(&t05.into_rgb8(), &dirs[1].join("train_05_q70.jpg"), 70);
    for k in [0, 4] {
        let from = Path::new(SAMPLE).join(format!("training/train_{k:02}.jpg"));
        std::fs::copy(&from, dirs[2].join(format!("again_{k:02}.jpg"))).unwrap();
    }
    let shared = synthetic(900, 256, 192);
    jpeg(&shared, &dirs[0].join("shared_q90.jpg"), 90);
    jpeg(&shared, &dirs[1].join("shared_q75.jpg"), 75);
    jpeg(&shared, &dirs[1].join("shared_again.jpg"), 90);
    let twin = synthetic(901, 200, 200);
    jpeg(&twin, &dirs[1].join("twin.jpg"), 85);
    jpeg(&twin, &dirs[2].join("twin.jpg"), 85);
    // A derivative of train_03 (part 0) in part 2: its left half painted
    // over. A copy of the right half is explained by both, in two parts.
    let mut derived = train(3);
    let half = derived.width() / 2;
    for (x, _, p) in derived.enumerate_pixels_mut() {
        if x < half {
            *p = image::Rgb([30, 90, 160]);
        }
    }
    jpeg(&derived, &dirs[2].join("derived_03.jpg"), 90);
    dirs
}

fn train(k: usize) -> RgbImage {
    let p = Path::new(SAMPLE).join(format!("training/train_{k:02}.jpg"));
    image::open(p).unwrap().into_rgb8()
}

/// Queries: exact copies, edits (re-encoded, resized, mirrored, cropped,
/// brightened) and unrelated images, decoded as the index decodes.
fn queries(root: &Path, dirs: &[PathBuf], decode_label: &str) -> Vec<(String, u128, RgbImage)> {
    let q = root.join("queries");
    std::fs::create_dir_all(&q).unwrap();
    let mut files = vec![];
    for (src, name) in [
        (dirs[0].join("shared_q90.jpg"), "copy_shared.jpg"),
        (dirs[2].join("twin.jpg"), "copy_twin.jpg"),
        (dirs[1].join("img_102.jpg"), "copy_102.jpg"),
        (dirs[0].join("train_04.jpg"), "copy_train_04.jpg"),
    ] {
        std::fs::copy(&src, q.join(name)).unwrap();
        files.push(q.join(name));
    }
    for e in std::fs::read_dir(Path::new(SAMPLE).join("generated")).unwrap() {
        files.push(e.unwrap().path());
    }
    files.sort();
    let base = synthetic(900, 256, 192);
    files.push(jpeg(&base, &q.join("shared_q60.jpg"), 60));
    let small = image::imageops::resize(&base, 180, 135, image::imageops::FilterType::Triangle);
    files.push(jpeg(&small, &q.join("shared_small.jpg"), 85));
    let mirrored = image::imageops::flip_horizontal(&synthetic(2, 256, 192));
    files.push(jpeg(&mirrored, &q.join("mirror_002.jpg"), 90));
    let crop = image::imageops::crop_imm(&synthetic(202, 256, 192), 20, 16, 216, 160).to_image();
    files.push(jpeg(&crop, &q.join("crop_201.jpg"), 90));
    let t03 = train(3);
    let right = image::imageops::crop_imm(&t03, t03.width() / 2, 0, t03.width() / 2, t03.height());
    let right = image::imageops::resize(
        &right.to_image(),
        t03.width(),
        t03.height() * 2,
        image::imageops::FilterType::Triangle,
    );
    files.push(jpeg(&right, &q.join("right_half_03.jpg"), 90));
    let mut bright = synthetic(101, 256, 192);
    bright.pixels_mut().for_each(|p| {
        p.0 = p.0.map(|c| c.saturating_add(30));
    });
    files.push(jpeg(&bright, &q.join("bright_101.jpg"), 90));
    // A training picture small inside a flat page with UI bars (a
    // screenshot): found through a region of the query.
    let t07 = image::open(Path::new(SAMPLE).join("training/train_07.jpg"))
        .unwrap()
        .into_rgb8();
    let mut page = RgbImage::from_pixel(t07.width() * 3, t07.height() * 3, image::Rgb([240; 3]));
    for y in (10..60).step_by(16) {
        for x in 20..page.width() / 2 {
            page.put_pixel(x, y, image::Rgb([40; 3]));
        }
    }
    image::imageops::replace(
        &mut page,
        &t07,
        t07.width() as i64,
        t07.height() as i64 + 20,
    );
    files.push(jpeg(&page, &q.join("pasted_07.jpg"), 90));
    for s in [5000u64, 5001] {
        files.push(jpeg(
            &synthetic(s, 220, 220),
            &q.join(format!("other_{s}.jpg")),
            90,
        ));
    }
    let (mode, side) = DecodeMode::parse_label(decode_label).unwrap();
    let limits = Limits {
        fast_min_side: side,
        ..Limits::default()
    };
    files
        .iter()
        .map(|f| {
            let data = std::fs::read(f).unwrap();
            let rgb = decode(&data, mode, &limits).unwrap().rgb;
            let hash = xxhash_rust::xxh3::xxh3_128(&data);
            (f.display().to_string(), hash, rgb)
        })
        .collect()
}

fn json(r: &lookalike::search::CheckReport) -> Value {
    let mut v = serde_json::to_value(r).unwrap();
    v.as_object_mut().unwrap().remove("index");
    v
}

/// Every stage through its byte encoding, as a distributed driver runs them.
fn through_bytes(parts: &[&Index], req: &Request) -> lookalike::search::CheckReport {
    let req = Request::from_bytes(&req.to_bytes()).unwrap();
    let s1: Vec<Stage1> = parts
        .iter()
        .map(|p| {
            let b = fanout::stage1(p, &req, &CpuEngine).unwrap().to_bytes();
            Stage1::from_bytes(&b).unwrap()
        })
        .collect();
    let (plan, p2) = fanout::combine1(&req, &s1).unwrap();
    let plan = Plan::from_bytes(&plan.to_bytes()).unwrap();
    let s2: Vec<Stage2> = parts
        .iter()
        .zip(&p2)
        .map(|(p, pl)| {
            let pl = Stage2Plan::from_bytes(&pl.to_bytes()).unwrap();
            Stage2::from_bytes(&fanout::stage2(p, &req, &pl).unwrap().to_bytes()).unwrap()
        })
        .collect();
    let (judged, p3) = fanout::combine2(&req, &plan, &s2).unwrap();
    let judged = Judged::from_bytes(&judged.to_bytes()).unwrap();
    let s3: Vec<Stage3> = parts
        .iter()
        .zip(&p3)
        .map(|(p, pl)| {
            let pl = Stage3Plan::from_bytes(&pl.to_bytes()).unwrap();
            Stage3::from_bytes(&fanout::stage3(p, &req, &pl).unwrap().to_bytes()).unwrap()
        })
        .collect();
    fanout::report(&req, &judged, &s3, "parts").unwrap()
}

fn same_as_merged(extra: &[&str], ks: &[usize]) -> Value {
    let t = tempfile::tempdir().unwrap();
    let dirs = corpus(t.path());
    let idx: Vec<PathBuf> = (0..3).map(|i| t.path().join(format!("part{i}"))).collect();
    // Part 0 in two segments: the later images come after its first build.
    index(&[&dirs[0]], &idx[0], extra);
    jpeg(&synthetic(50, 256, 192), &dirs[0].join("img_050.jpg"), 90);
    jpeg(
        &synthetic(900, 256, 192),
        &dirs[0].join("shared_late.jpg"),
        80,
    );
    index(&[&dirs[0]], &idx[0], extra);
    for i in 1..3 {
        index(&[&dirs[i]], &idx[i], extra);
    }
    let merged = t.path().join("merged");
    merge(&[&idx[0], &idx[1], &idx[2]], &merged);
    let parts: Vec<Index> = idx.iter().map(|p| Index::open(p).unwrap()).collect();
    let parts: Vec<&Index> = parts.iter().collect();
    let merged = Index::open(&merged).unwrap();
    assert_eq!(parts[0].segments().len(), 2);
    assert_eq!(
        merged.live_count(),
        parts.iter().map(|p| p.live_count()).sum::<usize>()
    );
    let images = queries(
        t.path(),
        &dirs,
        merged.manifest().decode.as_deref().unwrap(),
    );
    let mut last = Value::Null;
    for &k in ks {
        let mut opts = CheckOptions::for_index(&merged);
        opts.top_k = k;
        let want = json(&check_decoded(&merged, &images, &opts).unwrap());
        let got = json(&check_parts(&parts, &images, &opts).unwrap());
        assert_eq!(got, want, "k={k}");
        let s = settings_of(&parts).unwrap();
        let total = parts.iter().map(|p| p.live_count() as u64).sum();
        let req = describe(&images, &s, &opts, vec![], Some(total)).unwrap();
        assert_eq!(json(&through_bytes(&parts, &req)), want, "k={k}, as bytes");
        last = want;
    }
    last
}

/// Matches of a check report verified by more than 10 keypoint inliers.
fn verified_matches(r: &Value) -> usize {
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|q| q["matches"].as_array().unwrap().clone())
        .filter(|m| m["inliers"].as_u64().is_some_and(|n| n > 10))
        .count()
}

#[test]
fn hash_only_parts_equal_the_merged_index() {
    let r = same_as_merged(&["--hash-only"], &[3, 10]);
    // The check exercised what the fan-out must get right.
    assert_eq!(r["thresholds"]["keypoint_table"], true);
    assert_eq!(r["thresholds"]["keypoint_scan"], false);
    assert!(r["matched"].as_u64().unwrap() >= 5, "{r}");
    let copies: Vec<u64> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|q| q["matches"].as_array().unwrap().clone())
        .filter_map(|m| m["corpus_copies"].as_u64())
        .collect();
    assert!(copies.iter().any(|&c| c >= 2), "{copies:?}");
    assert!(verified_matches(&r) >= 5, "{r}");
    let pasted = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["query"].as_str().unwrap().ends_with("pasted_07.jpg"))
        .unwrap();
    let best = &pasted["matches"][0];
    assert!(
        best["candidate"]
            .as_str()
            .unwrap()
            .ends_with("train_07.jpg"),
        "{pasted}"
    );
    assert!(
        best["region"].is_object(),
        "found through its region: {pasted}"
    );
    // Both train_03 and its derivative (other parts) claim the half's
    // keypoints: counted in share, in the parts as in the merged index.
    let half = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["query"].as_str().unwrap().ends_with("right_half_03.jpg"))
        .unwrap();
    let claimed = |name: &str| {
        half["matches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["candidate"].as_str().unwrap().ends_with(name))
            .and_then(|m| m["inliers"].as_u64())
            .unwrap_or(0)
    };
    let from = lookalike::search::fusion::SHARES_FROM as u64;
    assert!(claimed("train_03.jpg") >= from, "{half}");
    assert!(claimed("derived_03.jpg") >= from, "{half}");
}

#[test]
fn default_mode_parts_equal_the_merged_index() {
    let r = same_as_merged(&[], &[4]);
    assert!(r["thresholds"]["embedding_model"].is_string());
    assert!(r["results"][0]["matches"][0]["similarity"].is_f64());
}

#[test]
fn compact_parts_equal_the_merged_index() {
    let r = same_as_merged(&["--profile", "compact"], &[4]);
    // Nothing stored to scan, in the parts as in the merged index, yet the
    // candidates are verified (keypoints read back from the training files).
    assert_eq!(r["thresholds"]["keypoint_scan"], false);
    assert_eq!(r["thresholds"]["keypoint_table"], false);
    assert!(verified_matches(&r) >= 5, "{r}");
}

#[test]
fn parts_of_other_settings_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let b = t.path().join("b");
    make_corpus(&a.join("img"), 3, 0);
    make_corpus(&b.join("img"), 3, 10);
    index(&[&a.join("img")], &a.join("idx"), &["--hash-only"]);
    index(
        &[&b.join("img")],
        &b.join("idx"),
        &["--hash-only", "--exact"],
    );
    let pa = Index::open(&a.join("idx")).unwrap();
    let pb = Index::open(&b.join("idx")).unwrap();
    let opts = CheckOptions::for_index(&pa);
    let img = synthetic(1, 64, 64);
    let e = check_parts(&[&pa, &pb], &[("q".into(), 0, img)], &opts).unwrap_err();
    assert!(e.to_string().contains("must share decode setting"), "{e}");
}

#[test]
fn bad_bytes_are_errors() {
    assert!(Stage1::from_bytes(b"hello")
        .unwrap_err()
        .to_string()
        .contains("not a lookalike stage-1 message"));
    let t = tempfile::tempdir().unwrap();
    make_corpus(&t.path().join("img"), 3, 0);
    let idx = t.path().join("idx");
    index(&[&t.path().join("img")], &idx, &["--hash-only"]);
    let part = Index::open(&idx).unwrap();
    let opts = CheckOptions::for_index(&part);
    let req = describe(
        &[("q".into(), 0, synthetic(1, 64, 64))],
        &settings_of(&[&part]).unwrap(),
        &opts,
        vec![],
        None,
    )
    .unwrap();
    let b = req.to_bytes();
    // Every truncation and a flipped byte anywhere: an error or a request, no panic.
    for n in 0..b.len() {
        assert!(Request::from_bytes(&b[..n]).is_err());
    }
    for i in (0..b.len()).step_by(7) {
        let mut c = b.clone();
        c[i] ^= 0x5a;
        let _ = Request::from_bytes(&c);
    }
    let s1 = fanout::stage1(&part, &req, &CpuEngine).unwrap().to_bytes();
    assert!(Request::from_bytes(&s1)
        .unwrap_err()
        .to_string()
        .contains("not a lookalike request"));
    for n in 0..s1.len() {
        assert!(Stage1::from_bytes(&s1[..n]).is_err());
    }
    // A plan for another request is refused by the part.
    let s1 = Stage1::from_bytes(&s1).unwrap();
    let (_, p2) = fanout::combine1(&req, &[s1]).unwrap();
    let mut other = req.clone();
    other.top_k += 1;
    let e = fanout::stage2(&part, &other, &p2[0]).unwrap_err();
    assert!(e.to_string().contains("another request"), "{e}");
}

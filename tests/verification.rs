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

#[test]
fn pasted_and_rotated_crops_are_found_by_keypoints_only() {
    let (t, idx) = index_sample();
    let q = t.path().join("queries");
    std::fs::create_dir_all(&q).unwrap();
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

    let o = run(&[
        "check",
        q.to_str().unwrap(),
        "--index",
        &idx,
        "--json",
        "-q",
    ]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["thresholds"]["keypoint_scan"], true);
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

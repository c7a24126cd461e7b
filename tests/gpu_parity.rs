//! GPU engine vs the CPU reference, on lavapipe when no GPU exists.
//! Run with WGPU_BACKEND=vulkan VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json.
//! LOOKALIKE_REQUIRE_GPU=1 turns "no adapter" into a failure instead of a skip.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use image::RgbImage;
use lookalike::descriptors::{describe, describe_query, Hash256};
use lookalike::gpu::{DeviceChoice, GpuEngine};
use lookalike::search::hamming::column_topk;

fn engine() -> Option<&'static GpuEngine> {
    static E: OnceLock<Option<GpuEngine>> = OnceLock::new();
    E.get_or_init(|| match GpuEngine::new(DeviceChoice::Gpu) {
        Ok(e) => {
            let e = e.expect("DeviceChoice::Gpu never answers None");
            eprintln!("gpu_parity: adapter {}", e.describe());
            Some(e)
        }
        Err(err) => {
            if std::env::var("LOOKALIKE_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("LOOKALIKE_REQUIRE_GPU=1 but no adapter: {err:#}");
            }
            eprintln!("gpu_parity: SKIPPED, no wgpu adapter ({err:#}); set LOOKALIKE_REQUIRE_GPU=1 to fail instead");
            None
        }
    })
    .as_ref()
}

fn shipped_images() -> Vec<(String, RgbImage)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![];
    for dir in ["tests/data/descriptors", "examples/sample/training"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for p in files {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "png" || ext == "jpg" {
                out.push((p.display().to_string(), image::open(&p).unwrap().to_rgb8()));
            }
        }
    }
    out
}

fn synthetic_set() -> Vec<(String, RgbImage)> {
    // Odd, even, tiny, exact-64, exact-32 and wide sizes: every window and edge case of the box filter.
    let sizes = [
        (5, 5),
        (7, 300),
        (31, 33),
        (32, 32),
        (64, 64),
        (65, 127),
        (128, 129),
        (200, 150),
        (257, 255),
        (512, 384),
        (640, 64),
        (3, 50),
    ];
    sizes
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| {
            (
                format!("synthetic {w}x{h}"),
                common::synthetic(i as u64 + 1, w, h),
            )
        })
        .collect()
}

/// Both query and index semantics, all images in one mixed-size batch.
fn assert_parity(set: &[(String, RgbImage)]) {
    let Some(e) = engine() else { return };
    let imgs: Vec<RgbImage> = set.iter().map(|(_, i)| i.clone()).collect();
    let gq = e.describe_batch(&imgs).unwrap();
    let gi = e.describe_index_batch(&imgs).unwrap();
    let mut bad = vec![];
    for (k, (name, img)) in set.iter().enumerate() {
        let cq = describe_query(img);
        if gq[k] != cq {
            let bits: Vec<u32> = (0..8).map(|v| gq[k].pdq[v].hamming(&cq.pdq[v])).collect();
            bad.push(format!("{name}: query bits differ per variant {bits:?}, quality {} vs {}, phash {:016x} vs {:016x}", gq[k].quality, cq.quality, gq[k].phash, cq.phash));
        }
        let ci = describe(img);
        if gi[k] != ci {
            bad.push(format!(
                "{name}: index descriptors differ: pdq bits {}",
                gi[k].pdq.hamming(&ci.pdq)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "GPU != CPU on {} of {} images:\n{}",
        bad.len(),
        set.len(),
        bad.join("\n")
    );
    eprintln!(
        "gpu_parity: {} images bit-identical (8 PDQ variants, quality, pHash, index descriptors)",
        set.len()
    );
}

#[test]
fn synthetic_images_bit_identical() {
    assert_parity(&synthetic_set());
}

#[test]
fn shipped_images_bit_identical() {
    assert_parity(&shipped_images());
}

#[test]
fn streaming_matches_batch() {
    let Some(e) = engine() else { return };
    let set = synthetic_set();
    let batches: Vec<Vec<RgbImage>> = set
        .chunks(5)
        .map(|c| c.iter().map(|(_, i)| i.clone()).collect())
        .collect();
    let mut got = vec![];
    e.describe_stream(batches, |r| got.extend(r)).unwrap();
    let want: Vec<_> = set.iter().map(|(_, i)| describe_query(i)).collect();
    assert_eq!(got, want);
}

fn rand_hash(s: &mut u64) -> Hash256 {
    Hash256 {
        words: std::array::from_fn(|_| {
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            *s
        }),
    }
}

#[test]
fn hamming_topk_equals_cpu_scan() {
    let Some(e) = engine() else { return };
    let mut s = 0x1234_5678_9abc_def1u64;
    let mut db: Vec<Hash256> = (0..40_000).map(|_| rand_hash(&mut s)).collect();
    let live: Vec<bool> = (0..db.len()).map(|i| i % 7 != 3).collect();
    let mut queries: Vec<[Hash256; 8]> = (0..48)
        .map(|_| std::array::from_fn(|_| rand_hash(&mut s)))
        .collect();
    // Plant near and exact copies (in various orientations), duplicates for
    // ties, and a dead exact copy that must not be returned.
    for (q, qv) in queries.iter_mut().enumerate() {
        let n = db.len();
        let row = (q * 811) % n;
        let mut near = qv[q % 8];
        near.words[0] ^= 0b1011 << (q % 40);
        db[row] = near;
        db[(row + 5000) % n] = near;
        db[(row + 9001) % n] = qv[(q + 3) % 8];
    }
    db[3] = queries[0][0]; // row 3 is dead (3 % 7 == 3)
    for k in [1, 10, 32] {
        let g = e.hamming_topk(&db, &live, &queries, k).expect("k <= KMAX");
        let c = column_topk(&db, &live, &queries, k);
        assert_eq!(g, c, "k = {k}");
    }
    assert!(e
        .hamming_topk(&db, &live, &queries, 10)
        .unwrap()
        .iter()
        .all(|v| v.len() == 10 && v[0].1 <= 3));
    // k beyond the kernel's list length: the kernel declines (the caller
    // runs the CPU scan).
    assert_eq!(e.hamming_topk(&db, &live, &queries[..2], 100), None);
}

#[test]
fn cpu_choice_never_opens_a_device() {
    assert!(GpuEngine::new(DeviceChoice::Cpu).unwrap().is_none());
    assert_eq!("GPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Gpu);
    assert!("tpu".parse::<DeviceChoice>().is_err());
}

/// `index --device gpu` and `--device cpu` write the same index, and `check`
/// (>= 64 images: GPU describe + GPU Hamming search) reports the same matches.
#[test]
fn cli_gpu_and_cpu_give_same_index_and_check() {
    if engine().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train");
    let gen = tmp.path().join("gen");
    std::fs::create_dir_all(&train).unwrap();
    std::fs::create_dir_all(&gen).unwrap();
    for i in 0..70u64 {
        let img = common::synthetic(i + 100, 96 + (i as u32 % 5) * 7, 64 + (i as u32 % 3) * 9);
        img.save(train.join(format!("t{i:03}.png"))).unwrap();
        // Some generated images copy a training image, some mirrored, the rest are new.
        let q = match i % 4 {
            0 => img.clone(),
            2 => image::imageops::flip_horizontal(&img),
            // Letterboxed copy: found through the trimmed view.
            3 if i % 8 == 3 => {
                let mut out =
                    RgbImage::from_pixel(img.width(), img.height() + 40, image::Rgb([0, 0, 0]));
                image::imageops::replace(&mut out, &img, 0, 20);
                out
            }
            _ => common::synthetic(i + 1000, 80, 60),
        };
        q.save(gen.join(format!("g{i:03}.png"))).unwrap();
    }
    let mut digest = vec![];
    let mut checks = vec![];
    for dev in ["gpu", "cpu"] {
        let idx = tmp.path().join(format!("idx_{dev}"));
        let (i, t, g) = (
            idx.to_str().unwrap(),
            train.to_str().unwrap(),
            gen.to_str().unwrap(),
        );
        let o = common::run(&["index", t, "--index", i, "--device", dev, "--quiet"]);
        assert!(o.status.success(), "{}", common::stderr(&o));
        let o = common::run(&["info", "--index", i, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        digest.push(v["content_digest"].clone());
        let o = common::run(&[
            "check", g, "--index", i, "--device", dev, "--json", "--quiet",
        ]);
        assert!(o.status.success(), "{}", common::stderr(&o));
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        // Candidate paths name the index's own training folder: same for both.
        v["index"] = serde_json::Value::Null;
        checks.push(v);
    }
    assert_eq!(digest[0], digest[1], "index --device gpu vs cpu");
    assert!(
        checks[0]["matched"].as_u64().unwrap() >= 18,
        "{}",
        checks[0]["matched"]
    );
    assert_eq!(checks[0], checks[1], "check --device gpu vs cpu");
    let trimmed = checks[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["matches"][0]["trimmed"] != "none")
        .count();
    assert!(
        trimmed >= 5,
        "letterboxed copies should match through trimmed views ({trimmed})"
    );
}

/// With small batches the GPU path overlaps decoding of batch N+1 with GPU work
/// on batch N; exact duplicates that straddle batches must still be recorded as
/// duplicates, and the index must equal the CPU engine's.
#[test]
fn overlapped_gpu_indexing_equals_cpu_across_batches() {
    if engine().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::make_corpus(&data, 24, 500);
    // Copies whose originals sit in earlier batches (names sort after img_*).
    // z_copy_0 lands in the batch read while img_519's batch is still on the GPU.
    for (i, src) in ["img_519.jpg", "img_507.jpg", "img_515.jpg"]
        .iter()
        .enumerate()
    {
        std::fs::copy(data.join(src), data.join(format!("z_copy_{i}.jpg"))).unwrap();
    }
    let mut out = vec![];
    for dev in ["gpu", "cpu"] {
        let idx = tmp.path().join(format!("idx_{dev}"));
        let o = common::bin()
            .args([
                "index",
                data.to_str().unwrap(),
                "--index",
                idx.to_str().unwrap(),
                "--device",
                dev,
                "--json",
                "-q",
            ])
            .env("LOOKALIKE_BATCH", "5")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let o = common::run(&["info", "--index", idx.to_str().unwrap(), "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        out.push((
            s["described"].clone(),
            s["duplicates"].clone(),
            v["content_digest"].clone(),
        ));
    }
    assert_eq!(out[0].1, 3, "duplicates across batches");
    assert_eq!(out[0], out[1], "GPU (overlapped) vs CPU");
}

#[test]
fn gpu_no_keypoints_index_equals_cpu() {
    if engine().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Photos: the synthetic fixtures are too smooth to have keypoints.
    let data = format!("{}/training", common::SAMPLE);
    let digest = |dev: &str, extra: &[&str]| {
        let idx = tmp.path().join(format!("idx_{dev}_{}", extra.len()));
        let mut args = vec![
            "index",
            &data,
            "--index",
            idx.to_str().unwrap(),
            "--device",
            dev,
            "--hash-only",
            "-q",
        ];
        args.extend_from_slice(extra);
        let o = common::run(&args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        let o = common::run(&["info", "--index", idx.to_str().unwrap(), "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["content_digest"].clone()
    };
    let gpu = digest("gpu", &["--no-keypoints"]);
    assert_eq!(gpu, digest("cpu", &["--no-keypoints"]), "GPU vs CPU");
    // The digest covers keypoints: one computed by mistake would show.
    assert_ne!(gpu, digest("cpu", &[]), "an index with keypoints");
}

/// Region proposals are made on the CPU for both engines; the GPU engine
/// describes the crops in one batch and must give the reference's
/// descriptors for them, in the same order.
#[test]
fn regions_described_alike() {
    use lookalike::descriptors::Extras;
    use lookalike::engine::{CpuEngine, Engine};
    let Some(e) = engine() else { return };
    // Pictures pasted into flat pages (screenshots) and onto other pictures.
    let mut set = vec![];
    for i in 0..4u64 {
        let pic = common::synthetic(300 + i, 150 + 10 * i as u32, 110);
        let mut page = if i % 2 == 0 {
            RgbImage::from_pixel(420, 520, image::Rgb([238, 238, 242]))
        } else {
            common::synthetic(700 + i, 480, 400)
        };
        image::imageops::replace(&mut page, &pic, 60 + 20 * i as i64, 140);
        set.push(page);
    }
    set.push(common::synthetic(9, 200, 150));
    let extras = Extras {
        embedding: false,
        keypoints: true,
        regions: true,
    };
    let want = CpuEngine.describe_queries(&set, extras).unwrap();
    let got = Engine::describe_queries(e, &set, extras).unwrap();
    let with = want.iter().filter(|q| !q.regions.is_empty()).count();
    assert!(
        with >= 2,
        "only {with} of the pasted images proposed a region"
    );
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        let rects = |q: &lookalike::descriptors::QueryDescriptors| {
            q.regions.iter().map(|r| r.rect).collect::<Vec<_>>()
        };
        assert_eq!(rects(g), rects(w), "image {k}: proposals");
        assert!(
            g == w,
            "image {k}: GPU descriptors of its regions differ from the CPU's"
        );
    }
}

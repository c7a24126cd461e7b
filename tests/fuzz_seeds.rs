//! The fuzz targets (`lookalike::fuzzing`, run by libFuzzer through
//! scripts/fuzz.sh) on their seed corpus in fuzz/seeds/ and on fixed
//! mutations of it: truncations and byte changes from a seeded generator.
//! A seed that once crashed a target stays in fuzz/seeds/, so this keeps it
//! fixed; a panic here fails the test with the input's name.

mod common;

use std::path::Path;

use lookalike::fuzzing;

const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds");

/// The files in fuzz/seeds/`target`, by name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(SEEDS).join(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no seeds in {}", dir.display());
    v
}

/// `n` mutants of `seed`: truncations at spread-out lengths, then copies
/// with a few bytes changed at positions drawn from a fixed generator
/// (`keep` leading bytes left alone, as the index target's file selector).
fn mutants(seed: &[u8], n: usize, keep: usize) -> Vec<Vec<u8>> {
    let mut out = vec![];
    let len = seed.len();
    for i in 1..=n / 4 {
        out.push(seed[..keep.max(len * i / (n / 4 + 1))].to_vec());
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ len as u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while out.len() < n && len > keep {
        let mut m = seed.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = keep + (next() as usize) % (len - keep);
            m[at] = match next() % 3 {
                0 => m[at] ^ (1 << (next() % 8)),
                1 => 0xFF,
                _ => next() as u8,
            };
        }
        out.push(m);
    }
    out
}

/// Runs `f` on every seed of `target` and `n` mutants of each; a panic
/// names the seed and the mutant.
fn run_all(target: &str, n: usize, f: impl Fn(&[u8])) {
    for (name, seed) in seeds(target) {
        f(&seed);
        for (i, m) in mutants(&seed, n, 0).iter().enumerate() {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(m)));
            assert!(r.is_ok(), "{target}: mutant {i} of {name} panicked");
        }
    }
}

#[test]
fn decode_seeds_and_mutants() {
    run_all("decode", 60, fuzzing::decode);
}

#[test]
fn onnx_seeds_and_mutants() {
    run_all("onnx", 120, fuzzing::onnx);
}

#[test]
fn tar_seeds_and_mutants() {
    // The WebDataset seed really is a shard: its two image members (the
    // symlink named .jpg is not one) stream and re-read by name alike.
    let (_, shard) = seeds("tar")
        .into_iter()
        .find(|(n, _)| n.ends_with("/webdataset.tar"))
        .unwrap();
    assert_eq!(fuzzing::tar(&shard), (2, 2));
    run_all("tar", 60, |d| {
        fuzzing::tar(d);
    });
}

#[test]
fn safetensors_seeds_and_mutants() {
    run_all("safetensors", 40, fuzzing::safetensors);
}

/// The index target on a real index (hashes, keypoints, embeddings and
/// their HNSW graph): every file truncated and changed in turn.
#[test]
fn index_files_seeds_and_mutants() {
    let t = tempfile::tempdir().unwrap();
    let images = t.path().join("images");
    common::make_corpus(&images, 5, 300);
    let idx = t.path().join("template");
    let o = common::run(&[
        "index",
        images.to_str().unwrap(),
        "--index",
        idx.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let tpl = fuzzing::IndexTemplate::new(&idx, &t.path().join("scratch")).unwrap();
    let names = tpl.names().len();
    assert!(names >= 8, "a template of {names} files");
    for (i, seed) in tpl.seeds().iter().enumerate() {
        tpl.run(seed).unwrap();
        for (j, m) in mutants(seed, 40, 1).iter().enumerate() {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tpl.run(m)));
            let name = tpl.names()[i].display().to_string();
            assert!(r.is_ok(), "index: mutant {j} of {name} panicked");
            r.unwrap().unwrap();
        }
    }
}

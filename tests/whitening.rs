//! Segment whitening (`index::whitening`) through the real writer, merge,
//! attach and search: which segments get one, that a query's similarity is
//! then the whitened cosine on the raw scale, and that a damaged file is an
//! error naming it.

use std::path::Path;

use lookalike::descriptors::{Descriptors, Embedding, Hash256, QueryDescriptors};
use lookalike::index::whitening::{self, MIN_ROWS};
use lookalike::index::{Index, IndexWriter, Profile};
use lookalike::search::calibrate::Calibration;
use lookalike::search::fusion::{fuse, FuseParams, ANN_MIN_ROWS};

const DIM: usize = 64;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    }
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// `n` unrelated rows that all lean on one shared direction (as a generic
/// model's embeddings of one corpus do), so their raw cosines are high.
fn corpus(n: usize) -> Vec<Vec<f32>> {
    let mut r = Rng(0x2545_F491_4F6C_DD1D);
    let common: Vec<f32> = (0..DIM).map(|_| r.next()).collect();
    (0..n)
        .map(|_| unit(common.iter().map(|&c| 2.0 * c + r.next()).collect()))
        .collect()
}

fn build(dir: &Path, rows: &[Vec<f32>], commit_every: usize, profile: Profile) {
    let mut w = IndexWriter::open(dir).unwrap();
    w.set_embedding_label(Some("synthetic@test".into()));
    w.set_profile(profile);
    for (i, v) in rows.iter().enumerate() {
        let d = Descriptors {
            quality: 100,
            embedding: Embedding::from_f32(v),
            ..Descriptors::default()
        };
        let path = format!("/data/img{i:05}.jpg");
        w.add(path.as_bytes(), 1000, i as i64, i as u128 + 1, 0, &d);
        if (i + 1) % commit_every == 0 {
            w.commit().unwrap();
        }
    }
    w.commit().unwrap();
}

/// The top candidates of a query embedding (embedding evidence only).
fn similarities(index: &Index, q: &[f32], calibration: Calibration) -> Vec<(usize, f32)> {
    let q = QueryDescriptors {
        pdq: [Hash256::default(); 8],
        quality: 100,
        phash: 0,
        pdq_trim: None,
        keypoints: vec![],
        embedding: Some(q.to_vec()),
        regions: vec![],
    };
    // Row numbers across segments, in commit order.
    let starts: Vec<usize> = index
        .segments()
        .iter()
        .scan(0, |n, s| {
            let at = *n;
            *n += s.len();
            Some(at)
        })
        .collect();
    let p = FuseParams {
        top_k: 5,
        parallel: false,
        verify: false,
        ann_min_rows: ANN_MIN_ROWS,
        keypoint_scan: false,
        calibration,
    };
    fuse(index, &q, &[], &p)
        .iter()
        .map(|c| {
            let row = starts[c.m.rec.seg as usize] + c.m.rec.row as usize;
            (row, c.similarity.unwrap())
        })
        .collect()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn a_segment_of_enough_rows_is_scored_whitened() {
    let rows = corpus(MIN_ROWS + 44);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &rows, usize::MAX, Profile::Full);
    let index = Index::open(dir.path()).unwrap();
    let seg = &index.segments()[0];
    let w = seg.whitening().expect("a whitening for 300 rows");
    assert_eq!(w.inp, DIM);

    // A copy of row 7 with a little noise.
    let mut r = Rng(99);
    let q = unit(rows[7].iter().map(|x| x + 0.02 * r.next()).collect());
    let got = similarities(&index, &q, Calibration::default());
    assert_eq!(got[0].0, 7, "the copy ranks first: {got:?}");
    let cal = Calibration::default();
    let white = |v: &[f32]| w.apply(v.iter().copied()).unwrap();
    let qw = white(&q);
    for &(row, s) in &got {
        let want = cal.from_whitened(cos(&qw, &white(&rows[row])));
        assert!((s - want).abs() < 2e-3, "row {row}: {s} vs {want}");
    }
    // The copy keeps a high similarity; the unrelated runner-up, which
    // raw cosine found close, is put far below it.
    let (copy, runner) = (got[0].1, got[1].1);
    assert!(copy > 0.9, "copy {copy}");
    let raw_runner = cos(&q, &rows[got[1].0]);
    assert!(raw_runner > 0.7, "raw cosine of the runner-up {raw_runner}");
    assert!(
        runner < raw_runner - 0.1,
        "whitened {runner}, raw {raw_runner}"
    );
}

#[test]
fn small_segments_and_compact_indexes_stay_raw_and_merges_refit() {
    let rows = corpus(MIN_ROWS + 44);
    let dir = tempfile::tempdir().unwrap();
    // Two commits of 150 rows: neither has enough for a whitening.
    build(dir.path(), &rows, 150, Profile::Full);
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.segments().len(), 2);
    assert!(index.segments().iter().all(|s| s.whitening().is_none()));
    let q = rows[3].clone();
    let got = similarities(&index, &q, Calibration::default());
    assert_eq!(got[0].0, 3);
    assert!(
        (got[0].1 - 1.0).abs() < 1e-3,
        "raw cosine of itself {}",
        got[0].1
    );
    drop(index);

    // Merged into one of 300 rows: refitted there.
    lookalike::pipeline::compact(dir.path(), None).unwrap();
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.segments().len(), 1);
    assert!(index.segments()[0].whitening().is_some());

    // Attached to another index: the file comes along.
    let out = tempfile::tempdir().unwrap();
    let mut w = IndexWriter::open(out.path()).unwrap();
    w.attach(&[index], None).unwrap();
    drop(w);
    let attached = Index::open(out.path()).unwrap();
    assert!(attached.segments()[0].whitening().is_some());

    // A compact index keeps no f16 rows to whiten.
    let c = tempfile::tempdir().unwrap();
    build(c.path(), &rows, usize::MAX, Profile::Compact);
    let index = Index::open(c.path()).unwrap();
    assert!(index.segments()[0].whitening().is_none());
}

#[test]
fn a_damaged_whitening_is_an_error_naming_it() {
    let rows = corpus(MIN_ROWS);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &rows, usize::MAX, Profile::Full);
    let index = Index::open(dir.path()).unwrap();
    let seg_dir = index.segments()[0].dir(dir.path());
    drop(index);
    let file = seg_dir.join(whitening::FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let e = Index::open(dir.path()).err().expect("refused").to_string();
    assert!(e.contains(whitening::FILE), "{e}");
    // And an intact one beside a segment without embeddings.
    bytes[n - 3] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    assert!(Index::open(dir.path()).is_ok(), "restored");
    for f in ["embedding.col", "projection.col", "codes.col", "hnsw.col"] {
        std::fs::remove_file(seg_dir.join(f)).unwrap();
    }
    let e = Index::open(dir.path()).err().expect("refused").to_string();
    assert!(e.contains("a whitening without the embedding.col"), "{e}");
}

#[test]
fn compact_fits_a_lone_segment_once_and_leaves_one_that_cannot_have_one() {
    let rows = corpus(MIN_ROWS + 10);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &rows, usize::MAX, Profile::Full);
    // As written by a build that predates whitening.
    let seg_dir = Index::open(dir.path()).unwrap().segments()[0].dir(dir.path());
    std::fs::remove_file(seg_dir.join(whitening::FILE)).unwrap();
    let c = lookalike::pipeline::compact(dir.path(), None).unwrap();
    assert_eq!((c.segments_before, c.segments_after), (1, 1));
    let index = Index::open(dir.path()).unwrap();
    assert!(index.segments()[0].whitening().is_some());
    let first = index.segments()[0].dir(dir.path());
    assert_ne!(first, seg_dir, "rewritten into a new segment");
    drop(index);
    // A second compact has nothing to do: the same segment folder stays.
    lookalike::pipeline::compact(dir.path(), None).unwrap();
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.segments()[0].dir(dir.path()), first);
    drop(index);

    // 300 identical rows have no variance to whiten: no file, and compact
    // does not rewrite the segment over and over.
    let same = vec![rows[0].clone(); MIN_ROWS + 44];
    let d2 = tempfile::tempdir().unwrap();
    build(d2.path(), &same, usize::MAX, Profile::Full);
    let seg = Index::open(d2.path()).unwrap().segments()[0].dir(d2.path());
    assert!(!seg.join(whitening::FILE).exists());
    lookalike::pipeline::compact(d2.path(), None).unwrap();
    let after = Index::open(d2.path()).unwrap().segments()[0].dir(d2.path());
    assert_eq!(after, seg);
}

#[test]
fn sscd_similarities_are_never_whitened() {
    let rows = corpus(MIN_ROWS + 44);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &rows, usize::MAX, Profile::Full);
    let index = Index::open(dir.path()).unwrap();
    assert!(index.segments()[0].whitening().is_some());
    let q = rows[5].clone();
    let sscd = Calibration::for_model(Some("sscd_disc_mixup@0123456789abcdef"));
    for &(row, s) in &similarities(&index, &q, sscd) {
        let raw = cos(&q, &rows[row]);
        assert!((s - raw).abs() < 2e-3, "row {row}: {s}, raw {raw}");
    }
}

use super::*;
use crate::descriptors::embedding::similarity;

/// Unit vectors whose variance falls off along the dimensions, like a
/// CNN's embeddings: `centres` clusters in `dim` leading values.
fn rows(n: usize, dim: usize, centres: usize, seed: u64) -> Vec<Embedding> {
    let mut s = seed | 1;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let spread = |d: usize| ((d + 1) as f32).powf(-0.6);
    let cs: Vec<Vec<f32>> = (0..centres)
        .map(|_| (0..dim).map(|d| rnd() * spread(d)).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &cs[i % centres];
            let mut v: Vec<f32> = (0..dim).map(|d| c[d] + 0.5 * rnd() * spread(d)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            Embedding::from_f32(&v)
        })
        .collect()
}

fn code<'a>(codes: &'a [u8], axes: &Axes, r: usize) -> &'a [u8] {
    let w = 4 + axes.out;
    &codes[r * w..][..w]
}

#[test]
fn axes_are_orthonormal_and_strongest_first() {
    let embs = rows(2000, 640, 50, 3);
    let axes = fit(&embs).unwrap();
    assert_eq!((axes.inp, axes.out), (640, DIM));
    let a: Vec<Vec<f32>> = axes
        .bits
        .chunks_exact(axes.inp)
        .map(|r| r.iter().map(|&h| f16_to_f32(h)).collect())
        .collect();
    for i in [0, 1, 17, 255] {
        for j in [0, 1, 17, 255] {
            let d: f32 = a[i].iter().zip(&a[j]).map(|(x, y)| x * y).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((d - want).abs() < 2e-3, "axes {i}, {j}: {d}");
        }
    }
    // Energy captured per axis falls (the rows' variance falls along d).
    let energy =
        |ax: &[f32]| -> f32 { embs.iter().map(|e| similarity(ax, e).powi(2)).sum::<f32>() };
    let (e0, e10, e200) = (energy(&a[0]), energy(&a[10]), energy(&a[200]));
    assert!(e0 > e10 && e10 > e200, "{e0} {e10} {e200}");
    // The same rows give the same axes (fixed seed, no thread-dependent sums).
    assert_eq!(fit(&embs).unwrap().bits, axes.bits);
}

#[test]
fn randomized_axes_span_the_direct_eigenvectors() {
    // A spectrum with clear gaps: the randomized path (l ≪ dim) must find
    // the same leading eigenvectors as a direct eigendecomposition.
    let dim = 300;
    let mut s = 7u64;
    let m = DMatrix::<f64>::from_fn(dim, dim, |_, _| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    });
    let basis = m.qr().q();
    let values = DMatrix::<f64>::from_diagonal(&nalgebra::DVector::from_fn(dim, |i, _| {
        0.9f64.powi(i as i32)
    }));
    let c = &basis * values * basis.transpose();
    let got = top_eigenpairs(&c, 20);
    assert!(20 + OVERSAMPLE < dim / 2, "takes the randomized path");
    for (i, (value, v)) in got.iter().enumerate() {
        // The whitening scales by these: they must be the true ones too.
        let want = 0.9f64.powi(i as i32);
        assert!(
            (value - want).abs() < 1e-6 * want.max(1.0),
            "eigenvalue {i}: {value}"
        );
        let d: f64 = v
            .iter()
            .zip(basis.column(i).iter())
            .map(|(a, b)| a * b)
            .sum();
        assert!(d.abs() > 0.999, "eigenvector {i}: |cos| {}", d.abs());
    }
}

#[test]
fn codes_approximate_dot_products_and_small_segments_are_exact() {
    // More rows than axes: the code similarity tracks the exact one.
    let embs = rows(3000, 1280, 80, 11);
    let axes = fit(&embs).unwrap();
    let codes = encode_all(&axes, &embs);
    let mut worst = 0f32;
    for (a, b) in [(0, 80), (1, 81), (5, 900), (7, 2000), (3, 4)] {
        let q = embs[a].to_f32();
        let exact = similarity(&q, &embs[b]);
        let by_query = dot_query(&axes.project(&q), code(&codes, &axes, b));
        let by_codes = dot_codes(code(&codes, &axes, a), code(&codes, &axes, b));
        worst = worst
            .max((by_query - exact).abs())
            .max((by_codes - exact).abs());
    }
    assert!(worst < 0.08, "worst |approx - exact| {worst}");
    // Fewer rows than DIM: every row lies in the span of the axes, so a
    // query's code similarity with it is exact up to int8 rounding.
    let small = rows(40, 1280, 40, 5);
    let axes = fit(&small).unwrap();
    assert_eq!(axes.out, 40);
    let codes = encode_all(&axes, &small);
    let q = rows(1, 1280, 1, 99)[0].to_f32();
    for (r, e) in small.iter().enumerate() {
        let exact = similarity(&q, e);
        let approx = dot_query(&axes.project(&q), code(&codes, &axes, r));
        assert!(
            (approx - exact).abs() < 0.02,
            "row {r}: {approx} vs {exact}"
        );
    }
}

#[test]
fn rows_without_an_embedding_get_a_zero_code() {
    let mut embs = rows(50, 512, 5, 2);
    embs[3] = Embedding::default();
    let axes = fit(&embs).unwrap();
    assert_eq!(axes.inp, 512, "the zero tail of a 512-d model is not read");
    let codes = encode_all(&axes, &embs);
    assert!(code(&codes, &axes, 3).iter().all(|&b| b == 0));
    assert!(code(&codes, &axes, 4)[..4] != [0; 4]);
    let mut one = rows(2, 64, 1, 1);
    one[1] = Embedding::default();
    // One row still gets its axis: a compact index keeps it only there.
    assert_eq!(fit(&one).map(|a| a.out), Some(1));
    one[0] = Embedding::default();
    assert!(fit(&one).is_none(), "no row: nothing to fit");
}

#[test]
fn a_compact_index_scores_and_rebuilds_rows_from_codes() {
    let q = rows(1, 1280, 1, 99)[0].to_f32();
    // A small segment: rows on the axes, the estimate is the exact cosine
    // (normalising within the axes would inflate it by 1/|qp|).
    let small = rows(40, 1280, 40, 5);
    let dir = tempfile::tempdir().unwrap();
    write_search_columns(dir.path(), &small).unwrap();
    let p = Projection::open(dir.path(), 40).unwrap();
    let qp = p.project(&q);
    let qn = qp.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(qn < 0.9, "the query lies partly off the axes ({qn})");
    for (r, e) in small.iter().enumerate() {
        let exact = similarity(&q, e);
        let est = p.cosine(&qp, qn, r as u32).unwrap();
        assert!((est - exact).abs() < 0.02, "row {r}: {est} vs {exact}");
        // Rebuilt from its code: the row itself, to rounding.
        let back = p.reconstruct(r).unwrap().to_f32();
        let n = back.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos = similarity(&back, e) / n;
        assert!((n - 1.0).abs() < 0.01, "row {r} rebuilt with norm {n}");
        assert!(cos > 0.999, "row {r} rebuilt with cosine {cos}");
    }
    // A large segment (256 of 1 280 axes): a near copy keeps a similarity
    // near its true one, off-axis parts included.
    let big = rows(3000, 1280, 80, 11);
    let dir = tempfile::tempdir().unwrap();
    write_search_columns(dir.path(), &big).unwrap();
    let p = Projection::open(dir.path(), 3000).unwrap();
    let mut worst = 0f32;
    for (a, b) in [(0, 80), (1, 81), (5, 885), (7, 2007)] {
        let q = big[a].to_f32();
        let qp = p.project(&q);
        let qn = qp.iter().map(|x| x * x).sum::<f32>().sqrt();
        let exact = similarity(&q, &big[b]);
        worst = worst.max((p.cosine(&qp, qn, b as u32).unwrap() - exact).abs());
        // The query's own row: a copy, cosine 1.
        assert!(p.cosine(&qp, qn, a as u32).unwrap() > 0.98);
        // Rebuilt, a row keeps only what the axes kept: its norm says how
        // much (so a merge's code still does).
        let back = p.reconstruct(b).unwrap().to_f32();
        let n = back.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(n > 0.5 && n < 0.995, "row {b} rebuilt with norm {n}");
    }
    assert!(worst < 0.08, "worst |estimate - exact| {worst}");
    // No embedding, no similarity.
    let mut some = rows(20, 1280, 4, 3);
    some[2] = Embedding::default();
    let dir = tempfile::tempdir().unwrap();
    write_search_columns(dir.path(), &some).unwrap();
    let p = Projection::open(dir.path(), 20).unwrap();
    assert!(p.cosine(&p.project(&q), 0.5, 2).is_none());
    assert!(p.reconstruct(2).is_none());
}

#[test]
fn damaged_columns_are_errors_not_panics() {
    let embs = rows(300, 256, 10, 4);
    let dir = tempfile::tempdir().unwrap();
    write_search_columns(dir.path(), &embs).unwrap();
    let p = Projection::open(dir.path(), 300).unwrap();
    assert_eq!((p.inp, p.out), (256, 256));
    let q = embs[9].to_f32();
    assert!((p.dot(&p.project(&q), 9) - 1.0).abs() < 0.02);
    assert!(dir.path().join(graph::FILE).is_file());

    let err = |dir: &Path, rows| Projection::open(dir, rows).err().unwrap().to_string();
    assert!(
        err(dir.path(), 299).contains("codes.col"),
        "row count must match"
    );
    // A scale that is not a number.
    let axes = fit(&embs).unwrap();
    let mut codes = encode_all(&axes, &embs);
    codes[(4 + axes.out) * 7..][..4].copy_from_slice(&f32::NAN.to_le_bytes());
    write_codes(&dir.path().join(CODES_FILE), &axes, &codes).unwrap();
    assert!(err(dir.path(), 300).contains("record 7"));
    // Axes of an odd byte width, and axes without codes.
    column::write(&dir.path().join(FILE), NAME, 3, &[0; 9]).unwrap();
    assert!(err(dir.path(), 300).contains("width 3"));
    write(&dir.path().join(FILE), &axes).unwrap();
    std::fs::remove_file(dir.path().join(CODES_FILE)).unwrap();
    assert!(err(dir.path(), 300).contains("codes.col"));
    // Not a column at all.
    std::fs::write(dir.path().join(FILE), b"short").unwrap();
    assert!(Projection::open(dir.path(), 300).is_err());
}

#[test]
fn a_model_up_to_512_wide_keeps_every_axis_so_codes_keep_dot_products() {
    // SSCD's width: the projection is a rotation, and int8 rounding the
    // codes' only loss; a wider model keeps DIM.
    assert_eq!(out_dim(512, 1_000_000), 512);
    assert_eq!(out_dim(1280, 1_000_000), DIM);
    assert_eq!(out_dim(512, 100), 100);
    // Rows with as much variance on every value (no leading axes to keep).
    let mut s = 5u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let embs: Vec<Embedding> = (0..1200)
        .map(|_| {
            let v: Vec<f32> = (0..512).map(|_| rnd()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            Embedding::from_f32(&v.iter().map(|x| x / norm).collect::<Vec<_>>())
        })
        .collect();
    let axes = fit(&embs).unwrap();
    assert_eq!((axes.inp, axes.out), (512, 512));
    let codes = encode_all(&axes, &embs);
    let q: Vec<f32> = {
        let e = &embs[7];
        (0..512).map(|d| f16_to_f32(e.0[d])).collect()
    };
    let qp = axes.project(&q);
    // Every row's code similarity to a query within int8 rounding of the
    // exact one (256 of these rows' 512 axes lose about half of each dot
    // product).
    for r in (0..embs.len()).step_by(37) {
        let approx = dot_query(&qp, code(&codes, &axes, r));
        let exact = similarity(&q, &embs[r]);
        assert!(
            (approx - exact).abs() < 0.02,
            "row {r}: {approx} against {exact}"
        );
    }
}

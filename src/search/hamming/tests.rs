//! The scan kernels against the definition (every comparison, lexicographic
//! min), `search` against a sort of every live row, and the top-k list.

use super::*;

fn rand_hash(seed: &mut u64) -> Hash256 {
    let mut w = [0u64; 4];
    for x in &mut w {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *x = *seed;
    }
    Hash256 { words: w }
}

#[test]
fn min_distance_matches_naive_and_picks_orientation() {
    let mut s = 0x9E3779B97F4A7C15;
    let db: Vec<Hash256> = (0..1000).map(|_| rand_hash(&mut s)).collect();
    let mut q = [Hash256::default(); 8];
    for v in &mut q {
        *v = rand_hash(&mut s);
    }
    q[5] = db[123];
    let mut dist = vec![0u16; db.len()];
    let mut orient = vec![0u8; db.len()];
    let mut trim = db.clone();
    trim[7] = q[2];
    min_distances(&db, &trim, &q, &mut dist, &mut orient);
    assert_eq!((dist[7], orient[7]), (0, 2 | CANDIDATE_TRIMMED));
    for (i, h) in db.iter().enumerate().filter(|(i, _)| *i != 7) {
        let naive = q.iter().map(|v| v.hamming(h)).min().unwrap();
        assert_eq!(dist[i] as u32, naive);
    }
    assert_eq!((dist[123], orient[123]), (0, 5));
}

/// (distance, code) by the definition: every comparison, lexicographic min.
fn naive(db: &[Hash256], trim: &[Hash256], q: &[Hash256], base: usize) -> Vec<(u16, u8)> {
    (0..db.len())
        .map(|i| {
            let mut c: Vec<(u16, u8)> = q
                .iter()
                .enumerate()
                .map(|(v, h)| (h.hamming(&db[i]) as u16, v as u8))
                .collect();
            if trim[base + i] != db[i] {
                c.extend(q.iter().enumerate().map(|(v, h)| {
                    (
                        h.hamming(&trim[base + i]) as u16,
                        CANDIDATE_TRIMMED | v as u8,
                    )
                }));
            }
            c.into_iter().min().unwrap_or((u16::MAX, 0))
        })
        .collect()
}

#[test]
fn every_kernel_matches_naive_with_ties_and_trimmed_rows() {
    let mut s = 0x2545F4914F6CDD1D;
    let flip = |h: Hash256, bits: u64, s: &mut u64| {
        let mut h = h;
        for _ in 0..bits {
            let r = rand_hash(s).words[0];
            h.words[(r % 4) as usize] ^= 1 << ((r >> 8) % 64);
        }
        h
    };
    let kernels: Vec<Kernel> = [Kernel::Generic, Kernel::Avx2, Kernel::Avx512, Kernel::Auto]
        .into_iter()
        .filter(|k| k.supported())
        .collect();
    for round in 0..24 {
        let nq = [8, 16, 1, 3, 9, 13, 0, 8][round % 8];
        let mut q: Vec<Hash256> = (0..nq).map(|_| rand_hash(&mut s)).collect();
        // Duplicated variants (a symmetric image) tie on every row.
        if nq >= 8 {
            q[6] = q[1];
            q[7] = q[3];
        }
        if nq == 16 {
            q[12] = q[1];
        }
        let n = 1000 + 37 * round;
        let (db, trim): (Vec<Hash256>, Vec<Hash256>) = (0..n)
            .map(|i| {
                let near = |s: &mut u64| match (q.len(), i % 3) {
                    (0, _) | (_, 0) => rand_hash(s),
                    (l, _) => {
                        let src = q[(rand_hash(s).words[0] % l as u64) as usize];
                        let bits = rand_hash(s).words[0] % 12;
                        flip(src, bits, s)
                    }
                };
                let h = near(&mut s);
                let t = match i % 4 {
                    0 => h,
                    // A trimmed view at the same distance as the upright.
                    1 => Hash256 {
                        words: [h.words[1], h.words[0], h.words[3], h.words[2]],
                    },
                    _ => near(&mut s),
                };
                (h, t)
            })
            .unzip();
        // A slice inside the column, as a search chunk sees it.
        let base = round % 5;
        let part = &db[base..n - round % 3];
        let trimmed: Vec<u32> = (base..base + part.len())
            .filter(|&r| trim[r] != db[r])
            .map(|r| r as u32)
            .collect();
        let want = naive(part, &trim, &q, base);
        for &k in &kernels {
            let mut keys = vec![0u16; part.len()];
            min_keys_rows(k, part, &trim, &trimmed, base, &q, &mut keys);
            let got: Vec<(u16, u8)> = keys
                .iter()
                .map(|&k| match k {
                    KEY_NONE => (u16::MAX, 0),
                    _ => (k >> CODE_BITS, (k & 31) as u8),
                })
                .collect();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g, w, "kernel {} round {round} row {i}", k.name());
            }
        }
    }
}

/// `search` (chunks, trimmed lookup, top-k skipping, segments, dead
/// rows) against a sort of every live row's naive result.
#[test]
fn search_matches_naive_topk() {
    use crate::descriptors::Descriptors;
    use crate::index::{flags, IndexWriter};
    let mut s = 0x5DEECE66D;
    let q = QueryDescriptors {
        pdq: std::array::from_fn(|_| rand_hash(&mut s)),
        quality: 100,
        phash: 0,
        pdq_trim: Some(std::array::from_fn(|_| rand_hash(&mut s))),
        keypoints: vec![],
        embedding: None,
        regions: vec![],
    };
    let hashes = q.hashes();
    let dir = tempfile::tempdir().unwrap();
    let mut w = IndexWriter::open(dir.path()).unwrap();
    // Two segments, neither a multiple of the chunk size.
    let mut db = Vec::new();
    for (seg, n) in [(0u32, 2 * CHUNK + 1234), (1, 3000)] {
        w.flush_records = usize::MAX;
        for i in 0..n {
            // Near a query hash (by few bits: many equal distances) or random.
            let near = |s: &mut u64| {
                let r = rand_hash(s).words[0];
                let mut h = hashes[(r % 16) as usize];
                for b in 0..(r >> 8) % 40 {
                    h.words[(b % 4) as usize] ^= 1 << ((r >> (16 + b % 40)) % 64);
                }
                h
            };
            let pdq = if i % 3 == 0 {
                near(&mut s)
            } else {
                rand_hash(&mut s)
            };
            let pdq_trim = match i % 4 {
                0 => pdq,
                _ => near(&mut s),
            };
            let d = Descriptors {
                pdq,
                quality: 100,
                phash: 0,
                pdq_trim,
                keypoints: Default::default(),
                embedding: Default::default(),
            };
            let dead = i % 7 == 3;
            let flag = if dead { flags::FAILED } else { 0 };
            w.add(format!("{seg}/{i}").as_bytes(), 1, 1, i as u128, flag, &d);
            db.push((RecordRef { seg, row: i as u32 }, pdq, pdq_trim, !dead));
        }
        w.commit().unwrap();
    }
    drop(w);
    let index = Index::open(dir.path()).unwrap();
    let cases = [
        (10, 256, true),
        (500, 256, false),
        (10_000, 90, true),
        (10_000, 31, false),
        (10_000, 12, true),
        (3, 0, false),
    ];
    for (top_k, max_distance, parallel) in cases {
        let mut want: Vec<(u32, RecordRef, u8)> = db
            .iter()
            .filter(|r| r.3)
            .map(|&(rec, h, t, _)| {
                let (d, c) = naive(&[h], &[t], &hashes, 0)[0];
                (d as u32, rec, c)
            })
            .filter(|r| r.0 <= max_distance)
            .collect();
        want.sort_by_key(|r| (r.0, r.1));
        want.truncate(top_k);
        assert!(!want.is_empty());
        let kernels = [Kernel::Auto, Kernel::Generic, Kernel::Avx2, Kernel::Avx512];
        for (kernel, pdq_index) in kernels.into_iter().flat_map(|k| [(k, false), (k, true)]) {
            let p = SearchParams {
                top_k,
                max_distance,
                parallel,
                kernel,
                pdq_index,
                pdq_table_min_rows: 0,
            };
            let got: Vec<(u32, RecordRef, u8)> = search(&index, &q, &p)
                .iter()
                .map(|m| (m.pdq_distance, m.rec, m.variant))
                .collect();
            let k = kernel.name();
            assert_eq!(
                got, want,
                "top_k {top_k} max_distance {max_distance} {k} table {pdq_index}"
            );
        }
    }
}

#[test]
fn topk_keeps_smallest_in_order() {
    let mut t = TopK::new(3);
    for (i, d) in [50, 10, 30, 10, 5, 70].iter().enumerate() {
        t.offer(
            *d,
            RecordRef {
                seg: 0,
                row: i as u32,
            },
            0,
        );
    }
    let got: Vec<(u32, u32)> = t
        .into_matches()
        .iter()
        .map(|m| (m.pdq_distance, m.rec.row))
        .collect();
    assert_eq!(got, vec![(5, 4), (10, 1), (10, 3)]);
}

#[test]
fn kernel_names_round_trip_and_resolve_to_supported() {
    for k in [Kernel::Auto, Kernel::Generic, Kernel::Avx2, Kernel::Avx512] {
        assert_eq!(Kernel::from_name(k.name()), Some(k));
        let r = k.resolve();
        assert!(r != Kernel::Auto && r.supported());
        assert!(!k.supported() || k == Kernel::Auto || r == k);
    }
    assert_eq!(Kernel::from_name("sse"), None);
    assert_eq!(SearchParams::default().kernel, Kernel::Auto);
}

/// Flips `d` distinct bits of `h`, chosen from `seed`.
fn flip_bits(h: &Hash256, d: u32, seed: &mut u64) -> Hash256 {
    let mut out = *h;
    let mut flipped = std::collections::HashSet::new();
    while (flipped.len() as u32) < d {
        let b = (rand_hash(seed).words[0] % 256) as usize;
        if flipped.insert(b) {
            out.words[b / 64] ^= 1 << (b % 64);
        }
    }
    out
}

/// `h` with the top `radius + 1` bits of every block of `layout` flipped,
/// but only the top `radius` of block `j`: distance 31, within a probe's
/// reach in block `j` only (the top bits are the bucket key's).
fn at_the_probes_edge(h: &Hash256, layout: &crate::index::mih::Layout, j: usize) -> Hash256 {
    let mut out = *h;
    for (b, &(start, width, radius)) in layout.blocks.iter().enumerate() {
        let n = radius + (b != j) as u32;
        for bit in start + width - n..start + width {
            out.words[bit as usize / 64] ^= 1 << (bit % 64);
        }
    }
    out
}

#[test]
fn pdq_table_gives_the_scans_answers_on_planted_near_copies() {
    use crate::descriptors::Descriptors;
    use crate::index::{flags, IndexWriter};
    let mut s = 0x0123_4567_89AB_CDEF;
    let queries: Vec<QueryDescriptors> = (0..6)
        .map(|i| QueryDescriptors {
            pdq: std::array::from_fn(|_| rand_hash(&mut s)),
            quality: 100,
            phash: 0,
            pdq_trim: (i % 2 == 1).then(|| std::array::from_fn(|_| rand_hash(&mut s))),
            keypoints: vec![],
            embedding: None,
            regions: vec![],
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut w = IndexWriter::open(dir.path()).unwrap();
    w.flush_records = usize::MAX;
    let mut row = 0u64;
    let mut add = |w: &mut IndexWriter, pdq: Hash256, pdq_trim: Hash256, flag: u32| {
        let d = Descriptors {
            pdq,
            quality: 100,
            phash: 0,
            pdq_trim,
            keypoints: Default::default(),
            embedding: Default::default(),
        };
        w.add(format!("{row}").as_bytes(), 1, 1, row as u128, flag, &d);
        row += 1;
    };
    for seg in 0..3 {
        for i in 0..[20_000, 700, 3][seg] {
            let r = rand_hash(&mut s);
            add(&mut w, r, r, 0);
            if i % 10 == 0 {
                // A near copy of a query hash, at every distance 0..=40,
                // upright or only in the trimmed view; some removed or failed.
                let pick = rand_hash(&mut s).words;
                let q = &queries[pick[0] as usize % queries.len()];
                let hs = q.hashes();
                let h = hs[pick[1] as usize % hs.len()];
                let near = flip_bits(&h, (pick[2] % 41) as u32, &mut s);
                let flag = [0, 0, 0, flags::TOMBSTONE, flags::FAILED][pick[3] as usize % 5];
                match i / 10 % 3 {
                    0 => add(&mut w, near, near, flag),
                    1 => add(&mut w, rand_hash(&mut s), near, flag),
                    _ => add(&mut w, near, rand_hash(&mut s), flag),
                }
                // Copies at distance 31 that only the widest probe of one
                // block can find, in either layout.
                let (layout, j) = match pick[3] % 2 {
                    0 => (crate::index::mih::CURRENT, pick[2] as usize % 11),
                    _ => (&crate::index::mih::SIXTEEN, pick[2] as usize % 16),
                };
                let edge = at_the_probes_edge(&h, layout, j);
                assert_eq!(edge.hamming(&h), 31);
                add(&mut w, edge, edge, 0);
            }
        }
        w.commit().unwrap();
    }
    drop(w);
    // The current layout as written, then each segment's table rewritten
    // in the earlier 16-block layout (an index from an earlier version).
    let index = Index::open(dir.path()).unwrap();
    assert!(index.segments().iter().all(|g| g
        .mih()
        .is_some_and(|m| m.layout == crate::index::mih::CURRENT)));
    assert_table_equals_scan(&index, &queries);
    for g in index.segments() {
        let seg_dir = g.dir(dir.path());
        let m = &crate::index::mih::SIXTEEN;
        crate::index::mih::write(&seg_dir, m, g.files(), g.pdq(), g.pdq_trim()).unwrap();
        std::fs::remove_file(seg_dir.join(crate::index::mih::CURRENT.file)).unwrap();
    }
    drop(index);
    let index = Index::open(dir.path()).unwrap();
    assert!(index.segments().iter().all(|g| g
        .mih()
        .is_some_and(|m| m.layout == &crate::index::mih::SIXTEEN)));
    assert_table_equals_scan(&index, &queries);
    drop(index);
    // `compact` rewrites a lone segment's table of an earlier layout.
    let compact = || {
        IndexWriter::open(dir.path())
            .unwrap()
            .compact(None)
            .unwrap()
    };
    compact();
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.segments().len(), 1);
    let g = &index.segments()[0];
    let seg_dir = g.dir(dir.path());
    let m = &crate::index::mih::SIXTEEN;
    crate::index::mih::write(&seg_dir, m, g.files(), g.pdq(), g.pdq_trim()).unwrap();
    std::fs::remove_file(seg_dir.join(crate::index::mih::CURRENT.file)).unwrap();
    drop(index);
    compact();
    let index = Index::open(dir.path()).unwrap();
    let layout = index.segments()[0].mih().map(|m| m.layout);
    assert_eq!(layout, Some(crate::index::mih::CURRENT));
    assert_table_equals_scan(&index, &queries);
}

/// Every query's table answers equal the scan's, for radius and top-k
/// queries; the planted copies are found.
fn assert_table_equals_scan(index: &Index, queries: &[QueryDescriptors]) {
    for q in queries {
        for (top_k, max_distance) in [
            (100_000, 31),
            (100_000, 17),
            (5, 0),
            (10, 256),
            (50, 256),
            (3, 31),
        ] {
            let run = |pdq_index| {
                let p = SearchParams {
                    top_k,
                    max_distance,
                    pdq_index,
                    pdq_table_min_rows: 0,
                    ..SearchParams::default()
                };
                search(index, q, &p)
            };
            let (scan, table) = (run(false), run(true));
            assert_eq!(table, scan, "top_k {top_k} max_distance {max_distance}");
            if max_distance == 31 && top_k > 10 {
                assert!(scan.len() > 20, "planted copies are found");
            }
        }
    }
}

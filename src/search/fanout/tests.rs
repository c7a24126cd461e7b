//! The combine logic on crafted stage-1 answers whose global ranking
//! differs from every part's own.

use super::*;
use crate::descriptors::QueryDescriptors;
use crate::search::fusion::Planned;

fn req(top_k: usize) -> Request {
    Request {
        settings: PartSettings {
            decode: Some("fast:512".into()),
            embedding: None,
            keypoints: true,
        },
        top_k,
        verify: true,
        embed: false,
        total_records: None,
        device: "test".into(),
        queries: vec![Query {
            name: "q".into(),
            content_hash: 0,
            region: None,
            q: QueryDescriptors {
                pdq: [Hash256::default(); 8],
                quality: 100,
                phash: 0,
                pdq_trim: None,
                keypoints: vec![],
                embedding: None,
                regions: vec![],
            },
        }],
        skipped: vec![],
    }
}

fn r(seg: u32, row: u32) -> RecordRef {
    RecordRef { seg, row }
}

fn m(rec: RecordRef, d: u32) -> Match {
    Match {
        rec,
        pdq_distance: d,
        variant: 0,
        phash_distance: 0,
    }
}

fn part(req: &Request, segments: u32, live: u64, f: First) -> Stage1 {
    Stage1 {
        request: req.id(),
        settings: req.settings.clone(),
        fingerprint: segments as u64,
        segments,
        live,
        scanned: true,
        has_keypoints: true,
        queries: vec![f],
    }
}

/// Each part's share of the plan: (record, from the scan, verified).
fn shares(p: &[Stage2Plan]) -> Vec<Vec<(RecordRef, bool, bool)>> {
    p.iter()
        .map(|s| {
            let mut v: Vec<_> = s.queries[0]
                .iter()
                .map(|c: &Planned| (c.rec, c.pdq.is_some(), c.verify))
                .collect();
            v.sort();
            v
        })
        .collect()
}

#[test]
fn combine1_ranks_globally() {
    let q = req(3);
    // Part 0 (2 segments): PDQ 10..17; its 8th..: not in the global top 8.
    let p0 = First {
        pdq: (0..8).map(|i| m(r(i % 2, i), 10 + i)).collect(),
        shortlist: vec![(40, r(0, 20)), (6, r(1, 21))],
        nearest: vec![],
    };
    // Part 1 (1 segment, numbered 2): PDQ 5, 6, 7 and a tie at 13 with
    // part 0's (1, 3), which the earlier record wins.
    let p1 = First {
        pdq: vec![m(r(0, 0), 5), m(r(0, 1), 6), m(r(0, 2), 7), m(r(0, 3), 13)],
        shortlist: (0..8).map(|i| (9, r(0, 30 + i))).collect(),
        nearest: vec![],
    };
    // Part 2 (after an empty part): PDQ 0, then far; shortlist ties at 9
    // with part 1's, which come first (earlier segments).
    let p2 = First {
        pdq: vec![m(r(0, 0), 0), m(r(0, 1), 30)],
        shortlist: vec![(9, r(0, 40)), (5, r(0, 41))],
        nearest: vec![],
    };
    let empty = First::default();
    let s1 = vec![
        part(&q, 2, 30, p0),
        part(&q, 1, 10, p1),
        part(&q, 0, 0, empty),
        part(&q, 1, 5, p2),
    ];
    let (plan, p) = combine1(&q, &s1).unwrap();
    assert!(plan.keypoint_shortlist);
    let got = shares(&p);
    // Global PDQ top 8: p2 0, p1 5 6 7, p0 10 11 12 13 (p0's (1,3) beats
    // p1's 13): all verified; the shortlist's top 8: p0's 40, then p1's
    // seven first 9s (p2's 9 is later); p0's 6 is off the list.
    let mut want0: Vec<(RecordRef, bool, bool)> =
        (0..4).map(|i| (r(i % 2, i), true, true)).collect();
    want0.push((r(0, 20), false, true));
    want0.sort();
    assert_eq!(got[0], want0);
    let mut want1: Vec<(RecordRef, bool, bool)> = (0..3).map(|i| (r(0, i), true, true)).collect();
    want1.extend((0..7).map(|i| (r(0, 30 + i), false, true)));
    want1.sort();
    assert_eq!(got[1], want1);
    assert!(got[2].is_empty());
    assert_eq!(got[3], vec![(r(0, 0), true, true)]);

    // Past the scan limit in all, the parts' shortlists came from their
    // keypoint tables: combined alike.
    let mut big = s1.clone();
    big[0].live = 20_000;
    let (plan, p) = combine1(&q, &big).unwrap();
    assert!(plan.keypoint_shortlist);
    assert_eq!(shares(&p), got);

    // k = 10: the PDQ top 10, the last two not verified.
    let q10 = req(10);
    let s10: Vec<Stage1> = s1
        .iter()
        .map(|s| Stage1 {
            request: q10.id(),
            ..s.clone()
        })
        .collect();
    let (_, p) = combine1(&q10, &s10).unwrap();
    let pdq: Vec<(RecordRef, bool)> = shares(&p)[0]
        .iter()
        .filter(|c| c.1)
        .map(|c| (c.0, c.2))
        .collect();
    assert_eq!(pdq.len(), 5);
    assert!(pdq.contains(&(r(0, 4), false)));
    assert!(pdq.contains(&(r(1, 3), true)));
}

#[test]
fn parts_that_store_no_keypoints_report_no_scan_but_still_verify() {
    let q = req(3);
    let first = || First {
        pdq: vec![m(r(0, 0), 10)],
        shortlist: vec![],
        nearest: vec![],
    };
    // Two compact parts: keypoints to verify with, none stored to scan.
    let compact = |segments, live| Stage1 {
        scanned: false,
        ..part(&q, segments, live, first())
    };
    let (plan, p) = combine1(&q, &[compact(1, 10), compact(1, 5)]).unwrap();
    assert!(
        !plan.keypoint_shortlist,
        "no part scanned: the report must not say so"
    );
    assert!(
        shares(&p).iter().flatten().all(|c| c.2),
        "candidates still verified"
    );
    // A full part beside a compact one: the scan ran (on the full part).
    let full = part(&q, 1, 5, first());
    let (plan, _) = combine1(&q, &[compact(1, 10), full]).unwrap();
    assert!(plan.keypoint_shortlist);
}

#[test]
fn messages_round_trip_and_refuse_others() {
    let q = req(3);
    let b = q.to_bytes();
    assert_eq!(Request::from_bytes(&b).unwrap().to_bytes(), b);
    let s = part(&q, 2, 7, First::default());
    assert_eq!(Stage1::from_bytes(&s.to_bytes()).unwrap(), s);
    let e = Plan::from_bytes(&s.to_bytes()).unwrap_err();
    assert_eq!(e.0, "not a lookalike combine-1 state message");
    let mut other = s.clone();
    other.request ^= 1;
    let e = combine1(&q, &[other]).unwrap_err();
    assert!(e.0.contains("another request"), "{e}");
    let mut off = s.to_bytes();
    off[4] = 9;
    assert!(Stage1::from_bytes(&off)
        .unwrap_err()
        .0
        .contains("version 9"));
}

#!/usr/bin/env python3
"""Fit the null tails behind lookalike's calibrated scores (src/search/calibrate.rs).

Index a folder of distinct images, check the folder against its own index,
and every (image, other image) row is a pair of unrelated images:

    lookalike index DIR -i /tmp/null
    lookalike check DIR -i /tmp/null --csv --top-k 30 > null.csv
    python3 scripts/calibrate.py null.csv --images N

Pairs that are in fact related (PDQ <= 31 or >= 20 verified inliers: the same
picture twice in the folder) are dropped. The script prints the empirical
tails log10 P(min PDQ distance <= d) and log10 P(inliers >= n) over all
N*(N-1) ordered pairs (rows beyond the top-k and unverified pairs count as
non-hits, so the tails are exact where they are printed) and a straight-line
fit of each tail in its sparse region, the constants calibrate.rs uses. With
an index that has embeddings, the cosine-similarity tail is fitted too.
"""
import argparse
import csv
import math
import os


def fit(points):
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    b = sxy / sxx
    return my - b * mx, b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--images", type=int, required=True, help="images in the folder")
    ap.add_argument("--pdq-range", default="60,96", help="distances to fit over")
    ap.add_argument("--inlier-range", default="6,12", help="inlier counts to fit over")
    ap.add_argument("--similarity-range", default="0.6,0.85", help="cosines to fit over")
    a = ap.parse_args()
    pairs = a.images * (a.images - 1)
    pdq, inl, sims, seen, related = {}, {}, [], set(), 0
    for r in csv.DictReader(open(a.csv)):
        q, c = os.path.basename(r["query"]), os.path.basename(r["candidate"])
        if q == c or (q, c) in seen:
            continue
        seen.add((q, c))
        d = int(r["pdq_distance"])
        n = int(r["inliers"]) if r["inliers"] else 0
        if d <= 31 or n >= 20:
            related += 1
            continue
        pdq[d] = pdq.get(d, 0) + 1
        inl[n] = inl.get(n, 0) + 1
        if r.get("similarity"):
            sims.append(float(r["similarity"]))
    print(f"{pairs} ordered pairs, {related} related rows dropped")
    lo, hi = map(int, a.pdq_range.split(","))
    cum, pts = 0, []
    print("PDQ  d  pairs<=d  log10 p")
    for d in range(0, 257):
        cum += pdq.get(d, 0)
        if cum:
            lp = math.log10(cum / pairs)
            if lo <= d <= hi:
                pts.append((d, lp))
            if d % 4 == 0 and d <= hi + 8:
                print(f"    {d:3} {cum:8} {lp:8.2f}")
    pa, pb = fit(pts)
    print(f"fit: log10 P(d' <= d) = {pa:.3f} + {pb:.4f} * d   (PDQ_A, PDQ_B)")
    lo, hi = map(int, a.inlier_range.split(","))
    pts = []
    print("inliers  n  pairs>=n  log10 p")
    for n in range(1, max(inl) + 1):
        ge = sum(v for k, v in inl.items() if k >= n)
        if ge:
            lp = math.log10(ge / pairs)
            print(f"        {n:3} {ge:8} {lp:8.2f}")
            if lo <= n <= hi:
                pts.append((n, lp))
    ka, kb = fit(pts)
    print(f"fit: log10 P(n' >= n) = {ka:.3f} + {kb:.4f} * n   (KP_A, KP_B)")
    if sims:
        lo, hi = map(float, a.similarity_range.split(","))
        pts = []
        print("embedding  c  pairs>=c  log10 p")
        for i in range(20, 100):
            c = i / 100
            ge = sum(1 for s in sims if s >= c)
            if ge:
                lp = math.log10(ge / pairs)
                if i % 5 == 0:
                    print(f"        {c:.2f} {ge:8} {lp:8.2f}")
                if lo <= c <= hi:
                    pts.append((c, lp))
        ea, eb = fit(pts)
        print(f"fit: log10 P(c' >= c) = {ea:.3f} + {eb:.4f} * c   (EMB_A, EMB_B)")


if __name__ == "__main__":
    main()

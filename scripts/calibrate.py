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
an index that has embeddings, the cosine-similarity tail is fitted too, and
with --joint the joint tail of keypoints and embedding: T = log10 p_kp +
log10 p_emb under calibrate.rs's current lines (--embedding-tail a,b[,floor]
names the model's: Lite0's by default, "-0.883,-4.170,0.30" for SSCD), its
empirical log10 P(T <= t) and a line over --joint-range (JOINT_A, JOINT_B).
Rows with a verdict other than "none" are related and dropped there too.
"""
import argparse
import csv
import math
import os


# calibrate.rs's keypoint line, for --joint.
KP_A, KP_B = -1.787, -0.2649


def fit(points):
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    b = sxy / sxx
    return my - b * mx, b


def read_run(path, tail, joint_too, pdq, inl, sims, joint):
    """Adds one `check --csv` run's unrelated pairs to the tallies; returns
    how many related rows it dropped."""
    tail = [float(x) for x in tail.split(",")]
    floor = tail[2] if len(tail) > 2 else -2.0
    seen, related = set(), 0
    for r in csv.DictReader(open(path)):
        q, c = os.path.basename(r["query"]), os.path.basename(r["candidate"])
        if q == c or (q, c) in seen:
            continue
        seen.add((q, c))
        d = int(r["pdq_distance"])
        n = int(r["inliers"]) if r["inliers"] else 0
        if d <= 31 or n >= 20 or r.get("verdict", "none") != "none":
            related += 1
            continue
        if joint_too:
            kp = min(0.0, KP_A + KP_B * n) if r["inliers"] else 0.0
            c = float(r["similarity"]) if r.get("similarity") else None
            emb = min(0.0, tail[0] + tail[1] * c) if c is not None and c >= floor else 0.0
            joint.append(kp + emb)
        pdq[d] = pdq.get(d, 0) + 1
        inl[n] = inl.get(n, 0) + 1
        if r.get("similarity"):
            sims.append(float(r["similarity"]))
    return related


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", nargs="+", help="one or more runs over the same N images (pooled)")
    ap.add_argument("--images", type=int, required=True, help="images in the folder")
    ap.add_argument("--pdq-range", default="60,96", help="distances to fit over")
    ap.add_argument("--inlier-range", default="6,12", help="inlier counts to fit over")
    ap.add_argument("--similarity-range", default="0.6,0.85", help="cosines to fit over")
    ap.add_argument("--joint", action="store_true", help="fit the joint tail too")
    ap.add_argument(
        "--embedding-tail",
        action="append",
        help="a,b[,floor] of each run's model, in order (default Lite0's: 4.076,-9.6867)",
    )
    ap.add_argument("--joint-range", default="-9,-5.5", help="T values to fit over")
    a = ap.parse_args()
    pairs = a.images * (a.images - 1) * len(a.csv)
    pdq, inl, sims, related, joint = {}, {}, [], 0, []
    tails = a.embedding_tail or ["4.076,-9.6867"] * len(a.csv)
    if len(tails) != len(a.csv):
        ap.error("give one --embedding-tail per CSV, or none")
    for path, t in zip(a.csv, tails):
        related += read_run(path, t, a.joint, pdq, inl, sims, joint)
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
    if a.joint:
        lo, hi = map(float, a.joint_range.split(","))
        pts = []
        print("joint  t  pairs<=t  log10 p")
        for i in range(8, 25):
            t = -i / 2
            n = sum(1 for x in joint if x <= t)
            if n:
                lp = math.log10(n / pairs)
                print(f"     {t:5.1f} {n:8} {lp:8.2f}")
                if lo <= t <= hi:
                    pts.append((t, lp))
        ja, jb = fit(pts)
        print(f"fit: log10 P(T <= t) = {ja:.3f} + {jb:.4f} * t   (JOINT_A, JOINT_B)")


if __name__ == "__main__":
    main()

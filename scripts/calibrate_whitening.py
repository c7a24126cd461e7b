#!/usr/bin/env python3
"""Fit the null tail of whitened embedding cosines (src/search/calibrate.rs,
LITE0_WHITENED_TAIL; src/index/whitening.rs is the whitening).

A query is never one of the indexed rows a segment's whitening was fitted
on, so the tail is measured the same way: the folder's embeddings are split
in two halves at random, a whitening is fitted on one (the "index"), and
every row of the other (the "queries") is compared with every row of it.
Pairs that are in fact related (the folder's near-duplicates and derivative
look-alikes) are dropped with the CSV of `lookalike check` against the
folder's own index: any row with a verdict other than "none".

    lookalike hash DIR --json --fast > emb.jsonl
    lookalike index DIR -i /tmp/null
    lookalike check DIR -i /tmp/null --csv --top-k 10 > related.csv
    python3 scripts/calibrate_whitening.py emb.jsonl --related related.csv

Needs numpy. Prints the whitened cosine at tail probabilities 10^-2.5 ..
10^-4.5 and the straight-line fit log10 P(cos >= c) = a + b*c over them.
"""
import argparse
import csv
import json
import os

import numpy as np

AXES, RIDGE = 256, 1e-2  # whitening.rs


def whitening(rows):
    mu = rows.mean(0)
    x = rows - mu
    w, v = np.linalg.eigh(x.T @ x / len(x))
    o = np.argsort(-w)[:AXES]
    p = v[:, o] / np.sqrt(np.maximum(w[o], 0) + RIDGE * w[o[0]])
    return lambda z: unit((z - mu) @ p)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl", help="`lookalike hash --json` of the folder")
    ap.add_argument("--related", help="`lookalike check --csv` of the folder against itself")
    ap.add_argument("--splits", type=int, default=6)
    a = ap.parse_args()
    names, emb = [], []
    for line in open(a.jsonl):
        d = json.loads(line)
        if d.get("embedding"):
            names.append(os.path.basename(d["image"]))
            emb.append(d["embedding"])
    emb = np.array(emb, dtype=np.float64)
    at = {n: i for i, n in enumerate(names)}
    related = set()
    if a.related:
        for r in csv.DictReader(open(a.related)):
            q, c = os.path.basename(r["query"]), os.path.basename(r["candidate"])
            if r["verdict"] != "none" and q in at and c in at:
                related |= {(at[q], at[c]), (at[c], at[q])}
    rng = np.random.default_rng(0)
    found = []
    for _ in range(a.splits):
        perm = rng.permutation(len(emb))
        idx, qs = perm[: len(emb) // 2], perm[len(emb) // 2 :]
        f = whitening(emb[idx])
        s = f(emb[qs]) @ f(emb[idx]).T
        for qi, q in enumerate(qs):
            for ci, c in enumerate(idx):
                if (q, c) in related:
                    s[qi, ci] = -2
        found.append(s.ravel())
    c = np.sort(np.concatenate(found))[::-1]
    lps = [-2.5, -3.0, -3.5, -4.0, -4.5]
    xs = [c[int(len(c) * 10**lp)] for lp in lps]
    for x, lp in zip(xs, lps):
        print(f"log10 P = {lp:5.1f} at whitened cosine {x:.3f}")
    b, a0 = np.polyfit(xs, lps, 1)
    print(f"{len(c)} pairs; fit log10 P(cos >= c) = {a0:.3f} + {b:.3f} c; largest {c[0]:.3f}")


if __name__ == "__main__":
    main()

"""Sharded build on a local Ray cluster against one process, same shards.

    python benches/ray_build.py SHARD.tar... [--hash-only] [--workers N]

Runs, in this order, on the machine's cores:
1. `lookalike.build(one, shards)`: one process, every core (what
   `lookalike index` does);
2. `lookalike.ray.build_index(shards, out, num_workers=N)` on a local Ray
   cluster of N one-CPU workers (Ray start-up, one task per shard,
   the merge);
and prints images/s of both, their ratio, the merge's share, and what a
million images cost in core-hours at each rate (wall time x cores used,
so it is the price of renting the cores, idle ones included). Both must
give the same content digest; the script fails otherwise. Use the release
wheel for figures (`maturin build --release`); benches/README.md quotes them.
"""

import argparse
import os
import sys
import tempfile
import time

import lookalike


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shards", nargs="+")
    ap.add_argument("--hash-only", action="store_true")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    import ray

    import lookalike.ray as lray

    opts = {"hash_only": True} if args.hash_only else {}
    cores = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.monotonic()
        lookalike.build(os.path.join(tmp, "one"), args.shards, device="cpu", **opts)
        one_s = time.monotonic() - t
        ray.init(num_cpus=args.workers, log_to_driver=False)
        t = time.monotonic()
        r = lray.build_index(args.shards, os.path.join(tmp, "ray"), num_workers=args.workers, **opts)
        ray_s = time.monotonic() - t
        ray.shutdown()
        a = lookalike.Index(os.path.join(tmp, "one"))
        b = lookalike.Index(os.path.join(tmp, "ray"))
        if a.content_digest() != b.content_digest() or a.images != b.images:
            print("FAIL: the sharded build differs from the one-process build", file=sys.stderr)
            return 1
        n = a.images
        merge_s = r.get("seconds_merge", float("nan"))
        print(f"images {n} in {len(args.shards)} shards, {cores} cores, "
              f"{'hash-only' if args.hash_only else 'default mode'}")
        print(f"one process     {one_s:7.2f} s  {n / one_s:7.1f} images/s  "
              f"{one_s * cores / n * 1e6 / 3600:7.1f} core-hours per million")
        print(f"ray, {args.workers} workers  {ray_s:7.2f} s  {n / ray_s:7.1f} images/s  "
              f"{ray_s * args.workers / n * 1e6 / 3600:7.1f} core-hours per million "
              f"(merge {merge_s:.2f} s)")
        print(f"ratio ray/one   {one_s / ray_s:.2f}x the one-process rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())

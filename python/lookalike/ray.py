"""lookalike on a Ray cluster: sharded index builds and fan-out checks.

Needs the optional dependency ``ray`` (``pip install "lookalike[ray]"``)
on the driver and on every worker, and storage every node sees at the same
path (NFS, a mounted bucket) for the shards, the parts and the index::

    import ray, lookalike.ray
    ray.init(address="auto")
    lookalike.ray.build_index(sorted(glob.glob("/data/shards/*.tar")),
                              "/data/indexes/laion", num_workers=8, use_gpu=True)
    report = lookalike.ray.check(["/data/parts/p0", "/data/parts/p1"], ["out/"])

:func:`build_index`: one Ray task per tar shard (lookalike streams the tar
from shared storage itself, so shard bytes never pass through Ray's object
store, and memory stays bounded per task); each task runs :func:`lookalike.build` on its shard (the GPU engine when the task got
a GPU) into a fresh attempt folder ``OUT.parts/part-NNNNN.attempt-…`` and
renames it to ``OUT.parts/part-NNNNN`` when the build has committed. A task
whose worker dies is retried by Ray; its half-built attempt folder is never
merged (and is removed at the end), and a shard whose part is already there
is not built again, so every shard is recorded exactly once. The driver
then attaches the parts' segments, in shard order, into ``OUT`` with
:func:`lookalike.merge` (no image is described twice): the result equals
``lookalike index`` run over the same shards in one process.

:func:`check`: each index part is held by an actor; the driver describes
the query images once, sends the descriptors to every part, and combines
the parts' evidence in the stages of :func:`lookalike.check_parts` — the
report equals ``check`` on the parts merged into one index.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import lookalike

try:
    import ray
except ImportError as e:  # pragma: no cover - exercised only without ray
    raise ImportError(
        "lookalike.ray needs Ray: pip install ray (or 'lookalike[ray]')"
    ) from e

__all__ = ["build_index", "check", "PartSearcher", "part_name"]

PathLike = Union[str, os.PathLike]


def part_name(i: int) -> str:
    """The folder name of shard ``i``'s part inside ``OUT.parts``."""
    return f"part-{i:05d}"


def _build_shard(row: Dict[str, Any], parts_dir: str, options: Dict[str, Any],
                 use_gpu: bool, threads: int) -> Dict[str, Any]:
    """One task: index one shard into its own part, atomically."""
    # Each task gets `threads` cores; rayon would otherwise start a thread
    # per core of the node in every worker process.
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    i, shard = int(row["index"]), str(row["shard"])
    final = os.path.join(parts_dir, part_name(i))
    out = {"index": i, "shard": shard, "part": final, "error": "", "built": False,
           "seconds": 0.0, "node": socket.gethostname(), "images": 0, "skipped": 0}
    if os.path.isdir(final):
        return out  # an earlier attempt or run finished this shard
    attempt = f"{final}.attempt-{uuid.uuid4().hex[:12]}"
    # Who holds the attempt (diagnostics, and the test that kills a worker).
    with open(attempt + ".json", "w") as f:
        json.dump({"pid": os.getpid(), "node": socket.gethostname(), "shard": i}, f)
    start = time.monotonic()
    try:
        stats = lookalike.build(attempt, [shard], device="gpu" if use_gpu else "cpu",
                                allow_empty=True, **options)
    except Exception as e:  # a bad shard is reported, the run goes on
        shutil.rmtree(attempt, ignore_errors=True)
        os.remove(attempt + ".json")
        out["error"] = f"{shard}: {e}"
        return out
    try:
        os.rename(attempt, final)
        out["built"] = True
    except OSError:
        # Another attempt at this shard published first: keep one.
        shutil.rmtree(attempt, ignore_errors=True)
    os.remove(attempt + ".json")
    out["seconds"] = time.monotonic() - start
    out["images"] = int(stats.get("live_records", 0))
    out["skipped"] = len(stats.get("skipped", []))
    return out


# Ray retries a task whose worker process died (killed, out of memory,
# node lost) up to max_retries times, set per build.
_build_shard_task = ray.remote(_build_shard)


def build_index(
    shards: Sequence[PathLike],
    out: PathLike,
    *,
    num_workers: Optional[int] = None,
    use_gpu: bool = False,
    cpus_per_worker: int = 1,
    parts_dir: Optional[PathLike] = None,
    max_retries: int = 3,
    **options: Any,
) -> Dict[str, Any]:
    """Builds the index ``out`` from WebDataset tar ``shards`` on the Ray
    cluster ``ray.init`` connected to (a local one if none).

    Every path must be readable and writable at the same name on every
    node. ``num_workers``: shards described at once (default: as many as
    the cluster's CPUs or GPUs allow). ``use_gpu``: each task asks Ray for
    one GPU and describes on it. ``cpus_per_worker``: cores per task.
    ``parts_dir``: where the per-shard parts go (default ``OUT.parts``); they
    are kept, as the parts :func:`check` can fan out over, and a rerun after
    a failure builds only the shards whose part is missing. ``max_retries``:
    retries of a task whose worker died. ``options``: :func:`lookalike.build`'s
    (``hash_only``, ``keypoints``, ``exact``, ``thumb_side``, ...).

    Returns the merge report of :func:`lookalike.merge` plus ``shards``
    (per shard: part, node, seconds, images, skipped, error), ``failed``
    (shards that could not be indexed, with the reason; the others are
    merged), ``attempts_lost`` (attempt folders of workers that died,
    removed), ``seconds`` and ``seconds_merge``. ``out`` must not hold an index yet.
    """
    start = time.monotonic()
    shards = [os.path.abspath(os.fspath(s)) for s in shards]
    if not shards:
        raise ValueError("shards: no tar shard given")
    out = os.path.abspath(os.fspath(out))
    if os.path.exists(os.path.join(out, "MANIFEST.json")):
        raise lookalike.LookalikeError(
            f"{out}: an index is already there; build_index writes a new one "
            "(add parts to an existing index with lookalike.merge)")
    parts_dir = os.path.abspath(os.fspath(parts_dir)) if parts_dir else out + ".parts"
    os.makedirs(parts_dir, exist_ok=True)
    if not ray.is_initialized():
        ray.init()
    build_opts = {k: v for k, v in options.items() if v is not None}
    task = _build_shard_task.options(
        num_cpus=cpus_per_worker, num_gpus=1 if use_gpu else 0, max_retries=int(max_retries))
    if num_workers is None:
        total = ray.cluster_resources()
        have = total.get("GPU", 0) if use_gpu else total.get("CPU", 1) / cpus_per_worker
        num_workers = max(1, int(have))
    # At most num_workers tasks in flight: the cluster's queue stays short
    # and a million shards cost no million pending task specs.
    rows: List[Dict[str, Any]] = []
    pending: Dict[Any, int] = {}
    todo = list(enumerate(shards))
    todo.reverse()
    while todo or pending:
        while todo and len(pending) < num_workers:
            i, s = todo.pop()
            pending[task.remote({"index": i, "shard": s}, parts_dir, build_opts, use_gpu,
                                cpus_per_worker)] = i
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            i = pending.pop(ref)
            try:
                rows.append(ray.get(ref))
            except ray.exceptions.RayError as e:  # every attempt's worker died
                rows.append({"index": i, "shard": shards[i], "part": "", "built": False,
                             "seconds": 0.0, "node": "", "images": 0, "skipped": 0,
                             "error": f"{shards[i]}: {type(e).__name__} after "
                                      f"{max_retries + 1} attempts"})
    rows.sort(key=lambda r: r["index"])
    # Attempts whose worker died left a folder (and its .json) behind.
    lost = 0
    for name in sorted(os.listdir(parts_dir)):
        if ".attempt-" in name and not name.endswith(".json"):
            lost += 1
            shutil.rmtree(os.path.join(parts_dir, name), ignore_errors=True)
    for name in os.listdir(parts_dir):
        if ".attempt-" in name and name.endswith(".json"):
            os.remove(os.path.join(parts_dir, name))
    failed = [{"shard": r["shard"], "reason": r["error"]} for r in rows if r["error"]]
    parts = [r["part"] for r in rows if not r["error"]]
    missing = [p for p in parts if not os.path.isdir(p)]
    if missing:
        raise lookalike.LookalikeError(f"parts missing after the build: {missing}")
    t = time.monotonic()
    report = lookalike.merge(out, parts)
    report["seconds_merge"] = time.monotonic() - t
    report["shards"] = rows
    report["failed"] = failed
    report["attempts_lost"] = lost
    report["seconds"] = time.monotonic() - start
    return report


@ray.remote
class _PartActor:
    """Holds one index part open (its memory maps stay warm) and answers
    the stages of the fan-out check (see :func:`lookalike.check_parts`)."""

    def __init__(self, path: str, device: str) -> None:
        self.part = lookalike.Part(path, device=device)

    def about(self) -> Tuple[Any, int]:
        return self.part.settings, self.part.images

    def stage1(self, request: bytes) -> bytes:
        return self.part.stage1(request)

    def stage2(self, request: bytes, plan: bytes) -> bytes:
        return self.part.stage2(request, plan)

    def stage3(self, request: bytes, plan: bytes) -> bytes:
        return self.part.stage3(request, plan)


class PartSearcher:
    """Index parts held by Ray actors, one per part, ready for many checks.

    ``index_parts``: index folders built with the same settings and model
    and holding disjoint images (parts of :func:`build_index`, or
    ``lookalike merge`` of groups of them), at the same path on every node.
    ``num_cpus``: reserved per actor (0 by default: a part waits most of
    the time, and a check's stages are short; reserve cores when parts
    should not share a node's with other work). ``device``: where the
    driver describes the query images (``"cpu"``, ``"gpu"``, ``"auto"``);
    the parts only search. Actors are placed where Ray finds room
    (``actor_options``, e.g. ``{"resources": {"part_host": 1}}`` or a
    ``scheduling_strategy``, pins them). ``start_timeout_s``: how long the
    actors may take to start and open their parts (a cluster without room
    for them raises rather than waits forever).
    """

    def __init__(self, index_parts: Sequence[PathLike], *, num_cpus: float = 0,
                 device: str = "cpu", actor_options: Optional[Dict[str, Any]] = None,
                 start_timeout_s: float = 300) -> None:
        self.paths = [os.path.abspath(os.fspath(p)) for p in index_parts]
        if not self.paths:
            raise ValueError("index_parts: no index part given")
        if not ray.is_initialized():
            ray.init()
        self.device = device
        opts = {"num_cpus": num_cpus, **(actor_options or {})}
        self.actors = [_PartActor.options(**opts).remote(p, "cpu") for p in self.paths]
        try:
            about = ray.get([a.about.remote() for a in self.actors], timeout=start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise lookalike.LookalikeError(
                f"the {len(self.paths)} part actors did not start within {start_timeout_s} s: "
                "is there room on the cluster for them (num_cpus, actor_options)?") from None
        except ray.exceptions.RayActorError as e:
            self.close()
            raise lookalike.LookalikeError(f"a part could not be opened: {e}") from None
        self.settings = about[0][0]
        for path, (settings, _) in zip(self.paths, about):
            if settings != self.settings:
                self.close()
                raise lookalike.LookalikeError(
                    f"{path}: built with settings {settings}, {self.paths[0]} with "
                    f"{self.settings}: the parts of one check must share them")
        self.images = sum(n for _, n in about)

    def check(self, images: Any, k: int = 10, *, hash_only: bool = False, verify: bool = True,
              names: Optional[Sequence[str]] = None, skip_bad: bool = False,
              min_score: Optional[float] = None) -> Dict[str, Any]:
        """The report ``Index.check`` gives on the parts merged into one
        index (``index`` names the parts): the images are described once
        here, then every stage runs on all actors at once."""
        request = lookalike.describe(
            images, like=self.settings, k=k, hash_only=hash_only, verify=verify, names=names,
            skip_bad=skip_bad, total_images=self.images, device=self.device)
        req = ray.put(request)  # one copy in the object store for all actors
        s1 = ray.get([a.stage1.remote(req) for a in self.actors])
        state, plans = lookalike.combine1(request, s1)
        s2 = ray.get([a.stage2.remote(req, p) for a, p in zip(self.actors, plans)])
        state, plans = lookalike.combine2(request, state, s2)
        s3 = ray.get([a.stage3.remote(req, p) for a, p in zip(self.actors, plans)])
        return lookalike.report(request, state, s3, index=" + ".join(self.paths),
                                min_score=min_score)

    def close(self) -> None:
        """Ends the actors."""
        for a in self.actors:
            ray.kill(a)
        self.actors = []

    def __enter__(self) -> "PartSearcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check(index_parts: Sequence[PathLike], images: Any, k: int = 10,
          **kwargs: Any) -> Dict[str, Any]:
    """One fan-out check over ``index_parts`` (see :class:`PartSearcher`,
    which keeps the actors for more checks; ``kwargs`` as its ``check``)."""
    with PartSearcher(index_parts) as s:
        return s.check(images, k, **kwargs)

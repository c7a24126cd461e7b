"""lookalike.ray on a local Ray cluster started here: a head and a second
node on 127.0.0.1, one CPU each (separate raylets, as on two machines).

Ray is an optional dependency: without it these tests skip, unless
LOOKALIKE_REQUIRE_RAY=1 (CI sets it) makes that a failure.
"""

import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time

import numpy as np
import pytest
from PIL import Image

import lookalike
from pictures import picture as _picture

if os.environ.get("LOOKALIKE_REQUIRE_RAY") == "1":
    import ray  # fail, do not skip, when CI lacks Ray
else:
    ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

import lookalike.ray as lray  # noqa: E402


def picture(seed, w=160, h=120):
    return _picture(seed, w, h)


def png(a):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def write_shard(path, members):
    with tarfile.open(path, "w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            t.addfile(info, io.BytesIO(data))


def info(index):
    """`lookalike info --json` of an index (scripts/python_tests.sh sets
    LOOKALIKE_BIN to the CLI it built)."""
    out = subprocess.run([os.environ["LOOKALIKE_BIN"], "info", "--json", "-i", str(index)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    ray.init(address=c.address, log_to_driver=False)
    c.wait_for_nodes()
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """10 tar shards of 3 pictures; shard 7 repeats shard 2's first picture
    (a duplicate across shards) and holds a corrupt member."""
    root = tmp_path_factory.mktemp("shards")
    paths = []
    for s in range(10):
        members = [(f"{s:02d}_{j}.png", png(picture(100 * s + j))) for j in range(3)]
        if s == 7:
            members.append(("dup.png", png(picture(200))))
            members.append(("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg"))
        p = root / f"shard-{s:02d}.tar"
        write_shard(p, members)
        paths.append(str(p))
    return paths


def test_sharded_build_equals_one_process_build(cluster, shards, tmp_path):
    one = tmp_path / "one"
    lookalike.build(one, shards)
    out = tmp_path / "sharded"
    report = lray.build_index(shards, out, num_workers=2)
    assert report["failed"] == []
    assert [r["index"] for r in report["shards"]] == list(range(10))
    assert all(r["built"] for r in report["shards"])
    # Both nodes described shards (one CPU each, ten tasks).
    assert all(os.path.isdir(r["part"]) for r in report["shards"])
    a, b = lookalike.Index(one), lookalike.Index(out)
    assert b.images == a.images == 31
    assert b.content_digest() == a.content_digest()
    q = [png(picture(100 * 4 + 1)), png(picture(200)), png(picture(999))]
    ra, rb = a.check(q, 5), b.check(q, 5)
    for x, y in zip(ra["results"], rb["results"]):
        assert json.dumps(x["matches"], sort_keys=True) == json.dumps(y["matches"], sort_keys=True)
    # A rerun refuses to overwrite the index it made.
    with pytest.raises(lookalike.LookalikeError, match="already there"):
        lray.build_index(shards, out)


def test_a_killed_worker_still_yields_a_complete_index(cluster, tmp_path):
    # Shard 0 is big enough that its build is still running when killed.
    root = tmp_path / "src"
    root.mkdir()
    shards = []
    for s in range(4):
        n = 60 if s == 0 else 3
        p = root / f"s{s}.tar"
        write_shard(p, [(f"{s}_{j}.png", png(picture(1000 * s + j, 320, 240))) for j in range(n)])
        shards.append(str(p))
    out = tmp_path / "idx"
    parts = tmp_path / "idx.parts"
    killed = []

    def kill_first_attempt():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for name in os.listdir(parts) if parts.is_dir() else []:
                if name.startswith("part-00000.attempt-") and name.endswith(".json"):
                    try:
                        pid = json.loads((parts / name).read_text())["pid"]
                    except (OSError, ValueError):
                        continue
                    time.sleep(0.3)  # into the build
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.02)

    t = threading.Thread(target=kill_first_attempt)
    t.start()
    report = lray.build_index(shards, out, num_workers=2, hash_only=True, max_retries=3)
    t.join()
    assert killed, "the test never saw shard 0's attempt"
    assert report["attempts_lost"] >= 1
    assert report["failed"] == []
    assert not [n for n in os.listdir(parts) if ".attempt-" in n]
    one = tmp_path / "one"
    lookalike.build(one, shards, hash_only=True)
    a, b = lookalike.Index(one), lookalike.Index(out)
    assert b.images == a.images == 69
    assert b.content_digest() == a.content_digest()
    # Every shard recorded once: the merged index has as many records as
    # the one-process build (no superseded copy of a retried shard).
    assert info(out)["records"] == info(one)["records"] == 69 + 4


def test_a_bad_shard_is_reported_and_the_rest_merged(cluster, shards, tmp_path):
    bad = tmp_path / "missing.tar"
    report = lray.build_index([shards[0], str(bad), shards[1]], tmp_path / "idx")
    assert [f["shard"] for f in report["failed"]] == [str(bad)]
    assert "missing.tar" in report["failed"][0]["reason"]
    assert lookalike.Index(tmp_path / "idx").images == 6


def test_fan_out_check_equals_check_of_the_merge(cluster, shards, tmp_path):
    parts = []
    for i, group in enumerate([shards[0:3], shards[3:7], shards[7:10]]):
        p = tmp_path / f"part{i}"
        lookalike.build(p, group)
        parts.append(str(p))
    merged = tmp_path / "merged"
    lookalike.merge(merged, parts)
    q = [png(picture(100 * 4 + 1)), png(picture(200)), png(picture(999)),
         png(np.ascontiguousarray(picture(100 * 8 + 2)[:, ::-1]))]
    want = lookalike.Index(merged).check(q, 5)
    s = lray.PartSearcher(parts)
    try:
        got = s.check(q, 5)
        again = s.check(q[:1], 5)
    finally:
        s.close()
    want.pop("index"), got.pop("index")
    assert got == want
    assert again["results"][0] == want["results"][0]

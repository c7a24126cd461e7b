"""Tests of the Python package against the CLI: same index, same answers.

The images are made here (numpy + Pillow). Tests that run the CLI find it
through $LOOKALIKE_BIN (scripts/python_tests.sh sets it), else skip.
"""

import json
import math
import os
import subprocess
import threading
import time

import numpy as np
import pytest
from PIL import Image

import lookalike
from pictures import picture


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A training folder of 5 PNGs, an index built by the package, and a
    query folder: an exact copy, a resized copy, an unrelated picture."""
    root = tmp_path_factory.mktemp("corpus")
    train = root / "train"
    queries = root / "queries"
    train.mkdir()
    queries.mkdir()
    arrays = {}
    for i in range(5):
        a = picture(i)
        arrays[i] = a
        Image.fromarray(a).save(train / f"train_{i}.png")
    (queries / "copy_2.png").write_bytes((train / "train_2.png").read_bytes())
    Image.fromarray(arrays[3]).resize((150, 112), Image.BILINEAR).save(queries / "resized_3.png")
    Image.fromarray(picture(99)).save(queries / "novel.png")
    index = root / "idx"
    calls = []
    stats = lookalike.build(index, train, progress=lambda done, total: calls.append((done, total)))
    return {
        "root": root, "train": train, "queries": queries, "index": index,
        "arrays": arrays, "stats": stats, "calls": calls,
    }


def cli():
    path = os.environ.get("LOOKALIKE_BIN")
    if not path:
        pytest.skip("LOOKALIKE_BIN (the lookalike binary) not set")
    return path


def run_cli(*args):
    out = subprocess.run([cli(), *map(str, args)], capture_output=True, text=True,
                         env={**os.environ, "NO_COLOR": "1"})
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


def same(a, b):
    """Equal field for field; floats (scores, similarities) to 1e-5.

    The wheel and the CLI are separate builds of the same code; their CNN
    embeddings have been seen to differ in the 7th digit (0.99801856 against
    0.99801844) since the convolutions became GEMM calls. Everything else
    (verdicts, candidates, order, hashes) must be identical."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_same_compares_what_it_should():
    assert same({"s": 0.99801856, "v": "near"}, {"s": 0.99801844, "v": "near"})
    assert not same({"s": 0.998}, {"s": 0.997})
    assert not same({"v": "near"}, {"v": "none"})
    assert not same([1, 2], [1, 2, 3])


def test_build_reports_as_index_json(corpus):
    s = corpus["stats"]
    assert s["seen"] == 5 and s["described"] == 5 and s["live_records"] == 5
    assert s["skipped"] == []
    done, total = corpus["calls"][-1]
    assert (done, total) == (5, 5)
    idx = lookalike.Index(corpus["index"])
    assert len(idx) == 5
    assert idx.embedding_model == lookalike.EMBEDDING_MODEL
    assert idx.keypoints


def test_check_finds_exact_and_resized_copies(corpus):
    idx = lookalike.Index(corpus["index"])
    r = idx.check(sorted(str(p) for p in corpus["queries"].iterdir()))
    assert r["schema"] == "lookalike.check/1"
    by = {os.path.basename(q["query"]): q for q in r["results"]}
    assert by["copy_2.png"]["verdict"] == "exact"
    assert by["copy_2.png"]["matches"][0]["candidate"].endswith("train_2.png")
    assert by["copy_2.png"]["matches"][0]["same_bytes"] is True
    assert by["resized_3.png"]["verdict"] != "none"
    assert by["resized_3.png"]["matches"][0]["candidate"].endswith("train_3.png")
    assert by["novel.png"]["verdict"] == "none"
    assert r["matched"] == 2 and r["images_checked"] == 3


def test_regions_find_a_pasted_copy_unless_turned_off(corpus):
    # Training picture 1, small, inside a flat page with a bar of "text".
    page = np.full((432, 576, 3), 238, dtype=np.uint8)
    page[20:28, 30:400] = 40
    page[200:344, 200:392] = corpus["arrays"][1]
    idx = lookalike.Index(corpus["index"])
    with_regions = idx.query(page, name="page")
    assert with_regions["matches"][0]["candidate"].endswith("train_1.png")
    r = with_regions["matches"][0]["region"]
    assert r is not None and abs(r["x"] - 200 / 576) < 0.02 and abs(r["w"] - 192 / 576) < 0.02
    whole = idx.query(page, name="page", regions=False)
    assert all(m["region"] is None for m in whole["matches"])


def test_check_equals_cli_check_json(corpus):
    """Same files, same index: the package's report is the CLI's, field for field."""
    index = str(corpus["index"])
    ours = lookalike.Index(index).check(str(corpus["queries"]), k=3)
    theirs = run_cli("check", corpus["queries"], "-i", index, "--json", "-k", "3")
    assert same(ours, theirs)


def test_query_equals_cli_query_json(corpus):
    index = str(corpus["index"])
    q = corpus["queries"] / "resized_3.png"
    ours = lookalike.Index(index).query(str(q), k=4)
    assert same(ours, run_cli("query", q, "-i", index, "--json", "-k", "4"))


def test_cli_reads_index_built_by_package(corpus):
    info = run_cli("info", "-i", str(corpus["index"]), "--json")
    assert info["live_images"] == 5


def test_package_reads_index_built_by_cli(corpus, tmp_path):
    subprocess.run([cli(), "index", str(corpus["train"]), "-i", str(tmp_path / "c"),
                    "--hash-only", "-q"], check=True, capture_output=True)
    idx = lookalike.Index(tmp_path / "c")
    assert idx.images == 5 and idx.embedding_model is None
    r = idx.check(str(corpus["queries"] / "copy_2.png"))
    assert r["results"][0]["verdict"] == "exact"


def test_array_hash_equals_png_file_hash(corpus):
    png = corpus["train"] / "train_1.png"
    a = corpus["arrays"][1]
    from_file = lookalike.hash(str(png))
    from_array = lookalike.hash(a)
    for f in ("pdq", "quality", "phash"):
        assert from_array[f] == from_file[f], f
    assert from_array["path"] == "<array 0>"
    cli_rows = run_cli("hash", png, "--json")["results"]
    assert cli_rows[0] == from_file
    # A non-contiguous view hashes as its contiguous copy.
    assert lookalike.hash(a[:, ::-1])["pdq"] == lookalike.hash(np.ascontiguousarray(a[:, ::-1]))["pdq"]


def test_array_check_equals_png_file_check(corpus):
    idx = lookalike.Index(corpus["index"])
    png = corpus["queries"] / "resized_3.png"
    arr = np.asarray(Image.open(png).convert("RGB"))
    a = idx.check(arr, names=[str(png)])["results"][0]
    f = idx.check(str(png))["results"][0]
    for m in a["matches"] + f["matches"]:
        m.pop("same_bytes")  # pixels carry no file bytes
    assert a == f


def test_pil_and_bytes_inputs(corpus):
    idx = lookalike.Index(corpus["index"])
    path = corpus["queries"] / "copy_2.png"
    img = Image.open(path)
    r = idx.check([img, path.read_bytes(), Image.fromarray(corpus["arrays"][4]).convert("RGBA")])
    names = [q["query"] for q in r["results"]]
    assert names == [str(path), "<bytes 1>", "<image 2>"]
    assert [q["verdict"] for q in r["results"]] == ["exact", "exact", "exact"]
    assert r["results"][1]["matches"][0]["same_bytes"] is True  # bytes of the indexed file
    assert lookalike.hash(img)["pdq"] == lookalike.hash(str(path))["pdq"]


def test_bad_inputs_raise_clear_exceptions(corpus, tmp_path):
    idx = lookalike.Index(corpus["index"])
    with pytest.raises(lookalike.LookalikeError, match=r"^<bytes 0>: .*(corrupt|not an image)"):
        idx.check(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(lookalike.LookalikeError, match="empty file"):
        idx.check(b"")
    with pytest.raises(TypeError, match="dtype float64, expected uint8"):
        idx.check(np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match=r"shape \(8, 8\), expected \(height, width, 3\)"):
        idx.check(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="has no pixels"):
        lookalike.hash(np.zeros((0, 8, 3), dtype=np.uint8))
    with pytest.raises(lookalike.LookalikeError, match="too elongated"):
        lookalike.hash(np.zeros((1, 500, 3), dtype=np.uint8))
    missing = tmp_path / "nope.png"
    with pytest.raises(lookalike.LookalikeError, match=f"^{missing}: no such file or folder$"):
        idx.check(str(missing))
    with pytest.raises(lookalike.LookalikeError, match=r"^no index at .*nothing.*builds one there"):
        lookalike.Index(tmp_path / "nothing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "MANIFEST.json").write_text("{ not json")
    with pytest.raises(lookalike.LookalikeError, match="not a lookalike index"):
        lookalike.Index(tmp_path / "junk")
    with pytest.raises(TypeError, match="cannot read an image from int"):
        idx.check([1])
    with pytest.raises(TypeError, match="cannot read an image from dict"):
        lookalike.hash({"a": 1})
    with pytest.raises(ValueError, match="k must be at least 1"):
        idx.check(str(missing), k=0)
    with pytest.raises(ValueError, match="device"):
        lookalike.Index(corpus["index"], device="tpu")
    with pytest.raises(lookalike.LookalikeError, match="no such file or folder"):
        lookalike.build(tmp_path / "i", tmp_path / "no-such-folder")
    with pytest.raises(lookalike.LookalikeError, match="no image files in it"):
        lookalike.build(tmp_path / "i", tmp_path / "junk")
    (tmp_path / "empty").mkdir()
    with pytest.raises(lookalike.LookalikeError, match=r"empty: no image files in it \(JPEG"):
        idx.check(str(tmp_path / "empty"))
    # skip_bad lists what it could not read, as check DIR does.
    r = idx.check([b"junk", str(corpus["queries"] / "copy_2.png")], skip_bad=True)
    assert r["images_checked"] == 1
    assert r["skipped"][0]["path"] == "<bytes 0>"
    assert "not an image" in r["skipped"][0]["reason"]


def test_progress_callback_errors_propagate(corpus):
    idx = lookalike.Index(corpus["index"])

    def stop(done, total):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        idx.check(str(corpus["queries"]), progress=stop)


def test_gil_is_released_during_check(corpus):
    """A Python thread keeps running while a check runs in native code.

    With the GIL held for the whole call, the thread could not record a tick
    strictly inside the call's time window (margins allow for the GIL
    switch interval around the call)."""
    idx = lookalike.Index(corpus["index"])
    items = [("pixels", f"a{i}", 192, 144, 3, picture(200 + i).tobytes()) for i in range(48)]
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    idx._native.check(items)
    t1 = time.perf_counter()
    stop.set()
    t.join()
    margin = 0.05
    if t1 - t0 < 4 * margin:
        pytest.skip(f"check took {t1 - t0:.3f} s, too short to tell")
    inside = [x for x in ticks if t0 + margin < x < t1 - margin]
    assert len(inside) > 5, f"{len(inside)} ticks in a {t1 - t0:.2f} s call"


def test_readme_python_demo_runs(tmp_path):
    """The README's "From Python" script, run as written."""
    import re
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"<!-- BEGIN python-demo.*?```python\n(.*?)```\n<!-- END python-demo -->",
                      readme, re.S)
    assert block, "README has no python-demo block"
    (tmp_path / "demo.py").write_text(block.group(1))
    out = subprocess.run([sys.executable, "demo.py"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "indexed 8 images"
    assert lines[1].startswith("copy    exact ") and lines[1].endswith("/demo/train/2.png")
    assert lines[2].startswith("edited  near-duplicate ") and lines[2].endswith("/demo/train/5.png")
    assert lines[3].startswith("new     none ")
    assert lines[4] == "replication rate 67%"
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["schema"] == "lookalike.check/1" and report["images_checked"] == 3


def test_build_from_a_tar_shard(corpus, tmp_path):
    import tarfile

    shard = tmp_path / "train-000.tar"
    with tarfile.open(shard, "w") as t:
        for f in sorted(corpus["train"].iterdir()):
            t.add(f, arcname=f"{f.stem}.png")
    stats = lookalike.build(tmp_path / "idx", [str(shard)], hash_only=True)
    assert stats["live_records"] == 5
    r = lookalike.Index(tmp_path / "idx").check(str(corpus["queries"] / "copy_2.png"))
    assert r["results"][0]["verdict"] == "exact"
    assert r["results"][0]["matches"][0]["candidate"].endswith("train-000.tar/train_2.png")


def test_build_a_compact_index(corpus, tmp_path):
    stats = lookalike.build(tmp_path / "c", corpus["train"], profile="compact")
    assert stats["live_records"] == 5
    manifest = json.loads((tmp_path / "c" / "MANIFEST.json").read_text())
    assert manifest["profile"] == "compact"
    assert lookalike.Index(tmp_path / "c").profile == "compact"
    assert lookalike.Index(corpus["index"]).profile == "full"
    assert not list((tmp_path / "c").glob("seg-*/embedding.col"))
    r = lookalike.Index(tmp_path / "c").check(str(corpus["queries"] / "resized_3.png"))
    assert r["results"][0]["matches"][0]["candidate"].endswith("train_3.png")
    with pytest.raises(ValueError, match="profile"):
        lookalike.build(tmp_path / "d", corpus["train"], profile="tiny")

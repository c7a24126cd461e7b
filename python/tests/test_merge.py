"""lookalike.merge and Index.content_digest: parts built separately and
merged in order equal one build over the same sources; parts built with
other settings are refused with the CLI's message."""

import json
import os
import subprocess

import pytest
from PIL import Image

import lookalike
from pictures import picture as _picture


def picture(seed):
    return Image.fromarray(_picture(seed, 160, 120))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Three folders of three images each; the last holds a copy of a file
    of the first (an exact duplicate across parts)."""
    root = tmp_path_factory.mktemp("merge")
    folders = []
    for k in range(3):
        d = root / f"src{k}"
        d.mkdir()
        for j in range(3):
            picture(10 * k + j).save(d / f"img_{j}.png")
        folders.append(d)
    (folders[2] / "again.png").write_bytes((folders[0] / "img_1.png").read_bytes())
    return root, folders


def test_parts_merged_in_order_have_the_digest_of_one_build(sources):
    root, folders = sources
    one = root / "one"
    stats = lookalike.build(one, folders, hash_only=True)
    assert stats["duplicates"] == 1
    parts = [root / f"part-{k}" for k in range(3)]
    for p, f in zip(parts, folders):
        lookalike.build(p, f, hash_only=True)

    report = lookalike.merge(root / "merged", parts)
    assert report["segments_attached"] == 3
    assert report["duplicates_flagged"] == 1
    assert report["live_images"] == 10
    assert report["inputs"] == [str(p) for p in parts]
    merged = lookalike.Index(root / "merged")
    digest = merged.content_digest()
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == lookalike.Index(one).content_digest()
    assert len(merged) == len(lookalike.Index(one)) == 10

    # Another order gives another digest (index order counts), same images.
    other = lookalike.merge(root / "reversed", parts[::-1])
    assert other["live_images"] == 10
    assert lookalike.Index(root / "reversed").content_digest() != digest

    # The digest is the one `info` prints.
    binary = os.environ.get("LOOKALIKE_BIN")
    if binary:
        out = subprocess.run([binary, "info", "-i", str(root / "merged"), "--json"],
                             capture_output=True, text=True, check=True)
        assert json.loads(out.stdout)["content_digest"] == digest


def test_parts_built_otherwise_are_refused(sources):
    root, folders = sources
    fast = root / "fast"
    exact = root / "exact"
    lookalike.build(fast, folders[0], hash_only=True)
    lookalike.build(exact, folders[1], hash_only=True, exact=True)
    with pytest.raises(lookalike.LookalikeError) as e:
        lookalike.merge(root / "out", [fast, exact])
    msg = str(e.value)
    assert "decode setting" in msg and "'exact'" in msg and "'fast:512'" in msg
    assert str(exact) in msg
    assert not (root / "out").exists()

    with pytest.raises(lookalike.LookalikeError, match="both the index merged into and an input"):
        lookalike.merge(fast, [exact, fast])
    with pytest.raises(lookalike.LookalikeError, match="no index at"):
        lookalike.merge(root / "out", [root / "nothing-here"])
    with pytest.raises(TypeError):
        lookalike.merge(root / "out", str(fast))
    with pytest.raises(ValueError):
        lookalike.merge(root / "out", [])

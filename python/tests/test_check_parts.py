"""A check fanned out over index parts equals Index.check on the merged
index (``lookalike.merge`` of the parts in order), field for field but
``index``."""

import pickle

import pytest
from PIL import Image

import lookalike
from pictures import picture


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Three parts (the first in two segments) with a near copy and a
    byte-identical copy across parts, their merge, and queries."""
    root = tmp_path_factory.mktemp("parts")
    dirs = [root / f"train{i}" for i in range(3)]
    for i, d in enumerate(dirs):
        d.mkdir()
        for k in range(3):
            Image.fromarray(picture(10 * i + k)).save(d / f"img_{10 * i + k}.png")
    shared = picture(500)
    Image.fromarray(shared).save(dirs[0] / "shared.png")
    Image.fromarray(shared).save(dirs[1] / "shared_q80.jpg", quality=80)
    (dirs[2] / "twin.png").write_bytes((dirs[1] / "img_11.png").read_bytes())
    idx = [root / f"part{i}" for i in range(3)]
    lookalike.build(idx[0], dirs[0], device="cpu")
    Image.fromarray(picture(7)).save(dirs[0] / "late.png")
    lookalike.build(idx[0], dirs[0], device="cpu")
    for i in (1, 2):
        lookalike.build(idx[i], dirs[i], device="cpu")
    merged = root / "merged"
    lookalike.merge(merged, idx)
    q = root / "queries"
    q.mkdir()
    (q / "copy_shared.png").write_bytes((dirs[0] / "shared.png").read_bytes())
    (q / "copy_twin.png").write_bytes((dirs[2] / "twin.png").read_bytes())
    Image.fromarray(shared).resize((150, 112), Image.BILINEAR).save(q / "resized_shared.png")
    Image.fromarray(picture(21)[:, ::-1].copy()).save(q / "mirrored_21.png")
    Image.fromarray(picture(999)).save(q / "novel.png")
    queries = sorted(str(p) for p in q.iterdir()) + [picture(7), picture(12)]
    return {"parts": [str(p) for p in idx], "merged": str(merged), "queries": queries}


def without_index(r):
    r = dict(r)
    r.pop("index")
    return r


@pytest.mark.parametrize("k,hash_only", [(10, False), (3, False), (5, True)])
def test_check_parts_equals_merged(parts, k, hash_only):
    want = lookalike.Index(parts["merged"], device="cpu").check(parts["queries"], k, hash_only=hash_only)
    got = lookalike.check_parts(parts["parts"], parts["queries"], k, hash_only=hash_only, device="cpu")
    assert got["index"] == "+".join(parts["parts"])
    assert without_index(got) == without_index(want)
    assert want["matched"] >= 4
    copies = [m["corpus_copies"] for r in want["results"] for m in r["matches"] if m["corpus_copies"]]
    assert copies and max(copies) >= 1


def test_stages_as_bytes(parts):
    """The call sequence a distributed driver runs, every message pickled."""
    ps = [lookalike.Part(p, device="cpu") for p in parts["parts"]]
    hop = lambda b: pickle.loads(pickle.dumps(b))
    request = lookalike.describe(parts["queries"], like=ps[0], k=4, device="cpu",
                                 total_images=sum(p.images for p in ps))
    assert isinstance(request, bytes)
    s1 = [hop(p.stage1(hop(request))) for p in ps]
    state, plans = lookalike.combine1(request, s1)
    s2 = [hop(p.stage2(request, hop(plan))) for p, plan in zip(ps, plans)]
    state, plans = lookalike.combine2(request, hop(state), s2)
    s3 = [hop(p.stage3(request, hop(plan))) for p, plan in zip(ps, plans)]
    got = lookalike.report(request, hop(state), s3, index="three parts", min_score=0.5)
    want = lookalike.Index(parts["merged"], device="cpu").check(parts["queries"], 4, min_score=0.5)
    assert got["index"] == "three parts"
    assert without_index(got) == without_index(want)


def test_bad_messages_raise(parts):
    p = lookalike.Part(parts["parts"][1], device="cpu")
    request = lookalike.describe(parts["queries"][:2], like=p.settings, device="cpu")
    with pytest.raises(lookalike.LookalikeError, match="not a lookalike request"):
        p.stage1(b"junk")
    with pytest.raises(lookalike.LookalikeError, match="not a lookalike stage-2 plan message"):
        p.stage2(request, b"LKFO\x03\x02")
    # A message from a build of another format version says so.
    with pytest.raises(lookalike.LookalikeError, match="format version 2 .this build reads version 3"):
        p.stage2(request, b"LKFO\x02\x04")
    s1 = p.stage1(request)
    with pytest.raises(lookalike.LookalikeError, match="corrupt lookalike stage-1 message"):
        lookalike.combine1(request, [s1[:-3]])
    # Parts passed in another order at stage 2.
    ps = [lookalike.Part(x, device="cpu") for x in parts["parts"]]
    state, plans = lookalike.combine1(request, [q.stage1(request) for q in ps])
    with pytest.raises(lookalike.LookalikeError, match="another part"):
        ps[0].stage2(request, plans[1])
    with pytest.raises(TypeError):
        p.stage1("text")


def test_other_settings_refused(parts, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    Image.fromarray(picture(77)).save(d / "a.png")
    lookalike.build(tmp_path / "h", d, hash_only=True, device="cpu")
    with pytest.raises(lookalike.LookalikeError, match="must share"):
        lookalike.check_parts([parts["parts"][0], tmp_path / "h"], parts["queries"][:1], device="cpu")

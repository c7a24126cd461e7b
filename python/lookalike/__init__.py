"""lookalike from Python: did this generated image copy something from the
training set?

    import lookalike
    lookalike.build("indexes/mymodel", "data/train")     # as `lookalike index`
    lookalike.merge("indexes/all", ["parts/p0", "parts/p1"])  # as `lookalike merge`
    idx = lookalike.Index("indexes/mymodel")
    report = idx.check(["out/0001.png", pil_image, numpy_array, png_bytes])
    print(report["replication_rate"], report["results"][0]["verdict"])

The package calls the same Rust library as the `lookalike` command line:
they read and write the same index, and `Index.check` returns the report
`lookalike check --json` prints (schema ``lookalike.check/1``), as dicts and
lists. Images are paths (a folder stands for the images in it), the bytes of
an image file, PIL images, or uint8 numpy arrays of shape H×W×3 (RGB) or
H×W×4 (RGBA, flattened onto white as files are). Work runs without the GIL.

Errors of the library (a missing or corrupt index, an image that cannot be
decoded) raise :class:`LookalikeError` with the CLI's message; arguments of
the wrong type or shape raise ``TypeError`` / ``ValueError``.

**A check fanned out over index parts.** A huge index can be built as
several *parts* (disjoint sets of images, each a normal index folder, all
built with the same settings) held by different processes or machines.
:func:`check_parts` checks images against all of them and returns the
report ``Index.check`` gives on the merged index (``lookalike merge OUT
PARTS...``), field for field; only ``index`` differs (it names the parts).
It runs in this process, one part after the other. A distributed driver
(e.g. Ray actors each holding a :class:`Part`) runs the same stages where
the parts live; every message is opaque, picklable ``bytes``, and lists of
per-part messages are in part order (keep the parts in the same order at
every stage)::

    request = lookalike.describe(images, like=parts[0], k=10,
                                 total_images=sum(p.images for p in parts))
    s1 = [p.stage1(request) for p in parts]               # on each part
    state, plans = lookalike.combine1(request, s1)        # driver
    s2 = [p.stage2(request, plan) for p, plan in zip(parts, plans)]
    state, plans = lookalike.combine2(request, state, s2)  # driver
    s3 = [p.stage3(request, plan) for p, plan in zip(parts, plans)]
    report = lookalike.report(request, state, s3, index="my-parts")

``describe`` decodes and describes the images once (as the parts decode,
on ``device``); ``like`` gives the parts' settings (a :class:`Part`, or
its ``settings`` tuple). Parts must share decode setting, embedding model
and keypoint setting (a part built otherwise raises) and must hold
disjoint paths: on a merged index a later part's record of a path
supersedes an earlier one, which the fan-out cannot see (a candidate path
found in two parts raises; other overlaps go unnoticed). The request holds
every image's descriptors (about 20 KB each): split very large batches.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _lookalike
from ._lookalike import EMBEDDING_MODEL, LookalikeError

__all__ = [
    "Index", "LookalikeError", "build", "hash", "merge", "EMBEDDING_MODEL", "__version__",
    "Part", "describe", "combine1", "combine2", "report", "check_parts",
]
__version__: str = _lookalike.__version__

Progress = Union[bool, Callable[[int, int], Any], None]


def _is_numpy(x: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.ndarray)


def _is_pil(x: Any) -> bool:
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(x, pil.Image)


def _array_item(a: Any, name: str) -> Tuple:
    if a.dtype.name != "uint8":
        raise TypeError(f"{name}: numpy array of dtype {a.dtype}, expected uint8 (0..255)")
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(
            f"{name}: numpy array of shape {a.shape}, expected (height, width, 3) RGB "
            "or (height, width, 4) RGBA"
        )
    h, w, c = a.shape
    if h == 0 or w == 0:
        raise ValueError(f"{name}: numpy array of shape {a.shape} has no pixels")
    # tobytes() copies in C order, whatever the array's strides.
    return ("pixels", name, int(w), int(h), int(c), a.tobytes())


def _pil_item(img: Any, name: str) -> Tuple:
    if img.mode not in ("RGB", "RGBA"):
        transparent = img.mode in ("LA", "PA", "La") or "transparency" in img.info
        img = img.convert("RGBA" if transparent else "RGB")
    w, h = img.size
    if w == 0 or h == 0:
        raise ValueError(f"{name}: PIL image of size {img.size} has no pixels")
    return ("pixels", name, w, h, len(img.mode), img.tobytes())


def _items(images: Any, names: Optional[Sequence[str]]) -> List[Tuple]:
    """Tags each image for the native module: ("path", p), ("bytes", name,
    data) or ("pixels", name, w, h, channels, data)."""
    single = isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike)) or (
        _is_numpy(images) or _is_pil(images)
    )
    if single:
        seq = [images]
    elif isinstance(images, (list, tuple)) or (
        _iterable(images) and not isinstance(images, (dict, set, frozenset))
    ):
        seq = list(images)
    else:
        raise TypeError(_type_text(images))
    if names is not None:
        names = list(names)
        if len(names) != len(seq):
            raise ValueError(f"names: {len(names)} names for {len(seq)} images")
    out: List[Tuple[Any, ...]] = []
    for i, x in enumerate(seq):
        name = names[i] if names is not None else None
        if isinstance(x, (str, os.PathLike)):
            out.append(("path", os.fspath(x)))
        elif isinstance(x, (bytes, bytearray, memoryview)):
            out.append(("bytes", name or f"<bytes {i}>", bytes(x)))
        elif _is_numpy(x):
            out.append(_array_item(x, name or f"<array {i}>"))
        elif _is_pil(x):
            default = getattr(x, "filename", "") or f"<image {i}>"
            out.append(_pil_item(x, name or default))
        else:
            raise TypeError(_type_text(x))
    return out


def _iterable(x: Any) -> bool:
    try:
        iter(x)
    except TypeError:
        return False
    return True


def _type_text(x: Any) -> str:
    return (
        f"cannot read an image from {type(x).__name__}: expected a path (str or "
        "os.PathLike), the bytes of an image file, a PIL image, a uint8 numpy array "
        "(H×W×3), or a list of these"
    )


def _quiet_wayland(device: str) -> None:
    """The Vulkan loader's Linux WSI loads libwayland, which prints an
    "error:" line when XDG_RUNTIME_DIR is unset (servers, CI, containers)
    although nothing here needs a display; the CLI points it at the temp
    dir before probing adapters, and so does this."""
    if device != "cpu" and sys.platform.startswith("linux") and not os.environ.get("XDG_RUNTIME_DIR"):
        import tempfile

        os.environ["XDG_RUNTIME_DIR"] = tempfile.gettempdir()


def _progress(progress: Progress, what: str) -> Optional[Callable[[int, int], Any]]:
    if progress is None or progress is False:
        return None
    if progress is True:
        return _StderrBar(what)
    if not callable(progress):
        raise TypeError("progress: expected a callable progress(done, total), True or None")
    return progress


class _StderrBar:
    """A one-line progress bar on stderr: ``indexing [=====>   ] 120/300``."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __call__(self, done: int, total: int) -> None:
        width = 30
        filled = width * done // total if total else width
        bar = "=" * filled + (">" if filled < width else "") + " " * (width - filled - 1)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{self.what} [{bar[:width]}] {done}/{total} images{end}")
        sys.stderr.flush()


class Index:
    """An index built by ``lookalike index`` or :func:`build`, open for checks.

    ``path`` is the index folder. ``device`` is ``--device``: ``"auto"`` (a
    hardware GPU if there is one, else the CPU), ``"cpu"`` or ``"gpu"``.
    The index is read as it was when opened: open it again to see what a
    later build added.
    """

    def __init__(self, path: Union[str, os.PathLike], device: str = "auto") -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a str or os.PathLike, not {type(path).__name__}")
        _quiet_wayland(device)
        self._native = _lookalike.NativeIndex(os.fspath(path), device)

    @property
    def path(self) -> str:
        """The index folder, as given."""
        return str(self._native.path)

    @property
    def images(self) -> int:
        """How many images the index holds (searchable)."""
        return self._native.images

    def __len__(self) -> int:
        return self._native.images

    @property
    def decode(self) -> Optional[str]:
        """The decode setting queries follow (``fast:512``, ``exact``, ...)."""
        return self._native.decode

    @property
    def embedding_model(self) -> Optional[str]:
        """The model of the index's embeddings; ``None`` for a hash-only index."""
        return self._native.embedding_model

    @property
    def keypoints(self) -> bool:
        """Whether the index holds keypoints (geometric verification; a
        compact index reads them back from the training files)."""
        return self._native.keypoints

    @property
    def profile(self) -> str:
        """``"full"`` or ``"compact"``: what each image keeps
        (``lookalike index --profile``)."""
        return self._native.profile

    def content_digest(self) -> str:
        """The index's content digest, 64 hex digits, as ``lookalike info``
        prints it: over the images' sizes, content hashes, flags and
        descriptors in index order, not their paths or mtimes. The merge of
        per-shard parts (:func:`merge`, in shard order) has the digest of an
        index built in one run over the shards."""
        return self._native.content_digest()

    def __repr__(self) -> str:
        return f"lookalike.Index({self.path!r}, images={self.images})"

    def check(
        self,
        images: Any,
        k: int = 10,
        *,
        hash_only: bool = False,
        verify: bool = True,
        min_score: Optional[float] = None,
        names: Optional[Sequence[str]] = None,
        skip_bad: bool = False,
        progress: Progress = None,
        regions: bool = True,
    ) -> Dict[str, Any]:
        """Checks images against the index: the report ``check --json`` prints.

        ``images``: one image or a list (paths, folders, file bytes, PIL
        images, uint8 numpy arrays). ``k``: candidates per image (``-k``);
        ``hash_only``, ``verify=False``, ``regions=False`` and ``min_score``
        are ``--hash-only``, ``--no-verify``, ``--no-regions`` and
        ``--min-score``. ``names``: what the report calls
        each image (default: the path; ``<array N>``, ``<bytes N>``, a PIL
        image's file name or ``<image N>``). An image you name that cannot
        be read raises :class:`LookalikeError` (``"name: reason"``) unless
        ``skip_bad``, which lists it under ``skipped`` as files found in a
        folder always are; a folder with no image file in it counts as one
        you named. ``progress``: ``True`` for a bar on stderr, or a
        callable ``progress(done, total)`` called after each batch.
        """
        k = _positive_int(k, "k")
        items = _items(images, names)
        text = self._native.check(
            items, k, bool(hash_only), bool(verify),
            None if min_score is None else float(min_score),
            bool(skip_bad), _progress(progress, "checking"),
            regions=bool(regions),
        )
        return json.loads(text)

    def query(
        self,
        image: Any,
        k: int = 10,
        *,
        hash_only: bool = False,
        verify: bool = True,
        name: Optional[str] = None,
        regions: bool = True,
    ) -> Dict[str, Any]:
        """Top-``k`` training images for one image: the result object
        ``query --json`` prints (``query``, ``verdict``, ``best_score``,
        ``matches``, ...)."""
        if isinstance(image, (list, tuple)):
            raise TypeError("query takes one image; use check() for several")
        if isinstance(image, (str, os.PathLike)) and os.path.isdir(image):
            raise LookalikeError(f"{os.fspath(image)}: not a file")
        report = self.check(
            image, k, hash_only=hash_only, verify=verify,
            names=None if name is None else [name], regions=regions,
        )
        return report["results"][0]


def _positive_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{what}: expected an int, not {type(v).__name__}")
    if v < 1:
        raise ValueError(f"{what} must be at least 1, not {v}")
    return v


def hash(
    image: Any,
    *,
    fast: bool = False,
    thumb_side: Optional[int] = None,
    names: Optional[Sequence[str]] = None,
) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
    """PDQ, its quality and pHash of an image, as ``hash --json`` lists them:
    ``{"path", "pdq", "quality", "phash"}``. One image gives one dict; a
    list or a folder gives a list. Decoded at full resolution unless
    ``fast`` / ``thumb_side`` (as ``hash --fast`` / ``--thumb-side``). An
    image that cannot be read raises :class:`LookalikeError`."""
    one = not isinstance(image, (list, tuple)) and not (
        isinstance(image, (str, os.PathLike)) and os.path.isdir(image)
    )
    if thumb_side is not None:
        thumb_side = _positive_int(thumb_side, "thumb_side")
    out = json.loads(_lookalike.hash(_items(image, names), bool(fast), thumb_side, False))
    rows = out["results"]
    return rows[0] if one else rows


def build(
    path: Union[str, os.PathLike],
    sources: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
    *,
    hash_only: bool = False,
    keypoints: bool = True,
    keep_missing: bool = False,
    exact: bool = False,
    thumb_side: Optional[int] = None,
    max_pixels: int = 128_000_000,
    max_mib: int = 256,
    allow_empty: bool = False,
    device: str = "auto",
    progress: Progress = None,
    profile: Optional[str] = None,
) -> Dict[str, Any]:
    """Builds or updates the index in folder ``path`` from ``sources`` (a
    folder of training images, a WebDataset tar shard, an image file, or a
    list of these), as ``lookalike index``
    does: new or changed files are described, vanished ones marked removed
    (unless ``keep_missing``). The options are ``index``'s flags
    (``--hash-only``, ``--no-keypoints`` as ``keypoints=False``,
    ``--profile compact`` as ``profile="compact"``, ...).
    Returns what ``index --json`` prints (``seen``, ``described``,
    ``skipped``, ``live_records``, ...). ``progress``: ``True`` for a bar on
    stderr, or a callable ``progress(done, total)`` (``total`` 0 when a tar
    shard is among the sources: its members are not counted ahead), called about ten times a
    second while the build runs without the GIL; an exception it raises is
    re-raised when the build has finished (commits are atomic, so
    interrupting is safe but not immediate)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, not {type(path).__name__}")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    srcs = []
    for s in sources:
        if not isinstance(s, (str, os.PathLike)):
            raise TypeError(f"sources: expected paths, not {type(s).__name__}")
        srcs.append(os.fspath(s))
    if thumb_side is not None:
        thumb_side = _positive_int(thumb_side, "thumb_side")
    _quiet_wayland(device)
    text = _lookalike.build(
        os.fspath(path), srcs, bool(hash_only), bool(keypoints), bool(keep_missing),
        bool(exact), thumb_side, _positive_int(max_pixels, "max_pixels"),
        _positive_int(max_mib, "max_mib"), bool(allow_empty), device,
        _progress(progress, "indexing"), profile,
    )
    return json.loads(text)


def merge(
    out: Union[str, os.PathLike],
    parts: Sequence[Union[str, os.PathLike]],
) -> Dict[str, Any]:
    """Combines the indexes in folders ``parts``, in that order, into the
    index in folder ``out`` (created if missing; an existing index keeps its
    segments and gets the parts' after them), as ``lookalike merge OUT
    INDEX...`` does: their segments are attached as they are (hard-linked on
    the same filesystem, else copied), nothing is described again, and one
    crash-safe commit makes them visible. A later part's record of a path
    supersedes an earlier one's; a file whose bytes equal an earlier part's
    is flagged as an exact duplicate, as ``index`` would flag it.

    Returns what ``merge --json`` prints (``inputs``, ``segments_attached``,
    ``records``, ``duplicates_flagged``, ``live_images``, ``segments``,
    ``seconds``, ...). Parts built with another decode setting, embedding
    model or keypoint setting, ``out`` among the parts, and missing or
    corrupt parts raise :class:`LookalikeError` with the CLI's message.
    ``lookalike compact`` afterwards merges the segments into one."""
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out: expected a str or os.PathLike, not {type(out).__name__}")
    if isinstance(parts, (str, os.PathLike)):
        raise TypeError("parts: expected a list of index folders, not one path")
    paths = []
    for p in parts:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"parts: expected paths, not {type(p).__name__}")
        paths.append(os.fspath(p))
    if not paths:
        raise ValueError("parts: no index given")
    return json.loads(_lookalike.merge(os.fspath(out), paths))


Settings = Tuple[Optional[str], Optional[str], bool]


class Part:
    """One index part of a fan-out check, open for its stages (see the
    module docstring). ``path`` is the index folder; ``device`` as
    :class:`Index` takes it (the part's hash scans may run on it). Each
    stage takes and returns ``bytes``; bytes that are not the message a
    stage takes raise :class:`LookalikeError` (``"not a lookalike stage-2
    plan message"``, ...)."""

    def __init__(self, path: Union[str, os.PathLike], device: str = "auto") -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a str or os.PathLike, not {type(path).__name__}")
        _quiet_wayland(device)
        self._native = _lookalike.NativePart(os.fspath(path), device)

    @property
    def path(self) -> str:
        """The index folder, as given."""
        return str(self._native.path)

    @property
    def images(self) -> int:
        """How many images the part holds (searchable)."""
        return self._native.images

    @property
    def settings(self) -> Settings:
        """``(decode, embedding_model, keypoints)``: what the parts of one
        check share; ``describe(like=...)`` takes it."""
        return self._native.settings

    def __repr__(self) -> str:
        return f"lookalike.Part({self.path!r}, images={self.images})"

    def stage1(self, request: bytes) -> bytes:
        """Stage 1: this part's first-stage evidence for ``request``."""
        return self._native.stage1(_bytes(request, "request"))

    def stage2(self, request: bytes, plan: bytes) -> bytes:
        """Stage 2: scores this part's share; ``plan``: this part's entry of
        :func:`combine1`'s list."""
        return self._native.stage2(_bytes(request, "request"), _bytes(plan, "plan"))

    def stage3(self, request: bytes, plan: bytes) -> bytes:
        """Stage 3: this part's near copies of the matched candidates;
        ``plan``: this part's entry of :func:`combine2`'s list."""
        return self._native.stage3(_bytes(request, "request"), _bytes(plan, "plan"))


def _bytes(b: Any, what: str) -> bytes:
    if isinstance(b, (bytearray, memoryview)):
        return bytes(b)
    if not isinstance(b, bytes):
        raise TypeError(f"{what}: expected bytes, not {type(b).__name__}")
    return b


def _bytes_list(bs: Any, what: str) -> List[bytes]:
    if not isinstance(bs, (list, tuple)):
        raise TypeError(f"{what}: expected a list of bytes (one per part, in part order)")
    return [_bytes(b, what) for b in bs]


def describe(
    images: Any,
    like: Union[Part, Settings],
    k: int = 10,
    *,
    hash_only: bool = False,
    verify: bool = True,
    names: Optional[Sequence[str]] = None,
    skip_bad: bool = False,
    total_images: Optional[int] = None,
    device: str = "auto",
) -> bytes:
    """Describes images once for a fan-out check: the request every stage
    takes. ``images``, ``k``, ``hash_only``, ``verify``, ``names`` and
    ``skip_bad`` as :meth:`Index.check` takes them; ``like``: a
    :class:`Part` or its ``settings``. ``total_images``: the parts' images in
    all, when known (a part then skips the record-by-record keypoint scan
    of segments without a keypoint table when the total rules it out; a
    wrong total raises in :func:`combine1`)."""
    settings = like.settings if isinstance(like, Part) else like
    if not (isinstance(settings, tuple) and len(settings) == 3):
        raise TypeError("like: expected a Part or its settings (decode, embedding_model, keypoints)")
    k = _positive_int(k, "k")
    if total_images is not None:
        if isinstance(total_images, bool) or not isinstance(total_images, int) or total_images < 0:
            raise ValueError(f"total_images: expected a count, not {total_images!r}")
    _quiet_wayland(device)
    return _lookalike.describe(
        _items(images, names), settings, k, bool(hash_only), bool(verify),
        bool(skip_bad), total_images, device,
    )


def combine1(request: bytes, stage1: Sequence[bytes]) -> Tuple[bytes, List[bytes]]:
    """Combines the parts' stage-1 answers (in part order): returns the
    driver's state and each part's stage-2 plan (in part order)."""
    return _lookalike.combine1(_bytes(request, "request"), _bytes_list(stage1, "stage1"))


def combine2(request: bytes, state: bytes, stage2: Sequence[bytes]) -> Tuple[bytes, List[bytes]]:
    """Combines the parts' stage-2 answers (in part order) with
    :func:`combine1`'s state: returns the driver's new state and each
    part's stage-3 plan (in part order)."""
    return _lookalike.combine2(
        _bytes(request, "request"), _bytes(state, "state"), _bytes_list(stage2, "stage2")
    )


def report(
    request: bytes,
    state: bytes,
    stage3: Sequence[bytes],
    *,
    index: str = "parts",
    min_score: Optional[float] = None,
) -> Dict[str, Any]:
    """The report of a fan-out check from :func:`combine2`'s state and the
    parts' stage-3 answers (in part order): what :meth:`Index.check`
    returns on the merged index, with ``index`` as given. ``min_score`` as
    ``Index.check`` takes it."""
    text = _lookalike.report(
        _bytes(request, "request"), _bytes(state, "state"), _bytes_list(stage3, "stage3"),
        str(index), None if min_score is None else float(min_score),
    )
    return json.loads(text)


def check_parts(
    parts: Sequence[Union[str, os.PathLike, Part]],
    images: Any,
    k: int = 10,
    *,
    hash_only: bool = False,
    verify: bool = True,
    min_score: Optional[float] = None,
    names: Optional[Sequence[str]] = None,
    skip_bad: bool = False,
    index: Optional[str] = None,
    device: str = "auto",
) -> Dict[str, Any]:
    """Checks images against index parts (folders or :class:`Part`\ s, in
    merge order), every stage in this process: the report
    :meth:`Index.check` gives on the merged index. ``index`` names the
    parts in the report (default: their folders joined by ``+``); the other
    arguments as ``Index.check`` takes them."""
    if isinstance(parts, (str, os.PathLike, Part)) or not isinstance(parts, (list, tuple)):
        raise TypeError("parts: expected a list of index folders or Parts")
    if not parts:
        raise ValueError("parts: a check needs at least one index part")
    opened = [p if isinstance(p, Part) else Part(p, device) for p in parts]
    like = next((p for p in opened if p._native.segments > 0), opened[0])
    request = describe(
        images, like, k, hash_only=hash_only, verify=verify, names=names,
        skip_bad=skip_bad, total_images=sum(p.images for p in opened), device=device,
    )
    s1 = [p.stage1(request) for p in opened]
    state, plans = combine1(request, s1)
    s2 = [p.stage2(request, plan) for p, plan in zip(opened, plans)]
    state, plans = combine2(request, state, s2)
    s3 = [p.stage3(request, plan) for p, plan in zip(opened, plans)]
    label = index if index is not None else "+".join(p.path for p in opened)
    return report(request, state, s3, index=label, min_score=min_score)

# Type stubs of the native module (python/src/lib.rs). Use the wrappers in
# lookalike/__init__.py; these take pre-tagged inputs and return JSON text.
from os import PathLike
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

__version__: str
EMBEDDING_MODEL: str

class LookalikeError(Exception):
    """An error of the lookalike library, with the message the CLI prints."""

Item = Tuple[Any, ...]  # ("path", p) | ("bytes", name, data) | ("pixels", name, w, h, c, data)

class NativeIndex:
    def __init__(self, path: Union[str, PathLike[str]], device: str = "auto") -> None: ...
    @property
    def path(self) -> Path: ...
    @property
    def images(self) -> int: ...
    @property
    def decode(self) -> Optional[str]: ...
    @property
    def embedding_model(self) -> Optional[str]: ...
    @property
    def keypoints(self) -> bool: ...
    @property
    def profile(self) -> str: ...
    def content_digest(self) -> str: ...
    def check(
        self,
        items: List[Item],
        k: int = 10,
        hash_only: bool = False,
        verify: bool = True,
        min_score: Optional[float] = None,
        skip_bad: bool = False,
        progress: Optional[Callable[[int, int], Any]] = None,
        regions: bool = True,
    ) -> str: ...

class NativePart:
    def __init__(self, path: Union[str, PathLike[str]], device: str = "auto") -> None: ...
    @property
    def path(self) -> Path: ...
    @property
    def images(self) -> int: ...
    @property
    def segments(self) -> int: ...
    @property
    def settings(self) -> Tuple[Optional[str], Optional[str], bool]: ...
    def stage1(self, request: bytes) -> bytes: ...
    def stage2(self, request: bytes, plan: bytes) -> bytes: ...
    def stage3(self, request: bytes, plan: bytes) -> bytes: ...

def describe(
    items: List[Item],
    settings: Tuple[Optional[str], Optional[str], bool],
    k: int = 10,
    hash_only: bool = False,
    verify: bool = True,
    skip_bad: bool = False,
    total_images: Optional[int] = None,
    device: str = "auto",
    regions: bool = True,
) -> bytes: ...
def combine1(request: bytes, stage1: List[bytes]) -> Tuple[bytes, List[bytes]]: ...
def combine2(request: bytes, state: bytes, stage2: List[bytes]) -> Tuple[bytes, List[bytes]]: ...
def report(
    request: bytes,
    state: bytes,
    stage3: List[bytes],
    index: str,
    min_score: Optional[float] = None,
) -> str: ...

def hash(
    items: List[Item],
    fast: bool = False,
    thumb_side: Optional[int] = None,
    skip_bad: bool = False,
) -> str: ...

def build(
    index: Union[str, PathLike[str]],
    sources: Sequence[Union[str, PathLike[str]]],
    hash_only: bool = False,
    keypoints: bool = True,
    keep_missing: bool = False,
    exact: bool = False,
    thumb_side: Optional[int] = None,
    max_pixels: int = 128000000,
    max_mib: int = 256,
    allow_empty: bool = False,
    device: str = "auto",
    progress: Optional[Callable[[int, int], Any]] = None,
    profile: Optional[str] = None,
) -> str: ...

def merge(
    out: Union[str, PathLike[str]],
    parts: Sequence[Union[str, PathLike[str]]],
) -> str: ...

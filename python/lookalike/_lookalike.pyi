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
) -> str: ...

def merge(
    out: Union[str, PathLike[str]],
    parts: Sequence[Union[str, PathLike[str]]],
) -> str: ...

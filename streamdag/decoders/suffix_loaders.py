"""load_from_bz2 / load_from_xz: torchdata's ``Bz2FileLoader`` and
``XzFileLoader``: (path, stream) -> (path without the suffix, decompressed
stream), through streamdag's checked, streaming decompression.

torchdata strips the suffix with ``str.rstrip`` (a set of characters, so
"lab.bz2" became "la"): here exactly the suffix is removed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from ..core.policy import SKIP, not_skipped
from ..core.streams import as_stream, close_quietly
from ..runtime.node import RuntimeNode
from ..runtime.policy import ErrorPolicy
from .compression import decompressed


class SuffixLoaderNode(ErrorPolicy, RuntimeNode):
    """Stateless: the reader downstream owns the position."""

    FORMAT: ClassVar[str]
    SUFFIX: ClassVar[str]

    def iterator(self) -> Iterator[tuple[str, Any]]:
        return filter(not_skipped, map(self._open, self.inputs[0].iterator()))

    def _open(self, item: Any) -> Any:
        if type(item) is not tuple or len(item) != 2 or not isinstance(item[0], str):
            msg = f"{self.spec.op} expects (path, binary stream) pairs, got {type(item).__name__}"
            self.reraise(TypeError(msg), f"element {str(item)[:80]!r}")
        path, stream = item
        try:
            out = decompressed(
                as_stream(stream),
                None,
                self.FORMAT,
                lambda exc, where: self.fail(exc, f"{path!r} {where}"),
            )
        except Exception as exc:
            close_quietly(stream)
            self.fail(exc, repr(path))
            return SKIP
        return path.removesuffix(self.SUFFIX), out


class Bz2LoaderNode(SuffixLoaderNode):
    FORMAT = "bz2"
    SUFFIX = ".bz2"


class XzLoaderNode(SuffixLoaderNode):
    FORMAT = "xz"
    SUFFIX = ".xz"

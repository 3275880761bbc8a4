"""extract: torchdata's ``Extractor`` (an alias of its ``Decompressor``):
(path, stream) -> (path, the stream opened by its format).

The format is ``file_type`` or the path's suffix, as torchdata reads it:
``.tar``, ``.tar.gz`` and ``.tar.xz`` give a ``tarfile.TarFile``, ``.zip`` a
``zipfile.ZipFile``, ``.gz``/``.xz``/``.bz2`` a decompressed stream
(streamdag's checked decompression); another suffix is an error."""

from __future__ import annotations

import os
import pathlib
import tarfile
import zipfile
from collections.abc import Iterator
from typing import Any

from ..core.policy import SKIP, not_skipped
from ..core.streams import as_stream, close_quietly
from ..runtime.node import RuntimeNode
from ..runtime.policy import ErrorPolicy
from .compression import decompressed

#: torchdata's ``CompressionType`` values -> streamdag's compression formats
STREAM_TYPES = {"gzip": "gz", "lzma": "xz", "bz2": "bz2"}
_BY_SUFFIX = {".tar": "tar", ".xz": "lzma", ".gz": "gzip", ".zip": "zip", ".bz2": "bz2"}


def extract_type(path: str) -> str:
    """The format torchdata's suffix rules give ``path``."""
    if "".join(pathlib.Path(path).suffixes) in (".tar.gz", ".tar.xz"):
        return "tar"
    ext = os.path.splitext(path)[1]
    try:
        return _BY_SUFFIX[ext]
    except KeyError:
        msg = (
            f"file at {path} has file extension {ext!r}, which extract does not "
            f"support (tar, tar.gz, tar.xz, zip, gz, xz, bz2): pass file_type="
        )
        raise RuntimeError(msg) from None


class ExtractNode(ErrorPolicy, RuntimeNode):
    """Stateless (one opened stream per input); the consumer reads it."""

    def iterator(self) -> Iterator[tuple[str, Any]]:
        return filter(not_skipped, map(self._open, self.inputs[0].iterator()))

    def _open(self, item: Any) -> Any:
        if type(item) is not tuple or len(item) != 2:
            msg = f"extract expects (path, stream) pairs, got {type(item).__name__}"
            self.reraise(TypeError(msg), f"element {str(item)[:80]!r}")
        path, stream = item
        try:
            kind = self.params["file_type"] or extract_type(path)
            stream = as_stream(stream)
            if kind == "tar":
                return path, tarfile.open(fileobj=stream, mode="r:*")
            if kind == "zip":
                return path, zipfile.ZipFile(stream)
            return path, decompressed(
                stream,
                None,
                STREAM_TYPES[kind],
                lambda exc, where: self.fail(exc, f"{path!r} {where}"),
            )
        except Exception as exc:
            close_quietly(stream)
            self.fail(exc, repr(path))
            return SKIP

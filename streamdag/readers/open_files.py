"""open_files: paths -> (path, open stream), on any fsspec filesystem.

Streams are opened lazily, one per element, and never read here: a reader
downstream consumes them as it goes, so a file larger than memory streams
through. The reader that consumes a stream closes it; the node closes the
last one it opened when the epoch is torn down."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from ..core.policy import SKIP, not_skipped
from ..core.streams import close_quietly, open_local
from ..runtime.node import RuntimeNode
from ..runtime.policy import ErrorPolicy

PARAMS = ("mode", "encoding", "storage_options", "on_error", "kwargs_for_open")


def open_stream(
    path: str,
    mode: str = "r",
    encoding: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    kwargs_for_open: Mapping[str, Any] | None = None,
) -> Any:
    """An open file object: the builtin ``open`` for local paths (fastest
    reads), fsspec for URLs and wherever ``kwargs_for_open`` (``fs.open``'s
    keyword arguments, as torchdata's FSSpecFileOpener) are given; text
    unless ``mode`` has a "b"."""
    if not kwargs_for_open and "://" not in path and "::" not in path:
        return open_local(path, mode, encoding)
    from fsspec.core import url_to_fs

    fs, inner = url_to_fs(path, **(storage_options or {}))
    text = {} if "b" in mode or encoding is None else {"encoding": encoding}
    return fs.open(inner, "rb" if "b" in mode else "rt", **text, **(kwargs_for_open or {}))


class OpenFilesNode(ErrorPolicy, RuntimeNode):
    """Stateless: its state is its input's (a resume re-opens the file and
    the reader downstream seeks or skips to its position)."""

    def setup(self) -> None:
        p = self.params
        self._open = partial(
            open_stream,
            mode=p["mode"],
            encoding=p["encoding"],
            storage_options=p["storage_options"],
            kwargs_for_open=p.get("kwargs_for_open"),  # open_files_retrying takes none
        )
        self._last: Any = None

    def iterator(self) -> Iterator[tuple[str, Any]]:
        return filter(not_skipped, map(self._pair, self.inputs[0].iterator()))

    def _pair(self, path: Any) -> Any:
        if not isinstance(path, str):
            if not isinstance(path, os.PathLike):
                msg = f"open_files expects paths (str), got {type(path).__name__}"
                self.reraise(TypeError(msg), f"element {str(path)[:80]!r}")
            path = os.fspath(path)
        try:
            self._last = stream = self._open(path)
        except Exception as exc:
            self.fail(exc, repr(path))
            return SKIP
        return path, stream

    def close(self) -> None:
        last, self._last = self._last, None
        if last is not None:
            close_quietly(last)

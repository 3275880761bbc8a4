"""``FileLister``: the source of file paths on any fsspec filesystem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .datapipe import DataPipe, make_node


def FileLister(  # noqa: N802 - torchdata's name
    root: str | Sequence[str] = ".", masks: str | Sequence[str] = "*", recursive: bool = False,
    *, storage_options: Mapping[str, Any] | None = None, name: str | None = None,
) -> DataPipe[str]:
    """Paths of the files under ``root`` (a directory, a file or a glob; a
    local path or any fsspec URL; or a list of them) whose names match one of
    ``masks``, sorted, so every worker and every run agrees on the order.
    ``storage_options`` go to fsspec (credentials, endpoint); ``open_files``
    downstream reuses them unless given its own."""
    params = {"root": root, "masks": masks, "recursive": recursive,
              "storage_options": dict(storage_options) if storage_options else None}
    return DataPipe(make_node("file_lister", params, (), name))

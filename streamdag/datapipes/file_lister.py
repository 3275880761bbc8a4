"""``FileLister``: the source of file paths on any fsspec filesystem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from .datapipe import DataPipe, make_node

T = TypeVar("T")


def FileLister(  # noqa: N802 - torchdata's name
    root: str | Sequence[str] | DataPipe[str] = ".",
    masks: str | Sequence[str] = "*",
    recursive: bool = False,
    *,
    abspath: bool = False,
    non_deterministic: bool = False,
    length: int = -1,
    storage_options: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> DataPipe[str]:
    """Paths of the files under ``root`` (a directory, a file or a glob; a
    local path or any fsspec URL; or a list of them) whose names match one of
    ``masks`` ("" or "*": all), in torchdata's order: a directory's files
    sorted by name, then its subdirectories (``recursive``), sorted, depth
    first; roots in the order given (a DataPipe of roots: ``list_files``). So every worker and every run agrees, and
    a port from torchdata reads the same files in the same order. Local paths
    keep the form of the root (relative stays relative unless ``abspath``).
    ``non_deterministic`` is accepted for torchdata's signature: the order is
    always this one. ``storage_options`` go to fsspec (credentials,
    endpoint); ``open_files`` downstream reuses them unless given its own.
    ``length`` (torchdata's): the pipe's ``len()``; -1: unknown (TypeError)."""
    del non_deterministic
    if isinstance(root, DataPipe):  # torchdata's FileLister(datapipe_of_roots)
        listed = root.list_files(
            masks, recursive=recursive, abspath=abspath, storage_options=storage_options, name=name
        )
        return with_length(listed, length)
    params = {
        "root": root,
        "masks": masks,
        "recursive": recursive,
        "storage_options": dict(storage_options) if storage_options else None,
        "abspath": abspath,
    }
    return with_length(DataPipe(make_node("file_lister", params, (), name)), length)


def with_length(pipe: DataPipe[T], length: int) -> DataPipe[T]:
    """torchdata's ``length`` argument of its readers: ``len(pipe)`` = ``length``
    (nothing is cut); -1, their default: unknown."""
    return pipe if length == -1 else pipe.set_length(length)

"""FileLister: the source node over file paths on any fsspec filesystem."""

from __future__ import annotations

import fnmatch
import posixpath
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from ..errors import NodeError
from ..runtime.sequence import SequenceSource
from .retry import RetryPolicy, make_fs, retry_transient

_GLOB_CHARS = frozenset("*?[")


def _strings(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def list_files(roots: list[str], masks: list[str], recursive: bool,
               storage_options: Mapping[str, Any] | None,
               on_retry: Callable[[], None] = lambda: None) -> list[str]:
    """The matching files of each root, sorted within the root; local files
    as plain paths, others as URLs with their protocol. A remote listing is
    retried on transient failures (``RetryPolicy``'s defaults), through the
    filesystem ``open_files(retry=True)`` reads with: one client per process."""
    from fsspec.implementations.local import LocalFileSystem

    out: list[str] = []
    for root in roots:
        fs, path = make_fs(root, storage_options)
        if isinstance(fs, LocalFileSystem):
            out.extend(sorted(_matching(fs, root, path, masks, recursive)))
            continue
        found = retry_transient(partial(_matching, fs, root, path, masks, recursive), root,
                                RetryPolicy(), rng=random.Random(), on_retry=on_retry)
        out.extend(fs.unstrip_protocol(p) for p in sorted(found))
    return out


def _matching(fs: Any, root: str, path: str, masks: list[str], recursive: bool) -> set[str]:
    found: set[str] = set()
    if _GLOB_CHARS.intersection(path):
        for top in fs.glob(path, **_raise_errors(fs, s3_lists_flat=True)):
            found.update(_files_under(fs, top, masks, recursive))
    else:
        try:
            found.update(_files_under(fs, path, masks, recursive))
        except FileNotFoundError:
            pass
        if not found and not fs.exists(path):
            raise FileNotFoundError(f"no such file or directory: {root!r}")
    return found


def _files_under(fs: Any, top: str, masks: list[str], recursive: bool) -> list[str]:
    """A directory's files that match a mask, or ``top`` itself, whatever its
    name, if it is a file. One listing: on an object store, asking first
    whether ``top`` exists and is a directory costs two more round trips."""
    files = fs.find(top, maxdepth=None if recursive else 1,
                    **_raise_errors(fs, s3_lists_flat=recursive))
    if files == [top]:
        return files
    return [p for p in files if any(fnmatch.fnmatch(posixpath.basename(p), m) for m in masks)]


def _raise_errors(fs: Any, s3_lists_flat: bool) -> dict[str, str]:
    """``find``/``glob`` options that make a failed listing raise, not read
    as an empty folder (fsspec's walk omits errors by default). Where s3fs
    lists flat (a whole tree, or a glob's prefix) it raises by itself and
    takes no ``on_error``."""
    s3fs = sys.modules.get("s3fs")
    flat = s3_lists_flat and s3fs is not None and isinstance(fs, s3fs.S3FileSystem)
    return {} if flat else {"on_error": "raise"}


class FileListerNode(SequenceSource):
    """Lists at the start of each epoch, in each worker; state: how many
    paths were yielded (a resume expects the same listing). ``stats()``
    counts the listing's retried failures."""

    def setup(self) -> None:
        super().setup()
        self._retries = 0

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "retries": self._retries}

    def _count_retry(self) -> None:
        self._retries += 1

    def iterator(self) -> Iterator[str]:
        p = self.params
        try:
            paths = list_files(_strings(p["root"]),
                               _strings(p["masks"]),
                               p["recursive"], p["storage_options"], self._count_retry)
        except Exception as exc:
            msg = f"{self.label} cannot list {p['root']!r}: {type(exc).__name__}: {exc}"
            raise NodeError(msg, op=self.spec.op, name=self.spec.name,
                            node_id=self.spec.id) from exc
        return self.iterate_sequence(paths)

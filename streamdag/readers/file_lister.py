"""FileLister: the source node over file paths on any fsspec filesystem."""

from __future__ import annotations

import fnmatch
import posixpath
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from ..core.params import check_bool
from ..core.registry import register_op
from ..errors import NodeError, ParamError
from ..transforms.iterable_wrapper import SequenceSource
from .retrying import RetryPolicy, make_fs, retry_transient

if TYPE_CHECKING:
    from ..datapipes.datapipe import DataPipe

_GLOB_CHARS = frozenset("*?[")


def FileLister(  # noqa: N802 - torchdata's name
    root: str | Sequence[str] = ".", masks: str | Sequence[str] = "*", recursive: bool = False,
    *, storage_options: Mapping[str, Any] | None = None, name: str | None = None,
) -> DataPipe[str]:
    """Paths of the files under ``root`` (a directory, a file or a glob; a
    local path or any fsspec URL; or a list of them) whose names match one of
    ``masks``, sorted, so every worker and every run agrees on the order.
    ``storage_options`` go to fsspec (credentials, endpoint); ``open_files``
    downstream reuses them unless given its own."""
    from ..datapipes.datapipe import DataPipe, make_node

    params = {"root": root, "masks": masks, "recursive": recursive,
              "storage_options": dict(storage_options) if storage_options else None}
    return DataPipe(make_node("file_lister", params, (), name))


def lister_options(node: Any) -> Mapping[str, Any] | None:
    """The storage_options of the FileLister a pipe reads from, through
    single-input nodes (shuffle, sharding_filter, ...): what ``open_files``
    uses unless given its own."""
    while node.inputs:
        if len(node.inputs) != 1:
            return None
        node = node.inputs[0]
    return node.params.get("storage_options") if node.op == "file_lister" else None


def _strings(op: str, key: str, value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not values or not all(
            isinstance(v, str) for v in values):
        raise ParamError(f"{op}: {key} must be a str or a non-empty list of str, got {value!r}")
    return list(values)


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


@register_op("file_lister", inputs=0,
             params=("root", "masks", "recursive", "storage_options"))
class FileListerNode(SequenceSource):
    """Lists at the start of each epoch, in each worker; state: how many
    paths were yielded (a resume expects the same listing). ``stats()``
    counts the listing's retried failures."""

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        _strings("file_lister", "root", params.get("root"))
        _strings("file_lister", "masks", params.get("masks"))
        check_bool("file_lister", "recursive", params.get("recursive"))
        options = params.get("storage_options")
        if options is not None and not isinstance(options, Mapping):
            raise ParamError(f"file_lister: storage_options must be a dict, got {options!r}")

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
            paths = list_files(_strings("file_lister", "root", p["root"]),
                               _strings("file_lister", "masks", p["masks"]),
                               p["recursive"], p.get("storage_options"), self._count_retry)
        except Exception as exc:
            msg = f"{self.label} cannot list {p['root']!r}: {type(exc).__name__}: {exc}"
            raise NodeError(msg, op=self.spec.op, name=self.spec.name,
                            node_id=self.spec.id) from exc
        return self.iterate_sequence(paths)

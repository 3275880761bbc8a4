"""FileLister: the source node over file paths on any fsspec filesystem."""

from __future__ import annotations

import fnmatch
import glob
import os
import posixpath
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from ..errors import NodeError
from ..runtime.counting import position_of
from ..runtime.sequence import SequenceSource
from .expand import ExpandingNode
from .retry import RetryPolicy, make_fs, retry_transient

_GLOB_CHARS = frozenset("*?[")


def _strings(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def matches(name: str, masks: list[str]) -> bool:
    """Does a file name match one of ``masks``? No mask (torchdata's "")
    matches every name."""
    masks = [m for m in masks if m]
    return not masks or any(fnmatch.fnmatch(name, m) for m in masks)


def list_files(
    roots: list[str],
    masks: list[str],
    recursive: bool,
    storage_options: Mapping[str, Any] | None,
    on_retry: Callable[[], None] = lambda: None,
    abspath: bool = False,
) -> list[str]:
    """The matching files of each root, in torchdata's order: a directory's
    files sorted by name, then its subdirectories, sorted, depth first.
    Local roots are walked as given (a relative root gives relative paths,
    absolute ones with ``abspath``); others come back as URLs with their
    protocol. A remote listing is retried on transient failures
    (``RetryPolicy``'s defaults), through the filesystem ``open_files(retry=True)``
    reads with: one client per process."""
    out: list[str] = []
    for root in roots:
        if "://" not in root and "::" not in root:
            out.extend(_local(root, masks, recursive, abspath))
            continue
        # here, not at the top: fsspec costs 0.1-0.4 s to import, in every
        # worker process, which local roots never need
        from fsspec.implementations.local import LocalFileSystem

        fs, path = make_fs(root, storage_options)
        if isinstance(fs, LocalFileSystem):
            out.extend(_local(path, masks, recursive, abspath))
            continue
        found = retry_transient(
            partial(_matching, fs, root, path, masks, recursive),
            root,
            RetryPolicy(),
            rng=random.Random(),
            on_retry=on_retry,
        )
        out.extend(fs.unstrip_protocol(p) for p in found)
    return out


def _local(root: str, masks: list[str], recursive: bool, abspath: bool) -> Iterator[str]:
    """A local root (a file, a directory or a glob) walked as torchdata walks it."""
    if _GLOB_CHARS.intersection(root) and not os.path.exists(root):
        for top in sorted(glob.glob(root)):
            yield from _walk(top, masks, recursive, abspath)
    elif not os.path.exists(root):
        raise FileNotFoundError(f"no such file or directory: {root!r}")
    else:
        yield from _walk(root, masks, recursive, abspath)


def _walk(top: str, masks: list[str], recursive: bool, abspath: bool) -> Iterator[str]:
    """A file named as a root is taken whatever its name; a directory's
    files matching a mask come first, then its subdirectories."""
    if os.path.isfile(top):
        yield os.path.abspath(top) if abspath else top
        return
    for path, dirs, files in os.walk(top, onerror=_raise):
        if abspath:
            path = os.path.abspath(path)
        yield from (os.path.join(path, f) for f in sorted(files) if matches(f, masks))
        if not recursive:
            break
        dirs.sort()  # in place: os.walk descends in this order


def _raise(error: OSError) -> None:
    raise error


def _matching(fs: Any, root: str, path: str, masks: list[str], recursive: bool) -> list[str]:
    if _GLOB_CHARS.intersection(path):  # the matches in sorted order, each listed as a root
        tops = sorted(fs.glob(path, **_raise_errors(fs, s3_lists_flat=True)))
        return list(dict.fromkeys(p for top in tops for p in _listed(fs, top, masks, recursive)))
    try:
        found = _listed(fs, path, masks, recursive)
    except FileNotFoundError:
        found = []
    if not found and not fs.exists(path):
        raise FileNotFoundError(f"no such file or directory: {root!r}")
    return found


def _listed(fs: Any, top: str, masks: list[str], recursive: bool) -> list[str]:
    return sorted(_files_under(fs, top, masks, recursive), key=partial(_walk_order, top))


def _walk_order(top: str, path: str) -> list[tuple[int, str]]:
    """The sort key of ``path`` under ``top`` that gives os.walk's order in
    torchdata: at each level, files (0) before directories (1), by name."""
    parts = path[len(top.rstrip("/")) :].strip("/").split("/")
    return [(1, d) for d in parts[:-1]] + [(0, parts[-1])]


def _files_under(fs: Any, top: str, masks: list[str], recursive: bool) -> list[str]:
    """A directory's files that match a mask, or ``top`` itself, whatever its
    name, if it is a file. One listing: on an object store, asking first
    whether ``top`` exists and is a directory costs two more round trips."""
    files = fs.find(
        top, maxdepth=None if recursive else 1, **_raise_errors(fs, s3_lists_flat=recursive)
    )
    if files == [top]:
        return files
    return [p for p in files if matches(posixpath.basename(p), masks)]


def _raise_errors(fs: Any, s3_lists_flat: bool) -> dict[str, str]:
    """``find``/``glob`` options that make a failed listing raise, not read
    as an empty folder (fsspec's walk omits errors by default). Where s3fs
    lists flat (a whole tree, or a glob's prefix) it raises by itself and
    takes no ``on_error``."""
    s3fs = sys.modules.get("s3fs")
    flat = s3_lists_flat and s3fs is not None and isinstance(fs, s3fs.S3FileSystem)
    return {} if flat else {"on_error": "raise"}


class CountsRetries:
    """Mixin: ``stats()`` counts the listing's retried failures."""

    def setup(self) -> None:
        super().setup()  # type: ignore[misc]
        self._retries = 0

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "retries": self._retries}  # type: ignore[misc]

    def _count_retry(self) -> None:
        self._retries += 1


class FileListerNode(CountsRetries, SequenceSource):
    """Lists at the start of each epoch, in each worker; state: how many
    paths were yielded (a resume expects the same listing)."""

    def iterator(self) -> Iterator[str]:
        p = self.params
        try:
            paths = list_files(
                _strings(p["root"]),
                _strings(p["masks"]),
                p["recursive"],
                p["storage_options"],
                self._count_retry,
                p["abspath"],
            )
        except Exception as exc:
            msg = f"{self.label} cannot list {p['root']!r}: {type(exc).__name__}: {exc}"
            raise NodeError(
                msg, op=self.spec.op, name=self.spec.name, node_id=self.spec.id
            ) from exc
        return self.iterate_sequence(paths)


class ListFilesNode(CountsRetries, ExpandingNode):
    """``list_files``: each input root (a path or URL) -> the files under it,
    listed as FileLister lists them. State: the input's state before the
    current root and the files yielded of it (a resume lists the root again
    and expects the same listing). A root that cannot be listed is bad input."""

    def expand(self, item: Any, at: Any) -> Iterator[str]:
        if not isinstance(item, (str, os.PathLike)):
            msg = f"list_files expects paths (str), got {type(item).__name__}"
            self.reraise(TypeError(msg), f"element {str(item)[:80]!r}")
        p = self.params
        paths = list_files(
            [os.fspath(item)],
            _strings(p["masks"]),
            p["recursive"],
            p["storage_options"],
            self._count_retry,
            p["abspath"],
        )
        self._listing = it = iter(paths)
        if at:
            it.__setstate__(at)
        self._pos = partial(position_of, it, len(paths))
        return it

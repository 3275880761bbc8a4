"""load_from_zip: (path, stream) -> (member path, bytes or stream).

A zip archive's index is at its end, so the stream must be seekable; a
non-seekable one (an HTTP stream) is first spooled to a temporary file
(in memory up to 64 MiB). State: the index of the next member in the
archive's central directory; a resume re-opens the archive and starts there."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from typing import Any

from ..core.streams import CHUNK, MemberPath, close_quietly
from .expand import ExpandingNode

SPOOL_MAX = 64 << 20


def seekable_copy(stream: Any) -> Any:
    """``stream`` itself if it can seek, else a spooled copy of it."""
    try:
        if stream.seekable():
            return stream
    except (AttributeError, ValueError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX)
    while chunk := stream.read(CHUNK):
        spool.write(chunk)
    spool.seek(0)
    return spool


class LoadFromZipNode(ExpandingNode):
    """Elements: ``(archive/member, bytes)`` for files in directory order
    (``streams=True``: an open member stream instead). A member that fails
    its CRC check is bad input on its own (the archive goes on); an archive
    that cannot be opened (truncated, empty, not a zip) is bad input as a whole."""

    def expand(self, item: Any, at: Any) -> Iterator[Any]:
        path, stream = self.split(item, binary=True)
        self._path = path
        archive = zipfile.ZipFile(seekable_copy(stream))
        self._index = at or 0
        self._pos = self._position
        return self._members(path, archive)

    def _position(self) -> int:
        return self._index

    def _members(self, path: str, archive: zipfile.ZipFile) -> Iterator[tuple[MemberPath, Any]]:
        as_streams = self.params["streams"]
        infos = archive.infolist()
        try:
            while self._index < len(infos):
                info = infos[self._index]
                self._index += 1
                if info.is_dir():
                    continue
                try:
                    data = archive.open(info) if as_streams else archive.read(info)
                except Exception as exc:  # CRC mismatch, bad deflate data: this member only
                    self.fail(exc, f"{path!r} member {info.filename!r}")
                    self.dropped(path, info.filename)
                    continue
                yield MemberPath(path, info.filename), data
        finally:
            close_quietly(archive)

    def where(self, item: Any) -> str:
        if self._pos is None:
            return super().where(item)
        return f"{self._path!r} member #{self._index}"

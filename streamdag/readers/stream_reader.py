"""read_from_stream: (path, stream) -> (path, chunk) for each ``chunk`` bytes
(characters for a text stream) read, or one (path, everything) with
``chunk=None``, as torchdata's StreamReader. State: the input's state before
the current stream and how much of it was read; a resume re-opens the stream
and seeks (or reads) that far."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..core.streams import is_text, skip_bytes
from .expand import ExpandingNode


class StreamReaderNode(ExpandingNode):
    def expand(self, item: Any, at: Any) -> Iterator[tuple[Any, Any]]:
        path, stream = self.split(item)
        self._done = at or 0
        if self._done:
            if is_text(stream):
                stream.read(self._done)
            else:
                skip_bytes(stream, self._done)
        self._pos = self._position
        return self._chunks(path, stream, self.params["chunk"])

    def _chunks(self, path: Any, stream: Any, chunk: int | None) -> Iterator[tuple[Any, Any]]:
        while data := stream.read(chunk):
            self._done += len(data)
            yield path, data

    def _position(self) -> int:
        return self._done

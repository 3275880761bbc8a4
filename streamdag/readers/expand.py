"""The shape most readers share: each input element (a file, an archive, a
run of the reader) expands into many outputs (members, lines, rows).

State is two positions: the input's state *before* the current element and a
position inside it (members read and the byte offset of the next header, lines
read, ...). A resume restores the input, pulls the same element again,
re-opens it and seeks or skips to the position; nothing read is copied into
the state. Per output element the only work besides the reader's own is one
``yield from`` step; errors are handled where they happen, not checked for."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..core.streams import as_stream, close_quietly, is_text, text_stream_error
from ..errors import StreamdagError
from ..runtime.node import ResumableNode
from ..runtime.policy import ErrorPolicy

#: the "input state" of a source reader whose run has ended: a batch that
#: pulled its last output must not resume it from the start
_RAN = "ran"


class ExpandingNode(ErrorPolicy, ResumableNode):
    """Subclasses implement ``expand(item, at)``: an iterator over the outputs
    of ``item`` starting at position ``at`` (None: the start), setting
    ``self._pos`` to a callable that returns the current position.

    An exception from ``expand`` or from the iterator is bad input: the error
    policy decides. Then ``recover(exc)`` gives the iterator to go on with
    (after a bad line), or None to abandon the element (a truncated archive),
    which is noted in ``graph.dropped`` for the nodes grouping its outputs.
    A ``StreamCut`` (the input stream was cut upstream, and counted there)
    abandons the element whatever the policy. Errors already attributed
    (StreamdagError) pass through."""

    def setup(self) -> None:
        super().setup()
        self._items_in = 0  # statistics: input elements expanded, bytes read
        self._bytes_done = 0

    def counted(self) -> tuple[int | None, int | None]:
        return (self._items_in if self.inputs else None), None

    def stats(self) -> dict[str, int]:
        current = getattr(self, "_item", None)
        return {**super().stats(), "bytes": self._bytes_done + bytes_read(current)}

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self._pos: Callable[[], Any] | None = None
        self._pending = restored["at"] if restored else None
        if self.inputs:
            source = self.inputs[0]
            items = source.iterator()  # first: a finished input's state is its end
            self._in = restored["in"] if restored else source.state()
            return self._run(items, source.state)
        self._in = restored["in"] if restored else None
        return self._run(iter(() if self._in == _RAN else (None,)), None)

    def _run(self, items: Iterator[Any], source_state: Callable[[], Any] | None) -> Iterator[Any]:
        for item in items:
            at, self._pending = self._pending, None
            self._item = item
            self._items_in += 1
            try:
                try:
                    part: Iterator[Any] | None = self.expand(item, at)
                except StreamdagError:
                    raise
                except Exception as exc:
                    self.fail(exc, self.where(item))
                    self.dropped(path_of(item))
                    part = None
                while part is not None:
                    self._part = part
                    try:
                        yield from part
                        part = None
                    except StreamdagError:
                        raise
                    except Exception as exc:
                        self.fail(exc, self.where(item))
                        part = self.recover(exc)
                        if part is None:
                            self.dropped(path_of(item), self.damaged_member())
            finally:  # also when the consumer drops the iterator: the position stays
                self._release()
            self._pos = None
            self._in = source_state() if source_state is not None else _RAN

    def _release(self) -> None:
        part, self._part = getattr(self, "_part", None), None
        item, self._item = getattr(self, "_item", None), None
        close = getattr(part, "close", None)
        if close is not None:
            close()
        if item is not None:
            self._bytes_done += bytes_read(item)
            self.finish(item)

    def close(self) -> None:
        """The epoch is torn down: release the current element's stream now,
        not whenever the garbage collector gets to it (possibly in another thread)."""
        self._release()

    def expand(self, item: Any, at: Any) -> Iterator[Any]:
        raise NotImplementedError

    def recover(self, exc: BaseException) -> Iterator[Any] | None:
        """The rest of the current element after the bad input ``exc``, or
        None if the element cannot go on."""
        return None

    def damaged_member(self) -> str | None:
        """The member whose data was being read when the current element was
        abandoned (None: none, or not an archive)."""
        return None

    def where(self, item: Any) -> str:
        """The element (and position in it) for error messages."""
        return repr(path_of(item))

    def finish(self, item: Any) -> None:
        """The element is done (or abandoned): close its stream."""
        if type(item) is tuple and len(item) == 2:
            close_quietly(item[1])

    def split(self, item: Any, binary: bool = False) -> tuple[str, Any]:
        """``(path, stream or bytes)`` -> (path, stream). Another shape, or a
        text stream where ``binary`` bytes are needed, is a wiring mistake,
        not bad data: it raises whatever the policy."""
        if type(item) is not tuple or len(item) != 2:
            msg = (
                f"expects (path, stream) pairs as open_files() yields them, "
                f"got {type(item).__name__}"
            )
            self.reraise(TypeError(msg), f"element {str(item)[:80]!r}")
        if binary and is_text(item[1]):
            self.reraise(text_stream_error(self.spec.op), repr(item[0]))
        return item[0], as_stream(item[1])

    def live_state(self) -> dict:
        return {"in": self._in, "at": self._pending if self._pos is None else self._pos()}

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        if state is not None and self.inputs:
            self.inputs[0].restore(state["in"])


def bytes_read(item: Any) -> int:
    """How far into an input ``(path, stream or bytes)`` the reader has read."""
    if type(item) is not tuple or len(item) != 2:
        return 0
    data = item[1]
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    try:
        return 0 if data.closed else int(data.tell())
    except (AttributeError, OSError, ValueError):  # not seekable: no position to read
        return 0


def path_of(item: Any) -> Any:
    return item[0] if type(item) is tuple and item else item

"""Small helpers shared by the readers: byte streams that can be peeked at,
skipped forward and closed, and the paths of archive members."""

from __future__ import annotations

import io
from typing import Any

CHUNK = 1 << 16
#: ``open_files`` modes, as torchdata takes them: text ("r", "t", "rt") or binary
OPEN_MODES = ("r", "t", "rt", "b", "rb")


def open_local(path: str, mode: str, encoding: str | None) -> Any:
    """A local file opened as ``open_files(mode)`` asks (text: universal newlines)."""
    return open(path, "rb") if "b" in mode else open(path, encoding=encoding)


def in_mode(stream: Any, mode: str, encoding: str | None) -> Any:
    """A binary stream as ``open_files(mode)`` asks: itself, or text over it."""
    return stream if "b" in mode else io.TextIOWrapper(stream, encoding=encoding)


class MemberPath(str):
    """The path of an archive member, ``<archive>/<member>``, that remembers
    both parts: ``webdataset()`` takes ``__url__`` and ``__key__`` from them.
    It is a ``str`` everywhere else."""

    archive: str
    member: str

    def __new__(cls, archive: str, member: str) -> MemberPath:
        self = super().__new__(cls, f"{archive}/{member}")
        self.archive = archive
        self.member = member
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (MemberPath, (self.archive, self.member))


class ReadRaw(io.RawIOBase):
    """A raw stream over any object with ``read(n)``, so it can be buffered."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        close_quietly(self._source)
        super().close()


def is_text(data: Any) -> bool:
    """A text stream (``open_files()``'s default mode), where bytes are needed."""
    return isinstance(data, io.TextIOBase)


def text_stream_error(op: str) -> TypeError:
    return TypeError(
        f"{op} reads bytes but got a text stream: open the files in binary "
        f'mode, open_files(mode="b")'
    )


def as_stream(data: Any) -> Any:
    """Bytes become a BytesIO; anything with ``read`` is returned as is."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(data)
    if hasattr(data, "read"):
        return data
    raise TypeError(f"expected bytes or a binary stream, got {type(data).__name__}")


def peek(stream: Any, n: int) -> tuple[bytes, Any]:
    """The first ``n`` bytes (fewer at end of file) without consuming them,
    and the stream to read from afterwards (a buffered wrapper where the
    stream can neither peek nor seek)."""
    if hasattr(stream, "peek"):
        return stream.peek(n)[:n], stream
    if _seekable(stream):
        pos = stream.tell()
        head = stream.read(n)
        stream.seek(pos)
        return head, stream
    buffered = io.BufferedReader(ReadRaw(stream), CHUNK)
    return buffered.peek(n)[:n], buffered


def skip_bytes(stream: Any, n: int) -> None:
    """Move ``n`` bytes forward: a seek where possible, else read and drop."""
    if n <= 0:
        return
    if _seekable(stream):
        stream.seek(n, io.SEEK_CUR)
        return
    while n > 0:
        got = len(stream.read(min(n, CHUNK)))
        if not got:
            raise EOFError(f"stream ended {n} bytes before the resume position")
        n -= got


def read_exact(stream: Any, n: int) -> bytes:
    """``n`` bytes, fewer only at end of stream (raw reads may return short)."""
    data = stream.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    missing = n - len(data)
    while missing:
        more = stream.read(missing)
        if not more:
            break
        parts.append(more)
        missing -= len(more)
    return b"".join(parts)


def close_quietly(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # closing must not hide the real error
            pass


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except Exception:  # objects without seekable(), or closed ones
        return False

"""decompress: (path, stream) -> (path, decompressed stream), streaming.

gzip, bz2, xz, zstd and lz4 are recognised by the path's suffix, else by the
stream's magic bytes; anything else passes through unchanged, so one pipeline
reads a mix of compressed and plain files. Decompression happens as the
consumer reads, a piece at a time, never a whole file at once; the output of
each unit (gzip member, zstd/lz4 frame, bz2/xz stream) is passed on once the
unit passed its checks, up to ``verify_limit`` bytes of it."""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ..core.ops.decoders import SUFFIXES, VERIFY_LIMIT
from ..core.policy import SKIP, not_skipped
from ..core.streams import CHUNK, as_stream, close_quietly, is_text, peek, text_stream_error
from ..runtime.node import RuntimeNode
from ..runtime.policy import ErrorPolicy, StreamCut
from .units import UNIT_NAMES, ZERO_PADDED, unit_decoder

STEP = 4 * CHUNK  # decompressed bytes per decompressor call (zstd: up to 128 KiB more)

MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
_BZ2_BLOCK = b"1AY&SY"  # bz2: "BZh" + level digit + the first block's magic (not just "BZh",
# which a tar's first file name may start with)


def format_by_suffix(path: str) -> str | None:
    dot = path.rfind(".")
    return SUFFIXES.get(path[dot + 1 :].lower()) if dot > path.rfind("/") else None


def format_by_magic(head: bytes) -> str | None:
    for magic, fmt in MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] == _BZ2_BLOCK:
        return "bz2"
    return None


class Decompressing(io.RawIOBase):
    """The decompressed bytes of a stream, unit by unit (a gzip member, a zstd
    or lz4 frame, a bz2 or xz stream; see ``units.py``). A unit's output is
    held back until the unit has ended and passed its checks, up to
    ``verify_limit`` bytes; from there on the rest of that unit is passed on
    as it is decompressed, checked only at its end.

    Damage (a corrupt or truncated unit, data after a unit that starts no
    other) goes to ``fail`` if given, which raises or accepts it; else it is
    raised. Once one is accepted, every read raises ``StreamCut``: what was
    passed on stays, and a reader drops the element it was reading instead
    of taking a partial one for whole."""

    def __init__(
        self,
        fmt: str,
        source: Any,
        fail: Callable[[BaseException, str], None] | None = None,
        verify_limit: int = VERIFY_LIMIT,
    ) -> None:
        self._fmt = fmt
        self._source = source
        self._new_unit = unit_decoder(fmt)
        self._fail = fail
        self._limit = verify_limit
        self._unit: Any = None  # the decoder of the current unit, None between units
        self._units = 0  # units started
        self._start = 0  # file offset of the current unit
        self._read = 0  # compressed bytes read
        self._input = b""  # read, not given to a unit yet
        self._held: list[bytes] = []  # the current unit's output, not checked yet
        self._held_size = 0
        self._unchecked = 0  # bytes of the current unit passed on before its end
        self._ready: deque[bytes] = deque()  # output to pass on
        self._view = memoryview(b"")  # the part of a ready chunk not read yet
        self._end = False
        self._cut = ""  # why reads raise StreamCut
        self.position = 0  # decompressed bytes delivered

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = self._view
        if not view:
            while not self._ready:
                if self._end:
                    return 0
                if self._cut:
                    raise StreamCut(self._cut)
                try:
                    self._step()
                except Exception as exc:
                    self._damaged(exc)
            view = memoryview(self._ready.popleft())
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        self._view = view[n:]
        self.position += n
        return n

    def _step(self) -> None:
        """Decompress one piece (at most ``STEP`` bytes, about)."""
        unit = self._unit
        if unit is None:
            data = self._next_unit_input()
            if not data:
                self._end = True
                return
            unit = self._unit = self._new_unit()
            self._units += 1
            self._start = self._read - len(data)
        elif unit.needs_input:
            data = self._input or self._read_chunk()
            if not data:
                raise EOFError(
                    f"the file ends inside {UNIT_NAMES[self._fmt]} {self._units} (truncated)"
                )
        else:
            data = b""
        self._input = b""
        out = unit.decompress(data, STEP)
        if unit.eof:  # checked: pass on all of it
            self._input = unit.unused_data
            self._unit = None
            self._unchecked = 0
            self._pass_held()
            if out:
                self._ready.append(out)
        elif self._unchecked or self._held_size + len(out) > self._limit:
            self._unchecked += self._held_size + len(out)
            self._pass_held()
            if out:
                self._ready.append(out)
        elif out:
            self._held.append(out)
            self._held_size += len(out)

    def _next_unit_input(self) -> bytes:
        """Input for the next unit (zero padding after a unit passed over),
        or nothing at the end of the file."""
        data = self._input or self._read_chunk()
        if self._units and self._fmt in ZERO_PADDED:
            while data and not data.lstrip(b"\0"):
                data = self._read_chunk()
            data = data.lstrip(b"\0")
        return data

    def _read_chunk(self) -> bytes:
        data = self._source.read(CHUNK) or b""
        self._read += len(data)
        return data

    def _pass_held(self) -> None:
        self._ready.extend(self._held)
        self._held.clear()
        self._held_size = 0

    def _damaged(self, exc: Exception) -> None:
        unit = UNIT_NAMES[self._fmt]
        unchecked = (
            f", {self._unchecked} of them unchecked from this {unit.split()[1]}"
            if self._unchecked
            else ""
        )
        where = (
            f"at byte {self._read} (in {unit} {self._units} from byte {self._start}; "
            f"{self.position} bytes delivered before it{unchecked})"
        )
        self._held.clear()
        self._cut = (
            f"the stream was cut {where} by the damage found there ({type(exc).__name__}: {exc})"
        )
        if self._fail is None:
            raise exc
        self._fail(exc, where)
        raise StreamCut(self._cut)

    def close(self) -> None:
        if not self.closed:
            self._held.clear()
            self._ready.clear()
            close_quietly(self._source)
        super().close()


def decompressed(
    stream: Any,
    path: str | None,
    file_type: str | None = None,
    fail: Callable[[BaseException, str], None] | None = None,
    verify_limit: int = VERIFY_LIMIT,
) -> Any:
    """``stream`` decompressed (buffered, peekable) if ``file_type``, else the
    suffix of ``path`` (None: magic bytes only), else the magic bytes say it
    is compressed; else ``stream``. An empty file that claims a compression
    is an error (EOFError)."""
    fmt = SUFFIXES[file_type] if file_type else path and format_by_suffix(path)
    head, stream = peek(stream, 10)
    if fmt is None:
        fmt = format_by_magic(head)
        if fmt is None:
            return stream
    elif not head:
        raise EOFError(f"empty file, not a {fmt} stream")
    return io.BufferedReader(Decompressing(fmt, stream, fail, verify_limit), CHUNK)


class DecompressNode(ErrorPolicy, RuntimeNode):
    """Stateless (one stream in, one out): the reader downstream owns the
    position. A damaged stream counts one skip under ``skip``/``warn``: the
    units checked before the damage stay delivered, and the stream is cut
    there (``StreamCut``), so the reader drops its partial element."""

    def iterator(self) -> Iterator[tuple[str, Any]]:
        return filter(not_skipped, map(self._open, self.inputs[0].iterator()))

    def _open(self, item: Any) -> Any:
        if type(item) is not tuple or len(item) != 2:
            msg = f"decompress expects (path, stream) pairs, got {type(item).__name__}"
            self.reraise(TypeError(msg), f"element {str(item)[:80]!r}")
        path, stream = item
        if is_text(stream):
            self.reraise(text_stream_error("decompress"), repr(path))
        p = self.params
        try:
            return path, decompressed(
                as_stream(stream),
                path,
                p["file_type"],
                lambda exc, where: self.fail(exc, f"{path!r} {where}"),
                p["verify_limit"],
            )
        except Exception as exc:
            close_quietly(stream)
            self.fail(exc, repr(path))
            return SKIP

"""decompress: (path, stream) -> (path, decompressed stream), streaming.

gzip, bz2, xz, zstd and lz4 are recognised by the path's suffix, else by the
stream's magic bytes; anything else passes through unchanged, so one pipeline
reads a mix of compressed and plain files. Decompression happens as the
consumer reads (in chunks), never a whole file at once."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..core.params import check_choice
from ..core.policy import SKIP, check_on_error, not_skipped
from ..core.registry import register_op
from ..core.streams import CHUNK, as_stream, close_quietly, peek
from ..runtime.node import RuntimeNode
from ..runtime.policy import ErrorPolicy

SUFFIXES = {"gz": "gzip", "gzip": "gzip", "tgz": "gzip", "bz2": "bz2", "tbz2": "bz2",
            "tbz": "bz2", "xz": "xz", "txz": "xz", "lzma": "xz", "zst": "zstd",
            "zstd": "zstd", "tzst": "zstd", "lz4": "lz4"}
MAGIC = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"),
         (b"\x04\x22\x4d\x18", "lz4"))
_BZ2_BLOCK = b"1AY&SY"  # bz2: "BZh" + level digit + the first block's magic (not just "BZh",
                         # which a tar's first file name may start with)
FILE_TYPES = (None, *sorted(set(SUFFIXES)))


def format_by_suffix(path: str) -> str | None:
    dot = path.rfind(".")
    return SUFFIXES.get(path[dot + 1:].lower()) if dot > path.rfind("/") else None


def format_by_magic(head: bytes) -> str | None:
    for magic, fmt in MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] == _BZ2_BLOCK:
        return "bz2"
    return None


def _decompressor(fmt: str, stream: Any) -> Any:
    """A file object that reads ``stream`` decompressed."""
    if fmt == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=stream, mode="rb")
    if fmt == "bz2":
        import bz2

        return bz2.BZ2File(stream)
    if fmt == "xz":
        import lzma

        return lzma.LZMAFile(stream)
    if fmt == "zstd":
        try:
            import zstandard
        except ImportError:
            raise ImportError("zstd needs the 'zstandard' package: "
                              "pip install 'streamdag[zstd]'") from None
        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    try:
        import lz4.frame
    except ImportError:
        raise ImportError("lz4 needs the 'lz4' package: pip install 'streamdag[lz4]'") from None
    return lz4.frame.LZ4FrameFile(stream)


class Decompressing(io.RawIOBase):
    """The decompressed bytes of a stream, read chunk by chunk. Errors (a
    corrupt or truncated stream) go to ``fail`` if given, which raises or
    accepts them; an accepted error ends the stream there."""

    def __init__(self, fmt: str, source: Any,
                 fail: Callable[[BaseException, int], None] | None = None) -> None:
        self._source = source
        self._inner = _decompressor(fmt, source)
        self._fail = fail
        self._done = False
        self.position = 0  # decompressed bytes delivered

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        try:
            n = self._inner.readinto(buffer)
        except Exception as exc:
            if self._fail is None:
                raise
            self._done = True
            self._fail(exc, self.position)
            return 0
        self.position += n
        return n

    def close(self) -> None:
        if not self.closed:
            close_quietly(self._inner)
            close_quietly(self._source)
        super().close()


def decompressed(stream: Any, path: str | None, file_type: str | None = None,
                 fail: Callable[[BaseException, int], None] | None = None) -> Any:
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
    return io.BufferedReader(Decompressing(fmt, stream, fail), CHUNK)


@register_op("decompress", params=("file_type", "on_error"))
class DecompressNode(ErrorPolicy, RuntimeNode):
    """Stateless (one stream in, one out): the reader downstream owns the
    position. A stream corrupt midway ends early under ``skip``/``warn``
    (what was read before stays delivered) and counts one skip."""

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        check_choice("decompress", "file_type", params.get("file_type"), FILE_TYPES)
        check_on_error("decompress", params)

    def iterator(self) -> Iterator[tuple[str, Any]]:
        return filter(not_skipped, map(self._open, self.inputs[0].iterator()))

    def _open(self, item: Any) -> Any:
        if type(item) is not tuple or len(item) != 2:
            msg = f"decompress expects (path, stream) pairs, got {type(item).__name__}"
            self.reraise(TypeError(msg), f"element {str(item)[:80]!r}")
        path, stream = item
        try:
            return path, decompressed(as_stream(stream), path, self.params.get("file_type"),
                                      lambda exc, at: self.fail(exc, f"{path!r} at byte {at}"))
        except Exception as exc:
            close_quietly(stream)
            self.fail(exc, repr(path))
            return SKIP

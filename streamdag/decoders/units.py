"""Decoders of one compressed unit: a gzip member, a zstd or lz4 frame, a
bz2 or xz stream.

A unit carries its own checks, which the codec verifies on reaching the
unit's end: gzip's CRC-32 and length; zstd's and lz4's content checksums
(where the writer added them: the zstd and lz4 command-line tools do by
default, the Python ``zstandard`` and ``lz4`` packages do not) and content
sizes; bz2's block and stream CRCs; xz's per-block check and its index. So a
unit's output is known good only once ``eof`` is True. All decoders share the
interface of ``bz2.BZ2Decompressor``: ``decompress(data, max_length)``
returns at most about ``max_length`` bytes, ``needs_input`` says whether the
next call needs more input, ``unused_data`` is the input after the unit."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

#: what one unit is called, for error messages
UNIT_NAMES = {
    "gzip": "gzip member",
    "bz2": "bz2 stream",
    "xz": "xz stream",
    "zstd": "zstd frame",
    "lz4": "lz4 frame",
}
#: formats whose writers may pad the file with zero bytes after a unit
ZERO_PADDED = frozenset({"gzip", "xz"})

_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE = 0x184D2A50  # the 16 magic numbers 0x184D2A50-5F
_ZSTD_BLOCK = 128 << 10  # the most one zstd block decompresses to


def unit_decoder(fmt: str) -> Callable[[], Any]:
    """A factory of decoders, one per unit, for format ``fmt``."""
    if fmt == "gzip":
        return GzipMember
    if fmt == "bz2":
        import bz2

        return bz2.BZ2Decompressor
    if fmt == "xz":
        import lzma

        return lzma.LZMADecompressor
    if fmt == "zstd":
        try:
            import zstandard
        except ImportError:
            raise ImportError(
                "zstd needs the 'zstandard' package: pip install 'streamdag[zstd]'"
            ) from None
        return lambda: ZstdFrame(zstandard.ZstdDecompressor())
    try:
        import lz4.frame
    except ImportError:
        raise ImportError("lz4 needs the 'lz4' package: pip install 'streamdag[lz4]'") from None
    return lz4.frame.LZ4FrameDecompressor


class GzipMember:
    """zlib in gzip mode: it checks the member's CRC-32 and length (and a
    header CRC, if present) before it reports the end."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(31)
        self.needs_input = True

    @property
    def eof(self) -> bool:
        return self._zlib.eof

    @property
    def unused_data(self) -> bytes:
        return self._zlib.unused_data

    def decompress(self, data: bytes, max_length: int) -> bytes:
        z = self._zlib
        tail = z.unconsumed_tail
        out = z.decompress(tail + data if tail else data, max_length)
        self.needs_input = not z.unconsumed_tail and len(out) < max_length
        return out


class ZstdFrame:
    """One zstd frame. zstd checks the frame's checksum and content size at
    its end, but ``zstandard``'s decompressobj has no output limit, and a
    block of four bytes may decompress to 128 KiB: the block headers are read
    here so that input is fed a few whole blocks at a time."""

    def __init__(self, decompressor: Any) -> None:
        self._zstd = decompressor.decompressobj(read_across_frames=False)
        self._input = b""  # not fed yet
        self._next = -1  # offset in _input of the next block header; -1: the frame header
        self._checksum = 0  # bytes of checksum after the last block
        self._last = False  # the frame's end is known (fed or not)
        self.needs_input = True

    @property
    def eof(self) -> bool:
        return self._zstd.eof

    @property
    def unused_data(self) -> bytes:
        return self._zstd.unused_data + self._input

    def decompress(self, data: bytes, max_length: int) -> bytes:
        buf = self._input + data if self._input else data
        end, stalled = self._feedable(buf, max(1, max_length // _ZSTD_BLOCK))
        self._input = buf[end:]
        if self._next >= 0:
            self._next -= end
        self.needs_input = stalled or not self._input
        return self._zstd.decompress(buf[:end]) if end else b""

    def _feedable(self, buf: bytes, blocks: int) -> tuple[int, bool]:
        """How much of ``buf`` to feed (up to ``blocks`` more block headers),
        and whether going further needs more input."""
        pos = self._next
        if self._last:  # the rest of the frame is known (if zstd wants more, it decides)
            return (min(pos, len(buf)) if pos > 0 else len(buf)), False
        if pos < 0:
            if len(buf) < 8:
                return 0, True
            magic = int.from_bytes(buf[:4], "little")
            if magic & 0xFFFFFFF0 == _ZSTD_SKIPPABLE:  # no output: feed it whole
                self._next = pos = 8 + int.from_bytes(buf[4:8], "little")
                self._last = True
                return min(pos, len(buf)), False
            if magic != _ZSTD_MAGIC:
                return len(buf), False  # zstd reports what is wrong
            fhd = buf[4]
            single = fhd >> 5 & 1
            pos = 5 + (not single) + (0, 1, 2, 4)[fhd & 3] + (single, 2, 4, 8)[fhd >> 6]
            self._checksum = 4 if fhd & 4 else 0
        while blocks and pos + 3 <= len(buf):
            header = int.from_bytes(buf[pos : pos + 3], "little")
            pos += 3 + (1 if header >> 1 & 3 == 1 else header >> 3)  # RLE: one byte
            blocks -= 1
            if header & 1:
                pos += self._checksum
                self._last = True
                break
        self._next = pos
        return min(pos, len(buf)), not self._last and blocks > 0

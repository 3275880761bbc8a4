"""load_from_tar: (path, stream) -> (member path, bytes or stream), streaming.

Reads the tar format itself, block by block, from any stream, seekable or
not (an HTTP response, a member of another archive): ustar, GNU long names
and pax headers; .tar.gz/.tgz/.tar.bz2/.tar.xz/.tar.zst/.tar.lz4 are
decompressed on the fly. Parsing headers directly (instead of ``tarfile``
in stream mode) keeps the per-member cost to three reads and knows the byte
offset of every header, which is the resume position: members read and the
offset of the next header. A resume seeks there (plain seekable files) or
reads forward to it (compressed or non-seekable streams)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from ..core.streams import CHUNK, MemberPath, close_quietly, read_exact, skip_bytes
from ..decoders.compression import decompressed
from .expand import ExpandingNode

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_REGULAR = frozenset(b"0\x007")
_POSIX_MAGIC = b"ustar\x0000"


class TarFormatError(ValueError):
    """The archive is truncated or not a tar archive."""


def _octal(field: bytes, what: str, offset: int) -> int:
    if field[0] & 0x80:  # GNU base-256 for values too large for octal
        if field[0] == 0xFF:
            raise TarFormatError(f"negative {what} in header at byte {offset}")
        return int.from_bytes(field[1:], "big")
    digits = field.strip(b" \0")
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise TarFormatError(f"invalid {what} {field!r} in header at byte {offset}") from None


def _pax_records(data: bytes) -> dict[str, str]:
    """The key=value records of a pax extended header ("%d %s=%s\\n")."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space])
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class _MemberRaw(io.RawIOBase):
    """The bytes of one member, read straight from the archive stream."""

    def __init__(self, stream: Any, size: int, name: str) -> None:
        self._stream = stream
        self.size = self.left = size
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            return 0
        data = self._stream.read(min(len(buffer), self.left))
        if not data:
            raise TarFormatError(f"member {self._name!r} is truncated ({self.left} bytes missing)")
        n = len(data)
        buffer[:n] = data
        self.left -= n
        return n


class LoadFromTarNode(ExpandingNode):
    """Elements: ``(archive/member, bytes)`` for regular files in archive
    order (``streams=True``: a stream valid until the next member is
    pulled, for members too large to hold). Directories, links and other
    entries are passed over. Bad input (a truncated or corrupt archive, an
    empty file) abandons the rest of that archive."""

    def expand(self, item: Any, at: Any) -> Iterator[Any]:
        path, stream = self.split(item, binary=True)
        self._count, self._offset = at or (0, 0)
        self._path = path
        self._damaged: str | None = None
        self._pos = self._position
        return self._members(path, stream)

    def _position(self) -> list[int]:
        return [self._count, self._offset]

    def _members(self, archive: str, stream: Any) -> Iterator[tuple[MemberPath, Any]]:
        plain = decompressed(stream, None)  # by magic: the stream may be decompressed already
        skip_bytes(plain, self._offset)
        as_streams = self.params["streams"]
        read = plain.read
        offset = self._offset
        long_name: str | None = None
        pax: dict[str, str] = {}
        member: _MemberRaw | None = None
        try:
            while True:
                if member is not None:  # the consumer may have left part of a stream member
                    skip_bytes(plain, member.left + (-member.size % BLOCK))
                    member = None
                header = read(BLOCK)
                if len(header) != BLOCK:
                    header += read_exact(plain, BLOCK - len(header)) if header else b""
                    if not header:
                        if not offset:
                            raise TarFormatError("empty file, not a tar archive")
                        return  # end of stream without end-of-archive blocks: tolerated
                    if len(header) != BLOCK:
                        raise TarFormatError(f"truncated header at byte {offset}")
                if header == _ZERO_BLOCK:
                    return
                if sum(header) - sum(header[148:156]) + 256 != _octal(
                    header[148:156], "checksum", offset
                ):
                    raise TarFormatError(
                        f"bad header checksum at byte {offset} (corrupt data or not a tar archive)"
                    )
                size = _octal(header[124:136], "size", offset)
                kind = header[156]
                if "size" in pax:
                    size = int(pax["size"])
                padded = size + (-size % BLOCK)
                offset += BLOCK
                if kind in _REGULAR:
                    name = pax.get("path") or long_name or _header_name(header)
                    long_name, pax = None, {}
                    if as_streams:
                        member = _MemberRaw(plain, size, name)
                        offset += padded
                        self._count += 1
                        self._offset = offset
                        yield MemberPath(archive, name), io.BufferedReader(member, CHUNK)
                        continue
                    try:
                        data = read(size)
                        if len(data) != size:
                            data += read_exact(plain, size - len(data))
                            if len(data) != size:
                                raise TarFormatError(
                                    f"member {name!r} is truncated "
                                    f"({size - len(data)} of {size} bytes missing)"
                                )
                    except Exception:
                        self._damaged = name
                        raise
                    if padded != size:
                        read(padded - size)
                    offset += padded
                    self._count += 1
                    self._offset = offset
                    yield MemberPath(archive, name), data
                    continue
                extra = read_exact(plain, padded) if kind in b"LxK" else None
                if extra is not None and len(extra) != padded:
                    raise TarFormatError(f"truncated extended header at byte {offset}")
                if kind == 0x4C:  # "L": GNU long name of the next member
                    long_name = extra[:size].rstrip(b"\0").decode("utf-8", "surrogateescape")
                elif kind == 0x78:  # "x": pax header of the next member
                    pax = _pax_records(extra[:size])
                elif extra is None:
                    skip_bytes(plain, padded)
                offset += padded
        finally:
            if plain is not stream:
                close_quietly(plain)

    def damaged_member(self) -> str | None:
        return self._damaged

    def where(self, item: Any) -> str:
        if self._pos is None:
            return super().where(item)
        return f"{self._path!r} after member {self._count} (byte {self._offset})"


def _header_name(header: bytes) -> str:
    name = header[:100].split(b"\0", 1)[0]
    if header[257:265] == _POSIX_MAGIC:
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "surrogateescape")

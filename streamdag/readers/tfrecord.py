"""load_from_tfrecord (torchdata's ``TFRecordLoader``): (path, stream) of
TFRecord files -> one parsed example per record (``tf_example.py``), read
without TensorFlow.

The framing: uint64 length, masked crc32c of the length, the data, masked
crc32c of the data. Both checksums are checked (torchdata checked neither):
a bad one is an error naming the file and the record's index. After a bad
data checksum the framing still holds, so under ``skip``/``warn`` that record
alone is dropped; after a bad length the rest of the file is. The position
is (records read, byte offset of the next record): a resume seeks there."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from crc32c import crc32c

from ..core.streams import read_exact, skip_bytes
from .expand import ExpandingNode
from .tf_example import parse_example

_MASK_DELTA = 0xA282EAD8
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def masked_crc(data: bytes | memoryview) -> int:
    """TFRecord's masked crc32c."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class TFRecordError(ValueError):
    """A record whose framing is broken: the rest of the file is unreadable."""


class TFRecordDataError(ValueError):
    """A record whose data fails its checksum or does not parse: the next
    record is readable."""


def dtype_spec(spec: dict[str, Any] | None) -> dict[str, tuple[Any, Any]] | None:
    """The graph's spec ({name: [shape, "float32"]}) with torch dtypes."""
    if spec is None:
        return None
    import torch

    return {
        k: (
            None if shape is None else tuple(shape),
            None if dtype is None else getattr(torch, dtype),
        )
        for k, (shape, dtype) in spec.items()
    }


class LoadFromTfrecordNode(ExpandingNode):
    def setup(self) -> None:
        super().setup()
        self._spec = dtype_spec(self.params["spec"])

    def expand(self, item: Any, at: Any) -> Iterator[Any]:
        path, stream = self.split(item)
        self._path = path
        self._count, self._offset = at or (0, 0)
        self._stream = stream
        self._pos = self._position
        skip_bytes(stream, self._offset)
        return self._records()

    def _position(self) -> list[int]:
        return [self._count, self._offset]

    def _records(self) -> Iterator[dict[str, Any]]:
        stream, spec = self._stream, self._spec
        while True:
            head = read_exact(stream, 12)
            if not head:
                return
            index = self._count
            if len(head) != 12:
                raise TFRecordError(f"record {index} is truncated (in its length)")
            length_bytes = head[:8]
            if masked_crc(length_bytes) != _CRC.unpack_from(head, 8)[0]:
                raise TFRecordError(f"record {index}: the length fails its checksum")
            (length,) = _LENGTH.unpack(length_bytes)
            data = read_exact(stream, length + 4)
            if len(data) != length + 4:
                raise TFRecordError(f"record {index} is truncated")
            self._count += 1
            self._offset += 12 + length + 4
            body = memoryview(data)[:length]
            if masked_crc(body) != _CRC.unpack_from(data, length)[0]:
                raise TFRecordDataError(f"record {index}: the data fails its checksum")
            try:
                example = parse_example(body, spec)
            except (ValueError, RuntimeError, IndexError) as exc:
                raise TFRecordDataError(f"record {index}: {exc}") from exc
            yield example

    def recover(self, exc: BaseException) -> Iterator[Any] | None:
        return self._records() if isinstance(exc, TFRecordDataError) else None

    def where(self, item: Any) -> str:
        if self._pos is None:
            return super().where(item)
        return f"{self._path!r} at record {self._count} (byte {self._offset})"

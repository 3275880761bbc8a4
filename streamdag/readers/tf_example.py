"""``tf.train.Example`` / ``SequenceExample`` records -> dicts, as
torchdata's TFRecordLoader gives them, read from the protobuf wire format
directly (the messages are small and fixed: no protobuf or TensorFlow).

Every record is read as a SequenceExample (an Example is one whose context
holds its features): ``bytes_list`` -> list of bytes, ``float_list`` ->
float32 tensor, ``int64_list`` -> int64 tensor; a feature list -> a list of
those. A ``spec`` maps the names to keep to ``(shape, dtype)``: tensors are
reshaped and cast (feature lists stacked first), byte lists nested to the
shape; a name the spec lists that a record lacks is an error."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Mapping
from typing import Any

Spec = Mapping[str, tuple[Any, Any]]


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): an int (varint), bytes (fixed) or a
    memoryview (length-delimited)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value = buf[pos : pos + size]
            if len(value) != size:
                raise ValueError("truncated protobuf field")
            pos += size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value = bytes(buf[pos : pos + size])
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, wire, value


def _feature(buf: memoryview) -> Any:
    import torch

    kind, values = 0, b""
    for number, _, body in _fields(buf):
        kind, values = number, body
    if kind == 1:
        return [bytes(v) for n, _, v in _fields(values) if n == 1]
    if kind == 2:
        floats = b"".join(bytes(v) if wire == 2 else v for n, wire, v in _fields(values) if n == 1)
        return torch.tensor(struct.unpack(f"<{len(floats) // 4}f", floats), dtype=torch.float32)
    if kind == 3:
        ints: list[int] = []
        for n, wire, v in _fields(values):
            if n != 1:
                continue
            if wire == 0:
                ints.append(v)
            else:
                pos = 0
                while pos < len(v):
                    value, pos = _varint(v, pos)
                    ints.append(value)
        return torch.tensor([i - (1 << 64) if i >> 63 else i for i in ints], dtype=torch.int64)
    raise ValueError("a feature with no bytes_list, float_list or int64_list")


def _map(buf: memoryview) -> Iterator[tuple[str, memoryview]]:
    """The entries of a ``map<string, message>`` field's messages."""
    for number, _, entry in _fields(buf):
        if number != 1:
            continue
        key, value = "", memoryview(b"")
        for n, _, v in _fields(entry):
            if n == 1:
                key = bytes(v).decode("utf-8")
            elif n == 2:
                value = v
        yield key, value


def _reshape_list(value: Any, shape: Any) -> Any:
    flat: list[Any] = []

    def flatten(v: Any) -> None:
        if isinstance(v, (str, bytes)):
            flat.append(v)
        else:
            for x in v:
                flatten(x)

    flatten(value)
    if sum(1 for x in shape if x == -1) > 1:
        raise RuntimeError("a shape may have at most one dynamic dimension (-1)")
    known = math.prod(x for x in shape if x != -1)
    if len(flat) % max(known, 1):
        raise RuntimeError(f"cannot reshape {len(flat)} values into shape {shape}")
    shape = [x if x != -1 else len(flat) // known for x in shape]

    def nest(v: list[Any], dims: list[int]) -> Any:
        if not dims:
            return v[0]
        if len(dims) == 1:
            return v
        step = len(v) // dims[0]
        return [nest(v[i * step : (i + 1) * step], dims[1:]) for i in range(step)]

    return nest(flat, shape)


def _apply(value: Any, spec: tuple[Any, Any] | None) -> Any:
    import torch

    if spec is None:
        return value
    shape, dtype = spec
    if isinstance(dtype, torch.dtype):
        if shape is not None:
            value = value.reshape(shape)
        return value.to(dtype)
    return value if shape is None else _reshape_list(value, shape)


def parse_example(record: bytes | memoryview, spec: Spec | None = None) -> dict[str, Any]:
    """One serialized (Sequence)Example -> {name: value}."""
    import torch

    context: list[tuple[str, memoryview]] = []
    lists: list[tuple[str, memoryview]] = []
    for number, _, body in _fields(memoryview(record)):
        if number == 1:
            context.extend(_map(body))
        elif number == 2:
            lists.extend(_map(body))
    result: dict[str, Any] = {}
    for key, body in context:
        if spec is None or key in spec:
            result[key] = _apply(_feature(body), None if spec is None else spec[key])
    in_context = set(result)
    for key, body in lists:
        if spec is not None and (key not in spec or key in in_context):
            continue
        if key in in_context:
            raise RuntimeError(
                f"TFRecord example's key {key!r} is in both the context "
                "and the feature lists, which is not supported"
            )
        feature_spec = None if spec is None else spec[key]
        value: Any = [_feature(f) for n, _, f in _fields(body) if n == 1]
        if feature_spec is not None and isinstance(feature_spec[1], torch.dtype):
            value = torch.stack(value, 0)
        result[key] = _apply(value, feature_spec)
    if spec is not None and len(result) != len(spec):
        raise RuntimeError(f"the example lacks required keys: {sorted(result)} != {sorted(spec)}")
    return result

"""Bytes <-> document (nested maps and lists): the two encodings of the
format. ``.sdag`` is msgpack, ``.json`` is indented JSON text; reading tells
them apart by content, so a renamed file still loads. JSON text may start
with a UTF-8 byte order mark (some editors add one): it is skipped."""

from __future__ import annotations

import codecs
import json
import math
from pathlib import Path
from typing import Any

import msgpack

from ..errors import GraphFormatError

MAX_FILE_BYTES = 256 * 2**20
SUFFIXES = {".sdag": "msgpack", ".json": "json"}
# First bytes of a JSON value. As msgpack each is a bare small int, never a graph.
_JSON_STARTS = tuple(bytes([c]) for c in b'{["-0123456789tfn')


def format_for(path: str | Path) -> str:
    """``"msgpack"`` or ``"json"`` from the file name, or GraphFormatError."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise GraphFormatError(
            f"{path}: unknown graph file extension {suffix!r}; use .sdag "
            "(msgpack) or .json (JSON text)"
        )
    return SUFFIXES[suffix]


def dump_bytes(doc: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return (_pretty(doc, 0) + "\n").encode()
    return msgpack.packb(doc, use_bin_type=True)


def _pretty(value: Any, level: int) -> str:
    """Indented JSON for people editing it by hand: the document, its node list
    and each node are spread over lines; anything deeper stays on one line
    while it fits in 100 columns."""
    flat = json.dumps(value, ensure_ascii=False, allow_nan=False)
    if (
        not isinstance(value, (list, dict))
        or not value
        or (level >= 3 and len(flat) + 2 * level <= 100)
    ):
        return flat
    pad, end = "  " * (level + 1), "  " * level
    if isinstance(value, list):
        items = [pad + _pretty(v, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + end + "]"
    items = [
        f"{pad}{json.dumps(k, ensure_ascii=False)}: {_pretty(v, level + 1)}"
        for k, v in value.items()
    ]
    return "{\n" + ",\n".join(items) + "\n" + end + "}"


def load_bytes(data: bytes) -> Any:
    """The document in ``data``; any parse failure is a GraphFormatError."""
    if len(data) > MAX_FILE_BYTES:
        raise GraphFormatError(
            f"file is {len(data)} bytes, more than the limit of {MAX_FILE_BYTES}"
        )
    if not data:
        raise GraphFormatError("file is empty")
    if data.startswith(codecs.BOM_UTF8):  # never a msgpack graph: that starts with a map
        return _load_json(data[len(codecs.BOM_UTF8) :])
    if data.lstrip()[:1] in _JSON_STARTS:
        return _load_json(data)
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, timestamp=0)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise GraphFormatError(
            f"not a streamdag graph (msgpack decoding failed: {type(exc).__name__}: {exc})"
        ) from None


def _load_json(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GraphFormatError(f"JSON text is not valid UTF-8 at byte {exc.start}") from None
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise GraphFormatError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise GraphFormatError("JSON text is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with too many digits
        raise GraphFormatError(f"invalid JSON: {exc}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f'{name} is not allowed (write non-finite floats as {{"float": "inf"}})')


def _finite_float(text: str) -> float:
    """A JSON number; one too large for a float (``1e999``) would otherwise
    become infinity, which the format writes as ``{"float": "inf"}``."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(
            f"the number {text} is out of range for a float "
            '(write non-finite floats as {"float": "inf"})'
        )
    return value

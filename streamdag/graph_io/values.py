"""Param values on disk: plain data as itself, everything else as a map with
one tag, so that a user's dict can never be mistaken for a function
reference and both formats (msgpack, JSON) hold exactly the same structure.

    {"ref": "module:qualname", "args": [...], "kwargs": {...}}   callables
    {"tuple": [...]}   {"dict": {...} or [[key, value], ...]}   {"range": [a, b, c]}
    {"bytes": "<base64>"}   {"float": "nan" | "inf" | "-inf"}
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import GraphFormatError
from .functions import FunctionRef, name_of, origin_of, resolve, unwrap_partial
from .problems import clip, expect, expect_str_keys, kind_name, short

MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # what msgpack can hold
TAGS = ("ref", "tuple", "dict", "range", "bytes", "float")
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@dataclass
class Encoder:
    """Encodes values, remembering which registered functions were used (the
    file records where each came from, for the error if one is missing)."""

    functions: dict[str, str | None] = field(default_factory=dict)

    def encode(self, value: Any, where: str, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise GraphFormatError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        kind = type(value)
        if value is None or kind is bool or kind is str:
            return value
        if kind is int:
            if not INT_MIN <= value <= INT_MAX:
                raise GraphFormatError(f"{where}: integer {value} does not fit in 64 bits")
            return value
        if kind is float:
            return value if math.isfinite(value) else {"float": repr(value)}
        if kind is list:
            return [self.encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        if kind is tuple:
            return {"tuple": self.encode(list(value), where, depth)}
        if kind is dict:
            return {"dict": self._dict(value, where, depth)}
        if kind is range:
            return {"range": [value.start, value.stop, value.step]}
        if kind is bytes:
            return {"bytes": base64.b64encode(value).decode("ascii")}
        if callable(value):
            return self._function(value, where, depth)
        raise GraphFormatError(
            f"{where}: a value of type {kind.__module__}.{kind.__qualname__} cannot be saved; "
            "params hold None, bool, int, float, str, bytes, list, tuple, dict, range and "
            "functions"
        )

    def _dict(self, value: dict[Any, Any], where: str, depth: int) -> Any:
        if all(type(k) is str for k in value):
            return {k: self.encode(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
        return [
            [
                self.encode(k, f"{where}[{k!r}] (key)", depth + 1),
                self.encode(v, f"{where}[{k!r}]", depth + 1),
            ]
            for k, v in value.items()
        ]

    def _function(self, fn: Any, where: str, depth: int) -> dict[str, Any]:
        base, args, kwargs = unwrap_partial(fn)
        name = name_of(base, where)
        if ":" not in name:
            self.functions[name] = origin_of(name)
        out: dict[str, Any] = {"ref": name}
        if args:
            out["args"] = self.encode(list(args), f"{where}.args", depth + 1)
        if kwargs:
            out["kwargs"] = {
                k: self.encode(v, f"{where}.kwargs.{k}", depth + 1) for k, v in kwargs.items()
            }
        return out


@dataclass(frozen=True)
class Decoder:
    """Decodes values; function references are resolved under the trust rules
    (or kept as FunctionRef placeholders when ``resolve_functions`` is off)."""

    trusted: tuple[str, ...] = ()
    resolve_functions: bool = True
    function_hints: Mapping[str, str] = field(default_factory=dict)

    def decode(self, doc: Any, where: str, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise GraphFormatError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        kind = type(doc)
        if doc is None or kind is bool or kind is str or kind is float:
            return doc
        if kind is int:
            if not INT_MIN <= doc <= INT_MAX:
                raise GraphFormatError(f"{where}: integer {doc} does not fit in 64 bits")
            return doc
        if kind is list:
            return [self.decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(doc)]
        if kind is dict:
            return self._tagged(doc, where, depth)
        raise GraphFormatError(
            f"{where}: unexpected {kind_name(doc)}; expected null, a bool, "
            "number, string, list or a tagged map"
        )

    def _tagged(self, doc: dict[Any, Any], where: str, depth: int) -> Any:
        tag = next((t for t in TAGS if t in doc), None)
        allowed = {"ref", "args", "kwargs"} if tag == "ref" else {tag}
        if tag is None or set(doc) - allowed:
            keys = clip(", ".join(repr(k) for k in doc), 120)
            raise GraphFormatError(
                f"{where}: a map here must have exactly one of the keys "
                f"{', '.join(TAGS)} (ref may add args, kwargs); got keys {keys}"
            )
        body = doc[tag]
        inner = f"{where}.{tag}"
        if tag == "ref":
            return self._function(doc, where, depth)
        if tag == "tuple":
            return tuple(self.decode(expect(body, list, inner), where, depth))
        if tag == "dict":
            return self._dict(body, inner, depth)
        if tag == "range":
            if (
                not isinstance(body, list)
                or len(body) != 3
                or not all(type(v) is int for v in body)
                or body[2] == 0
            ):
                raise GraphFormatError(
                    f"{inner}: expected [start, stop, step] of ints with "
                    f"step != 0, got {short(body)}"
                )
            return range(*body)
        if tag == "bytes":
            try:
                return base64.b64decode(expect(body, str, inner), validate=True)
            except (binascii.Error, ValueError):
                raise GraphFormatError(
                    f"{inner}: expected base64 text, got {short(body)}"
                ) from None
        if type(body) is not str or body not in _FLOATS:
            raise GraphFormatError(f"{inner}: expected 'nan', 'inf' or '-inf', got {short(body)}")
        return _FLOATS[body]

    def _dict(self, body: Any, where: str, depth: int) -> dict[Any, Any]:
        if isinstance(body, dict):
            return {
                k: self.decode(v, f"{where}.{k}", depth + 1)
                for k, v in expect_str_keys(body, where).items()
            }
        out: dict[Any, Any] = {}
        for i, pair in enumerate(expect(body, list, where)):
            if not isinstance(pair, list) or len(pair) != 2:
                raise GraphFormatError(
                    f"{where}[{i}]: expected a [key, value] pair, got {short(pair)}"
                )
            key = self.decode(pair[0], f"{where}[{i}][0]", depth + 1)
            try:
                hash(key)
            except TypeError:
                raise GraphFormatError(
                    f"{where}[{i}][0]: a dict key must be hashable, got {kind_name(key)}"
                ) from None
            out[key] = self.decode(pair[1], f"{where}[{i}][1]", depth + 1)
        return out

    def _function(self, doc: dict[str, Any], where: str, depth: int) -> Callable[..., Any]:
        args = tuple(
            self.decode(
                expect(doc.get("args", []), list, f"{where}.args"), f"{where}.args", depth + 1
            )
        )
        kwargs_doc = expect_str_keys(doc.get("kwargs", {}), f"{where}.kwargs")
        kwargs = {
            k: self.decode(v, f"{where}.kwargs.{k}", depth + 1) for k, v in kwargs_doc.items()
        }
        ref = doc["ref"]
        if not self.resolve_functions:
            if not isinstance(ref, str) or not ref:
                raise GraphFormatError(f"{where}.ref: expected a function name, got {short(ref)}")
            return FunctionRef(ref, args, kwargs)
        fn = resolve(ref, self.trusted, f"{where}.ref", self.function_hints)
        return functools.partial(fn, *args, **kwargs) if args or kwargs else fn

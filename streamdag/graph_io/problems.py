"""How load errors describe what they found: JSON's words for types, short
reprs, and the one-line type checks every layer of the decoder uses."""

from __future__ import annotations

from typing import Any

from ..errors import GraphFormatError

_WANT = {list: "a list", dict: "a map", str: "a string", int: "an int"}


def kind_name(value: Any) -> str:
    names = {
        type(None): "null",
        bool: "a bool",
        int: "an int",
        float: "a float",
        str: "a string",
        list: "a list",
        dict: "a map",
        bytes: "raw bytes",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def short(value: Any, width: int = 80) -> str:
    return clip(repr(value), width)


def expect(value: Any, kind: type, where: str) -> Any:
    """``value`` if it is exactly of type ``kind`` (a bool is not an int), else
    GraphFormatError naming the place and both types."""
    if type(value) is not kind:
        raise GraphFormatError(f"{where}: expected {_WANT[kind]}, got {kind_name(value)}")
    return value


def expect_str_keys(value: Any, where: str) -> dict[str, Any]:
    for key in expect(value, dict, where):
        if type(key) is not str:
            raise GraphFormatError(
                f"{where}: keys must be strings, got {kind_name(key)} {short(key, 40)}"
            )
    return value

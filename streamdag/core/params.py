"""Parameter checks shared by the ops, so bad values fail at construction with
a message that names the op and the parameter."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from difflib import get_close_matches
from typing import Any

from ..errors import ParamError

#: a column selector of map/filter: an index, a key, several, or None (the element)
Col = int | str | list[int | str] | tuple[int | str, ...] | None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``did you mean 'x'?`` for the choices closest to a misspelt ``word``,
    or "" if none is close."""
    close = get_close_matches(word, sorted(choices), n=3)
    return f"did you mean {' or '.join(map(repr, close))}?" if close else ""


def param_choices(key: str, known: Collection[str]) -> str:
    """The end of an unknown-param error: what the op takes and the closest."""
    hint = did_you_mean(key, known)
    return f"{key!r} (its params: {', '.join(sorted(known)) or 'none'})" + (
        f"; {hint}" if hint else ""
    )


def check_known(op: str, params: Iterable[str], known: Collection[str]) -> None:
    """ParamError for the first of ``params`` that ``op`` does not take: a
    misspelt key would otherwise be ignored and the default used."""
    for key in params:
        if key not in known:
            raise ParamError(f"{op}: unknown param {param_choices(key, known)}")


def _fail(op: str, key: str, want: str, value: Any) -> None:
    raise ParamError(f"{op}: {key} must be {want}, got {value!r}")


def check_int(
    op: str, key: str, value: Any, *, minimum: int | None = None, optional: bool = False
) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(op, key, "an int" + (" or None" if optional else ""), value)
    if minimum is not None and value < minimum:
        _fail(op, key, f"an int >= {minimum}", value)


def check_callable(op: str, key: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not callable(value):
        _fail(op, key, "callable" + (" or None" if optional else ""), value)


def check_bool(op: str, key: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(op, key, "True or False", value)


def check_choice(op: str, key: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        _fail(op, key, "one of " + ", ".join(map(repr, choices)), value)


def check_col(op: str, key: str, value: Any) -> None:
    """Column selectors: an int index, a str key, or a list/tuple of those."""
    if value is None or isinstance(value, (int, str)) and not isinstance(value, bool):
        return
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in value)
    ):
        return
    _fail(op, key, "None, an int or str column, or a non-empty list of them", value)


def check_type(op: str, key: str, value: Any, types: type | tuple[type, ...], want: str) -> None:
    if not isinstance(value, types):
        _fail(op, key, want, value)

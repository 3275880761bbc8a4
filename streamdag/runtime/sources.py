"""Which element an error happened on, in words, for error messages: a
webdataset sample's key and archive, the path of a ``(path, data)`` pair, the
first few of a list of those, else a short repr. Used on the error path only."""

from __future__ import annotations

import reprlib
from typing import Any

_LIST_SHOWN = 3
_short = reprlib.Repr()
_short.maxlevel = 2
_short.maxstring = _short.maxother = 60


def source_of(element: Any) -> str | None:
    """The key and archive of a sample (a dict with ``__key__``/``__url__``)
    or the path of a ``(path, data)`` pair; None for other elements."""
    if isinstance(element, dict) and "__key__" in element:
        url = element.get("__url__")
        return f"sample {element['__key__']!r}" + (f" of {url!r}" if url is not None else "")
    if type(element) is tuple and len(element) == 2 and isinstance(element[0], str):
        return f"element ({str(element[0])!r}, ...)"
    return None


def describe(element: Any) -> str:
    """``source_of`` where known, else a short repr; a list (a batch) by its
    first few elements."""
    if type(element) is list and element:
        shown = ", ".join(source_of(item) or _short.repr(item) for item in element[:_LIST_SHOWN])
        more = ", ..." if len(element) > _LIST_SHOWN else ""
        return f"a list of {len(element)}: {shown}{more}"
    return source_of(element) or f"element {_short.repr(element)}"

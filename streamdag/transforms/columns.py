"""Column selection for map/filter over tuples, lists and dicts (torchdata's
``input_col``/``output_col`` semantics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.params import Col


def with_columns(fn: Callable[..., Any], input_col: Col, output_col: Col) -> Callable[[Any], Any]:
    """Wrap ``fn`` to read ``input_col`` of each element and write the result
    to ``output_col`` (see ``placing``)."""
    cols = columns(input_col)
    place = placing(input_col, output_col)

    def apply(sample: Any) -> Any:
        return place(sample, fn(*[sample[c] for c in cols]))

    return apply


def columns(input_col: Col) -> list[Any]:
    """The columns a function reads, as a list."""
    return list(input_col) if isinstance(input_col, (list, tuple)) else [input_col]


def placing(input_col: Col, output_col: Col) -> Callable[[Any, Any], Any]:
    """``place(sample, value)``: a copy of ``sample`` with ``value`` written to
    ``output_col`` (None: replace the input column; -1: append). With several
    input columns and no output column, the first is replaced and the others
    removed."""
    cols = columns(input_col)
    if output_col is None:
        target, drop = cols[0], sorted(cols[1:], key=_sort_key, reverse=True)
    else:
        target, drop = output_col, []

    def place(sample: Any, value: Any) -> Any:
        out = dict(sample) if isinstance(sample, dict) else list(sample)
        if target == -1 and not isinstance(out, dict):
            out.append(value)
        else:
            out[target] = value
        for col in drop:
            del out[col]
        return out if isinstance(sample, (dict, list)) else tuple(out)

    return place


def selecting(fn: Callable[..., Any], input_col: Col) -> Callable[[Any], Any]:
    """``fn`` applied to ``input_col`` of each element (for filter)."""
    cols = columns(input_col)
    return lambda sample: fn(*[sample[c] for c in cols])


def arity(input_col: Col) -> int:
    """How many arguments the function gets: one per input column, else the element."""
    return len(input_col) if isinstance(input_col, (list, tuple)) else 1


def _sort_key(col: int | str) -> tuple[int, Any]:
    return (0, col) if isinstance(col, int) else (1, col)

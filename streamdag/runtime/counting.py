"""Counting in C: positions read back from C iterators, so neither resume
state nor statistics cost a Python call per element."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import compress, count, islice
from typing import Any


def position_of(it: Any, length: int) -> int:
    """How many items a list/tuple/range iterator has yielded, read from the C
    iterator itself (its pickling support). An exhausted list or tuple
    iterator gives no index; a range iterator gives the range still to come
    instead of an index since Python 3.12."""
    reduced = it.__reduce__()
    if len(reduced) > 2 and reduced[2] is not None:
        return reduced[2]
    rest = reduced[1][0]
    return length - len(rest) if isinstance(rest, range) else length


def counted(iterable: Iterable[Any], skip: int = 0) -> tuple[Iterator[Any], Any]:
    """The items of ``iterable`` after the first ``skip``, and a counter whose
    value (``count_of``) is the number consumed so far, advanced in C by
    ``compress``."""
    counter = count(1)
    items = compress(iter(iterable), counter)
    if skip:
        next(islice(items, skip, skip), None)
    return items, counter


def count_of(counter: Any) -> int:
    """How many items a ``counted`` counter has let through."""
    return int(repr(counter)[6:-1]) - 1


class Tally:
    """A count over a node's passes (epochs, cycles, resumes) whose live part
    is read from the current pass's iterators only when asked."""

    def __init__(self) -> None:
        self._done = 0
        self._live: Callable[[], int] | None = None

    def follow(self, live: Callable[[], int]) -> None:
        """A new pass starts: keep what the last one counted, then read ``live``."""
        self._done = self.value
        self._live = live

    @property
    def value(self) -> int:
        return self._done + (self._live() if self._live is not None else 0)

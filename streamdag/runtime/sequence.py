"""The base of sources that yield an in-memory sequence (IterableWrapper over
a list, FileLister over its listing)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .counting import Tally, position_of
from .node import RuntimeNode


class SequenceSource(RuntimeNode):
    """Base of sources that yield an in-memory sequence: the state is the
    position, read from the list iterator itself, and resume is O(1)."""

    def setup(self) -> None:
        self._start = 0
        self._it: Any = None
        self._length = 0
        self._out = Tally()

    def reset(self) -> None:
        self._start = 0
        self._it = None

    def iterate_sequence(self, items: list[Any] | tuple[Any, ...] | range) -> Iterator[Any]:
        """An iterator over ``items`` from the restored position."""
        start, self._start = self._start, 0
        self._length = len(items)
        self._it = it = iter(items)
        if start:
            it.__setstate__(start)
        self._out.follow(lambda: position_of(it, len(items)) - start)
        return it

    def counted(self) -> tuple[int | None, int | None]:
        return None, self._out.value

    def state(self) -> int:
        return self._start if self._it is None else position_of(self._it, self._length)

    def restore(self, state: int | None) -> None:
        self._start = state or 0
        self._it = None

"""header(n): the first n elements."""

from __future__ import annotations

from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from ..runtime.counting import position_of
from ..runtime.node import RuntimeNode

_second = itemgetter(1)


class HeaderNode(RuntimeNode):
    """Counts with a range iterator zipped in front of the input (zip stops on
    the range first, so no element past the limit is pulled from upstream)."""

    def setup(self) -> None:
        self._taken = 0
        self._counter: Any = None

    def reset(self) -> None:
        self._taken = 0
        self._counter = None

    def iterator(self) -> Iterator[Any]:
        self._counter = iter(range(self._taken, self.params["limit"]))
        return map(_second, zip(self._counter, self.inputs[0].iterator(), strict=False))

    def _count(self) -> int:
        if self._counter is None:
            return self._taken
        left = len(range(self._taken, self.params["limit"]))
        return self._taken + position_of(self._counter, left)

    def state(self) -> dict:
        return {"taken": self._count(), "in": self.inputs[0].state()}

    def restore(self, state: dict) -> None:
        self._taken = state["taken"]
        self._counter = None
        self.inputs[0].restore(state["in"])

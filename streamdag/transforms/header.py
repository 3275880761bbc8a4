"""header(n): the first n elements."""

from __future__ import annotations

from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from ..runtime.counting import position_of
from ..runtime.node import ResumableNode

_second = itemgetter(1)


class HeaderNode(ResumableNode):
    """Counts with a range iterator zipped in front of the input (zip stops on
    the range first, so no element past the limit is pulled from upstream).
    Every pass (under ``cycle``) counts from 0 unless a state was restored."""

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self._taken = 0 if restored is None else restored["taken"]
        self._counter = iter(range(self._taken, self.params["limit"]))
        return map(_second, zip(self._counter, self.inputs[0].iterator(), strict=False))

    def live_state(self) -> dict:
        left = len(range(self._taken, self.params["limit"]))
        return {
            "taken": self._taken + position_of(self._counter, left),
            "in": self.inputs[0].state(),
        }

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        if state is not None:
            self.inputs[0].restore(state["in"])

"""cycle(n): repeat the input n times (forever with None)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..runtime.node import RuntimeNode


class CycleNode(RuntimeNode):
    """Each pass re-iterates the input, so random nodes upstream draw a new
    seed per pass. An empty input ends the cycle instead of spinning."""

    def setup(self) -> None:
        self._pass = 0
        self._resumed = False

    def reset(self) -> None:
        self._pass = 0
        self._resumed = False

    def iterator(self) -> Iterator[Any]:
        return self._run(self.params["count"])

    def _run(self, count: int | None) -> Iterator[Any]:
        resumed, self._resumed = self._resumed, False
        while count is None or self._pass < count:
            empty = True
            for item in self.inputs[0].iterator():
                empty = False
                yield item
            if empty and not resumed:
                return
            resumed = False
            self._pass += 1

    def state(self) -> dict:
        return {"pass": self._pass, "in": self.inputs[0].state()}

    def restore(self, state: dict) -> None:
        self._pass = state["pass"]
        self._resumed = True
        self.inputs[0].restore(state["in"])

"""cycle(n): repeat the input n times (forever with None)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..runtime.node import ResumableNode


class CycleNode(ResumableNode):
    """Each pass re-iterates the input, so random nodes upstream draw a new
    seed per pass. An empty input ends the cycle instead of spinning. A cycle
    inside another cycle starts again from its first pass."""

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self._pass = 0 if restored is None else restored["pass"]
        count = self.params["count"]
        if count is not None and self._pass >= count:
            return iter(())
        # the input starts now, not at the first pull: a state restored into it
        # is used up in this pass even if nothing is pulled, never in the next
        return self._run(count, self.inputs[0].iterator(), resumed=restored is not None)

    def _run(self, count: int | None, items: Iterator[Any], resumed: bool) -> Iterator[Any]:
        while True:
            empty = True
            for item in items:
                empty = False
                yield item
            if empty and not resumed:
                return
            resumed = False
            self._pass += 1
            if count is not None and self._pass >= count:
                return
            items = self.inputs[0].iterator()

    def live_state(self) -> dict:
        return {"pass": self._pass, "in": self.inputs[0].state()}

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        if state is not None:
            self.inputs[0].restore(state["in"])

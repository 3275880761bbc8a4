"""enumerate, add_index and in_batch_shuffle: per-element work that needs the
element's position, counted by a C range iterator zipped in front of the
input (as ``header`` counts), so the state is a number read on demand."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from typing import Any

from ..core.seeds import derive_seed
from ..runtime.counting import position_of
from ..runtime.node import RuntimeNode


class CountingNode(RuntimeNode):
    """State: the position of the next element and the input's state."""

    def setup(self) -> None:
        self._next = 0
        self._counter: Any = None

    def reset(self) -> None:
        self.setup()

    def counter(self) -> Iterator[int]:
        """Positions from where this epoch (or the restored state) starts."""
        self._counter = iter(range(self._next, sys.maxsize))
        return self._counter

    def _position(self) -> int:
        if self._counter is None:
            return self._next
        return self._next + position_of(self._counter, sys.maxsize - self._next)

    def state(self) -> dict:
        return {"next": self._position(), "in": self.inputs[0].state()}

    def restore(self, state: dict) -> None:
        self._next = state["next"]
        self._counter = None
        self.inputs[0].restore(state["in"])


class EnumerateNode(CountingNode):
    """``(index, element)`` pairs from ``starting_index`` on."""

    def iterator(self) -> Iterator[tuple[int, Any]]:
        start = self.params["starting_index"]
        return zip(map(start.__add__, self.counter()), self.inputs[0].iterator(), strict=False)


class AddIndexNode(CountingNode):
    """Each dict element with its position under ``index_name``."""

    def iterator(self) -> Iterator[dict]:
        return map(self._add, self.counter(), self.inputs[0].iterator())

    def _add(self, index: int, row: Any) -> dict:
        if not isinstance(row, dict):
            raise NotImplementedError(
                "add_index: only rows or batches of type dict are "
                f"supported, got {type(row).__name__}"
            )
        return {**row, self.params["index_name"]: index}


class InBatchShuffleNode(CountingNode):
    """Each batch in a random order drawn from (node seed, batch position):
    the same order after a resume, whatever the service."""

    def iterator(self) -> Iterator[list]:
        self._seed = self.seed()
        return map(self._shuffle, self.counter(), self.inputs[0].iterator())

    def _shuffle(self, index: int, batch: Any) -> list:
        return random.Random(derive_seed(self._seed, index)).sample(batch, len(batch))

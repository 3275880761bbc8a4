"""batch: groups of n. Filled with C ``islice``, so between two output batches
nothing is held back and the node has no state of its own."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from ..runtime.node import RuntimeNode


class BatchNode(RuntimeNode):
    def setup(self) -> None:
        self._in = self._out = 0  # statistics: counted per batch, not per element

    def iterator(self) -> Iterator[list[Any]]:
        return self._batches(
            self.inputs[0].iterator(), self.params["batch_size"], self.params["drop_last"]
        )

    def _batches(self, it: Iterator[Any], size: int, drop_last: bool) -> Iterator[list[Any]]:
        while True:
            batch = list(islice(it, size))
            self._in += len(batch)
            if len(batch) == size:
                self._out += 1
                yield batch
                continue
            if batch and not drop_last:
                self._out += 1
                yield batch
            return

    def counted(self) -> tuple[int | None, int | None]:
        return self._in, self._out

"""sharding_filter: element i goes to the copy with shard_index i % num_shards
(global worker = rank * num_workers + worker). Runs as C ``islice``."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from itertools import chain, islice
from typing import Any

from ..runtime.counting import Tally, count_of, counted
from ..runtime.node import RuntimeNode


class ShardingFilterNode(RuntimeNode):
    """Own state: how many input elements to skip before the next one that
    belongs to this worker."""

    def setup(self) -> None:
        self.passthrough = self.graph.worker.num_shards == 1  # then everything passes
        self._out = Tally()  # what this worker kept: one C counter step per kept element
        self._skip: int | None = None
        self._resume_skip: int | None = None

    def iterator(self) -> Iterator[Any]:
        worker = self.graph.worker
        total = worker.num_shards
        it = self.inputs[0].iterator()
        if total == 1:
            self._skip, self._resume_skip = 0, None
            return it
        # a fresh pass (a new epoch, or the next pass of a cycle) starts at this
        # worker's index; only a restored pass continues from the saved skip
        self._skip = worker.shard_index if self._resume_skip is None else self._resume_skip
        self._resume_skip = None
        mine, counter = counted(chain.from_iterable(self._shard(it, total)))
        self._out.follow(partial(count_of, counter))
        return mine

    def counted(self) -> tuple[int | None, int | None]:
        return None, (None if self.passthrough else self._out.value)

    def _shard(self, it: Iterator[Any], total: int) -> Iterator[Iterator[Any]]:
        next(islice(it, self._skip, self._skip), None)
        self._skip = total - 1  # true from the first element this worker yields
        yield islice(it, 0, None, total)

    def state(self) -> dict:
        return {"skip": self._skip, "in": self.inputs[0].state()}

    def restore(self, state: dict) -> None:
        self._skip = self._resume_skip = state["skip"]
        self.inputs[0].restore(state["in"])

    def reset(self) -> None:
        self._skip = self._resume_skip = None

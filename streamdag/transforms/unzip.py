"""round_robin_demux and unzip: fork-like hubs of torchdata's names.

round_robin_demux sends element i to output ``i % num_instances``; unzip
sends every element to all outputs, each of which takes one column of it."""

from __future__ import annotations

from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from ..core.ops.transforms import unzip_columns
from ..runtime.attribution import framed
from .fork import DemuxNode, ForkNode, HubNode


class RoundRobinDemuxNode(HubNode):
    check_buffer = DemuxNode.check_buffer  # torchdata builds it on demux

    def route(self, item: Any) -> tuple[int, ...]:
        return ((self._replay.seq - 1) % self.params["num_instances"],)


class UnzipNode(HubNode):
    check_buffer = ForkNode.check_buffer  # torchdata builds it on fork

    def setup(self) -> None:
        super().setup()
        self._columns = unzip_columns(self.params)

    def route(self, item: Any) -> Any:
        return self._queues

    def open(self, index: int) -> Iterator[Any]:
        column = framed(itemgetter(self._columns[index]), self, always=True)
        return map(column, super().open(index))

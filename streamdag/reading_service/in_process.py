"""InProcessReadingService: the graph runs in the calling thread."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..core.node import Node
from ..runtime.graph import RuntimeGraph
from ..runtime.node import WorkerContext
from ..stats import sampler
from ..stats.sampler import StackSampler
from ..stats.snapshot import snapshot
from .base import ReadingService
from .capabilities import CollectsStats, Ranked


class InProcessReadingService(ReadingService, Ranked, CollectsStats):
    """No workers, no copies: the reference service and the fastest for
    cheap per-element work."""

    def __init__(self, worker: WorkerContext | None = None) -> None:
        self._worker = worker or WorkerContext()
        self._graph: RuntimeGraph | None = None
        self._sampler: StackSampler | None = None

    def set_rank(self, rank: int, world_size: int) -> None:
        self._worker = WorkerContext(rank, world_size)

    def initialize(self, output: Node) -> None:
        self._graph = RuntimeGraph(output, self._worker)

    def epoch(self, base_seed: int, epoch: int, state: Any | None) -> Iterator[Any]:
        graph = self._require_graph()
        graph.close()
        graph.start_epoch(base_seed, epoch)
        if state is not None:
            graph.restore(state)
        return graph.iterate()

    def state(self) -> Any:
        return self._require_graph().state()

    def shutdown(self) -> None:
        if self._graph is not None:
            self._graph.close()
        if self._sampler is not None:
            self._sampler = None
            sampler.release()

    def collect_stats(self) -> None:
        graph = self._require_graph()
        if self._sampler is None:
            self._sampler = sampler.acquire()
            self._sampler.watch(graph)
            graph.counting = True

    def stats_snapshots(self) -> list[dict[str, Any]]:
        return [snapshot([self._require_graph()], self._sampler)] if self._sampler else []

    def _require_graph(self) -> RuntimeGraph:
        if self._graph is None:
            raise RuntimeError("InProcessReadingService used before initialize()")
        return self._graph

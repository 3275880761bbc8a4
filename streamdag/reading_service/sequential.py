"""SequentialReadingService: a distributed service around an executing one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..core.node import Node
from ..errors import ParamError
from .base import ReadingService
from .capabilities import CAPABILITIES, methods_of
from .distributed import DistributedReadingService


class SequentialReadingService(ReadingService):
    """``SequentialReadingService(dist, mp)``: each rank of ``dist`` runs the
    graph with ``mp`` (any service that takes a rank: in-process, processes,
    threads, or your own). The distributed service supplies rank and world
    size (so sharding splits over rank * num_workers + worker), the shared
    base seed and equal batch counts; the executing service runs the graph.
    Order does not matter.

    The composition is ``dist`` wrapping ``mp`` (``outer``); this service runs
    it and has the capabilities it has (``streamdag.reading_service``), as
    the same bound methods."""

    def __init__(self, *services: ReadingService) -> None:
        dists = [s for s in services if isinstance(s, DistributedReadingService)]
        others = [s for s in services if not isinstance(s, DistributedReadingService)]
        if not services or len(dists) > 1 or len(others) > 1:
            msg = (
                "SequentialReadingService composes at most one DistributedReadingService "
                "with at most one executing service (InProcess, MultiProcessing or "
                f"MultiThreading), got {[type(s).__name__ for s in services]}"
            )
            raise ParamError(msg)
        if dists and others:
            dists[0].wrap(others[0])
        self.services = services
        #: the composed service: the distributed one, else the executing one
        self.outer: ReadingService = dists[0] if dists else others[0]
        for capability in CAPABILITIES:
            if isinstance(self.outer, capability):
                for name in methods_of(capability):
                    setattr(self, name, getattr(self.outer, name))

    def initialize(self, output: Node) -> None:
        self.outer.initialize(output)

    def epoch(self, base_seed: int, epoch: int, state: Any | None) -> Iterator[Any]:
        return self.outer.epoch(base_seed, epoch, state)

    def state(self) -> Any:
        return self.outer.state()

    def shutdown(self) -> None:
        self.outer.shutdown()

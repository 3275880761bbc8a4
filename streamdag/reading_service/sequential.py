"""SequentialReadingService: a distributed service around an executing one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..core.node import Node
from ..errors import ParamError
from .base import ReadingService
from .distributed import DistributedReadingService


class SequentialReadingService(ReadingService):
    """``SequentialReadingService(dist, mp)``: each rank of ``dist`` runs the
    graph with ``mp`` (any executing service: in-process, processes, threads).
    The distributed service supplies rank and world size (so sharding splits
    over rank * num_workers + worker), the shared base seed and equal batch
    counts; the executing service runs the graph. Order does not matter."""

    def __init__(self, *services: ReadingService) -> None:
        dists = [s for s in services if isinstance(s, DistributedReadingService)]
        others = [s for s in services if not isinstance(s, DistributedReadingService)]
        if not services or len(dists) > 1 or len(others) > 1:
            msg = ("SequentialReadingService composes at most one DistributedReadingService "
                   "with at most one executing service (InProcess, MultiProcessing or "
                   f"MultiThreading), got {[type(s).__name__ for s in services]}")
            raise ParamError(msg)
        outer = dists[0] if dists else others[0]
        if dists and others:
            dists[0].wrap(others[0])
        self.services = services
        self._outer: ReadingService = outer

    def initialize(self, output: Node) -> None:
        self._outer.initialize(output)

    def epoch(self, base_seed: int, epoch: int, state: Any | None) -> Iterator[Any]:
        return self._outer.epoch(base_seed, epoch, state)

    def state(self) -> Any:
        return self._outer.state()

    def agree_seed(self, seed: int) -> int:
        return self._outer.agree_seed(seed)

    def prepare_epoch(self, base_seed: int, epoch: int) -> None:
        self._outer.prepare_epoch(base_seed, epoch)

    def set_rank(self, rank: int, world_size: int) -> None:
        self._outer.set_rank(rank, world_size)

    def shutdown(self) -> None:
        self._outer.shutdown()

    def collect_stats(self) -> None:
        self._outer.collect_stats()

    def stats_snapshots(self) -> list[dict[str, Any]]:
        return self._outer.stats_snapshots()

    def gather(self, snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._outer.gather(snapshots)

"""The reading-service interface: one small class, swappable (like an httpx
transport). The in-process service is the reference implementation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from ..core.node import Node


class ReadingService(ABC):
    """Runs a graph for ``DataLoader2``: one epoch at a time, resumable."""

    @abstractmethod
    def initialize(self, output: Node) -> None:
        """Take the graph (once, before the first epoch)."""

    @abstractmethod
    def epoch(self, base_seed: int, epoch: int, state: Any | None) -> Iterator[Any]:
        """The elements of one epoch, resumed from ``state`` if given. Starting
        a new epoch tears down the previous one."""

    @abstractmethod
    def state(self) -> Any:
        """Plain-data state after the last element the epoch iterator yielded."""

    def set_rank(self, rank: int, world_size: int) -> None:
        """Run as rank ``rank`` of ``world_size`` (called by a distributed
        service before ``initialize``)."""
        msg = f"{type(self).__name__} cannot run under a distributed reading service"
        raise TypeError(msg)

    def agree_seed(self, seed: int) -> int:
        """The base seed all ranks use (distributed services broadcast rank 0's)."""
        return seed

    def prepare_epoch(self, base_seed: int, epoch: int) -> None:
        """A hint, given when an epoch starts: the one after it is most
        likely ``epoch`` with ``base_seed``. A service may start it as soon as
        it can; it must give the same elements whatever the next ``epoch()``
        call asks for."""
        return  # the default: start nothing ahead

    @abstractmethod
    def shutdown(self) -> None:
        """Release workers, threads and files. Idempotent."""

    def collect_stats(self) -> None:
        """From now on count elements and sample time per node (called by
        ``DataLoader2(stats=True)`` in the thread that trains)."""
        raise TypeError(f"{type(self).__name__} does not collect statistics")

    def stats_snapshots(self) -> list[dict[str, Any]]:
        """This rank's statistics: plain-data snapshots (streamdag.stats.snapshot)
        of every process and thread worker, to be summed."""
        return []

    def gather(self, snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every rank's snapshots (a collective call where there are ranks)."""
        return snapshots

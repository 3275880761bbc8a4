"""The reading-service interface: four methods and a context manager,
swappable like an httpx transport. What a service may do beyond that is a
capability (``capabilities.py``). The in-process service is the reference
implementation; docs/reading-services.md, "Writing a reading service", has
the contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, Self

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

    @abstractmethod
    def shutdown(self) -> None:
        """Release workers, threads and files. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

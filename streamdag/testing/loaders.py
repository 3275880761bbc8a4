"""Loaders the checks run: one fresh service per loader, elements made
comparable with ``==``, state passed through msgpack as a user saves it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice
from typing import Any

import msgpack

from ..datapipes.datapipe import DataPipe
from ..reading_service.base import ReadingService
from ..reading_service.dataloader2 import DataLoader2
from ..reading_service.multiprocessing import MultiProcessingReadingService
from ..reading_service.multithreading import MultiThreadingReadingService

ServiceFactory = Callable[[], ReadingService]

#: one factory per way of running a graph: the checks of an op pass under each
SERVICES: dict[str, ServiceFactory | None] = {
    "in_process": None,
    "threads": partial(MultiThreadingReadingService, 2),
    "processes": partial(MultiProcessingReadingService, 2),
}


def loader(
    pipe: DataPipe[Any], seed: int, reading_service: ServiceFactory | None
) -> DataLoader2[Any]:
    """A loader with a fresh service from the factory (in process for None)."""
    if isinstance(reading_service, ReadingService):
        raise TypeError(
            "pass a factory of reading services (e.g. functools.partial("
            "MultiProcessingReadingService, 2)): each loader needs its own"
        )
    service = reading_service() if reading_service is not None else None
    return DataLoader2(pipe, reading_service=service, seed=seed)


def plain(value: Any) -> Any:
    """Comparable with ==: tensors and arrays become (type, dtype, nested lists)."""
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        return (type(value).__name__, str(value.dtype), value.tolist())
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def saved(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` after a trip through msgpack, as a checkpoint on disk."""
    return msgpack.unpackb(msgpack.packb(state), strict_map_key=False)


def take(it: Iterator[Any], count: int) -> list[Any]:
    """The next ``count`` elements, without running into StopIteration."""
    return list(islice(it, count))


def run_epochs(
    pipe: DataPipe[Any],
    epochs: int = 1,
    seed: int = 0,
    reading_service: ServiceFactory | None = None,
) -> list[list[Any]]:
    """Epochs 0 .. epochs-1 of one uninterrupted loader."""
    with loader(pipe, seed, reading_service) as it:
        return [list(it) for _ in range(epochs)]


def run_epoch(
    pipe: DataPipe[Any],
    seed: int = 0,
    epoch: int = 0,
    reading_service: ServiceFactory | None = None,
) -> list[Any]:
    """One epoch of a fresh loader."""
    with loader(pipe, seed, reading_service) as it:
        it.set_epoch(epoch)
        return list(it)


def resumed_epoch(
    pipe: DataPipe[Any],
    stop: int,
    seed: int = 0,
    epoch: int = 0,
    reading_service: ServiceFactory | None = None,
) -> tuple[list[Any], list[Any]]:
    """The first ``stop`` elements, then the rest from a fresh loader that
    loaded the state saved after them."""
    with loader(pipe, seed, reading_service) as first:
        first.set_epoch(epoch)
        head = take(iter(first), stop)
        state = saved(first.state_dict())
    with loader(pipe, seed, reading_service) as second:
        second.load_state_dict(state)
        return head, list(second)

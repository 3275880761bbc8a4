"""torchdata's ``datapipe_adapter_fn``: functions ``pipe -> pipe`` that
DataLoader2 applies to the pipe before the reading service gets it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..datapipes.datapipe import DataPipe

Adapter = Callable[[DataPipe[Any]], DataPipe[Any]]
Adapters = Adapter | Iterable[Adapter]


def adapt(datapipe: DataPipe[Any], adapters: Adapters | None) -> DataPipe[Any]:
    """``datapipe`` after each adapter in turn (one adapter or an iterable)."""
    if adapters is None:
        return datapipe
    listed = (
        [adapters]
        if callable(adapters)
        else list(adapters)
        if isinstance(adapters, Iterable)
        else [adapters]
    )
    if not all(callable(a) for a in listed):
        raise TypeError(
            f"DataLoader2: datapipe_adapter_fn must be a function pipe -> pipe "
            f"or a list of them, got {adapters!r}"
        )
    for adapter in listed:
        datapipe = adapter(datapipe)
        if not isinstance(datapipe, DataPipe):
            raise TypeError(
                f"DataLoader2: the adapter {adapter!r} returned {datapipe!r}, not a DataPipe"
            )
    return datapipe

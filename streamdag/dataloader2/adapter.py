"""torchdata's ``torchdata.dataloader2.adapter``: functions ``pipe -> pipe``
for ``DataLoader2(datapipe, datapipe_adapter_fn=...)``."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any

from ..datapipes.datapipe import DataPipe
from ..datapipes.torchdata_names import ADAPTER, not_provided
from ..graph_io import Graph


class Adapter(ABC):
    """A callable that returns the pipe to run instead of the one given."""

    @abstractmethod
    def __call__(self, datapipe: DataPipe[Any]) -> DataPipe[Any]: ...


class Shuffle(Adapter):
    """torchdata's ``Shuffle(enable=True)``: sets every ``shuffle`` of the
    graph on (``True``, also those turned off with ``set_shuffle(False)``) or
    off (``False``: the loader yields the input order); ``True`` on a graph
    without a shuffle adds a ``shuffle()`` at the end, with a warning, as
    torchdata does; ``None`` changes nothing."""

    def __init__(self, enable: bool | None = True) -> None:
        self.enable = enable

    def __call__(self, datapipe: DataPipe[Any]) -> DataPipe[Any]:
        if self.enable is None:
            return datapipe
        graph = Graph(datapipe)
        shuffles = graph.find_all(op="shuffle")
        if self.enable and not shuffles:
            warnings.warn(
                "Shuffle(True): the pipe has no shuffle; adding shuffle() at the end "
                "(its default buffer may be too small for your data)",
                stacklevel=2,
            )
            return datapipe.shuffle()
        for node in shuffles:
            graph = graph.set_param(node.id, "enabled", bool(self.enable))
        return graph.to_datapipe()


class CacheTimeout(Adapter):
    """torchdata's ``CacheTimeout(timeout)``: sets the ``timeout`` (seconds
    a worker waits for a file another one is caching) of every
    ``end_caching`` of the graph."""

    def __init__(self, timeout: float | None = None) -> None:
        if timeout is None:
            raise ValueError("timeout should be integer")
        self.timeout = timeout

    def __call__(self, datapipe: DataPipe[Any]) -> DataPipe[Any]:
        graph = Graph(datapipe)
        for node in graph.find_all(op="end_caching"):
            graph = graph.set_param(node.id, "timeout", self.timeout)
        return graph.to_datapipe()


def __getattr__(name: str) -> Any:
    raise not_provided(__name__, name, ADAPTER)


__all__ = ["Adapter", "CacheTimeout", "Shuffle"]

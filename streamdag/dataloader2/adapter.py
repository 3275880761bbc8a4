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
    """torchdata's ``Shuffle(enable=True)``: ``False`` takes every ``shuffle``
    out of the graph (the loader yields the input order); ``True`` adds a
    ``shuffle()`` at the end, with a warning, when the graph has none;
    ``None`` changes nothing."""

    def __init__(self, enable: bool | None = True) -> None:
        self.enable = enable

    def __call__(self, datapipe: DataPipe[Any]) -> DataPipe[Any]:
        if self.enable is None:
            return datapipe
        graph = Graph(datapipe)
        shuffles = graph.find_all(op="shuffle")
        if self.enable:
            if shuffles:
                return datapipe
            warnings.warn(
                "Shuffle(True): the pipe has no shuffle; adding shuffle() at the end "
                "(its default buffer may be too small for your data)",
                stacklevel=2,
            )
            return datapipe.shuffle()
        for node in shuffles:
            graph = graph.remove(node.id)
        return graph.to_datapipe()


def __getattr__(name: str) -> Any:
    raise not_provided(__name__, name, ADAPTER)


__all__ = ["Adapter", "Shuffle"]

"""torchdata's ``datapipes.map``: map-style pipes, indexed by key (see
``map_style``), and the converters between them and iterable DataPipes."""

from __future__ import annotations

from typing import Any, TypeVar

from . import map_style
from .datapipe import DataPipe
from .map_style import (
    Batcher,
    Concater,
    InMemoryCacheHolder,
    IterToMapConverter,
    MapDataPipe,
    Mapper,
    UnZipper,
    Zipper,
)

T = TypeVar("T")


class SequenceWrapper(map_style.SequenceWrapper[T]):
    __doc__ = map_style.SequenceWrapper.__doc__

    def pipe_class(self) -> type[DataPipe[Any]]:
        return DataPipe


def Shuffler(datapipe: MapDataPipe[T], *, indices: list[Any] | None = None) -> DataPipe[T]:  # noqa: N802
    """torchdata's map-style ``Shuffler(datapipe, *, indices=None)``:
    ``datapipe.shuffle(indices=indices)``, an iterable pipe of the items in an
    order from the loader's seed."""
    return datapipe.shuffle(indices=indices)


__all__ = [
    "Batcher",
    "Concater",
    "InMemoryCacheHolder",
    "IterToMapConverter",
    "MapDataPipe",
    "Mapper",
    "SequenceWrapper",
    "Shuffler",
    "UnZipper",
    "Zipper",
]

"""Map-style pipes (torchdata's ``torchdata.datapipes.map``): in-memory
objects indexed by key, not graph nodes. They meet the graph in two places:
``to_iter_datapipe()`` (and ``shuffle()``) make an iterable pipe that looks
the indices up, and ``zip_with_map`` looks keys up in one. A
``SequenceWrapper``'s list or dict goes into the graph as plain data, so
such pipes save and load like any other (``item_of`` is one of the
functions a graph file may name).

This module does not import the DataPipe handle (which imports it, for
``to_map_datapipe``): a map-style pipe makes iterable pipes of the class
its root gives (``pipe_class``)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..core.node import Node
from ..core.ops.transforms import unzip_columns
from ..core.registry import get_op

if TYPE_CHECKING:
    from .datapipe import DataPipe

T = TypeVar("T")


def item_of(table: Any, index: Any) -> Any:
    """``table[index]``: how an iterable pipe reads a map-style one."""
    return table[index]


def _identity(x: Any) -> Any:
    return x


class MapDataPipe(Generic[T]):
    """Base of map-style pipes: ``pipe[index]`` and ``len(pipe)``."""

    def __getitem__(self, index: Any) -> T:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def lookup_table(self) -> Any:
        """What a graph holds to look items up: this pipe (a SequenceWrapper
        gives its plain list or dict, which can be saved)."""
        return self

    def pipe_class(self) -> type[DataPipe[Any]]:
        """The iterable pipe class this pipe converts to (its source's)."""
        raise NotImplementedError

    def _over(self, keys: Any) -> DataPipe[Any]:
        spec = get_op("iterable_wrapper")
        return self.pipe_class()(Node(spec.name, spec.complete({"iterable": keys}), ()))

    def map(self, fn: Callable[[T], Any] = _identity) -> MapDataPipe[Any]:
        """``fn(pipe[index])`` at each index."""
        return Mapper(self, fn)

    def batch(
        self,
        batch_size: int,
        drop_last: bool = False,
        wrapper_class: Callable[[list[Any]], Any] = list,
    ) -> MapDataPipe[Any]:
        """Index i: the items i*batch_size .. (i+1)*batch_size - 1."""
        return Batcher(self, batch_size, drop_last, wrapper_class)

    def zip(self, *others: MapDataPipe[Any]) -> MapDataPipe[tuple[Any, ...]]:
        """Index i: a tuple of index i of each pipe; as long as the shortest."""
        return Zipper(self, *others)

    def concat(self, *others: MapDataPipe[Any]) -> MapDataPipe[Any]:
        """This pipe's indices, then each of ``others``' shifted after it."""
        return Concater(self, *others)

    def unzip(
        self, sequence_length: int, columns_to_skip: Sequence[int] | None = None
    ) -> list[MapDataPipe[Any]]:
        """One pipe per column of the sequence items (less ``columns_to_skip``)."""
        return UnZipper(self, sequence_length, columns_to_skip)

    def in_memory_cache(self) -> MapDataPipe[T]:
        """Each item computed once, when first indexed, then kept in memory."""
        return InMemoryCacheHolder(self)

    def to_iter_datapipe(self, indices: list[Any] | None = None) -> DataPipe[T]:
        """An iterable pipe of the items at ``indices`` (default 0 .. len - 1), in order."""
        keys = indices if indices else range(len(self))
        return self._over(keys).map(partial(item_of, self.lookup_table()))

    def shuffle(self, *, indices: list[Any] | None = None) -> DataPipe[T]:
        """The items in a seeded random order, new each epoch (an iterable pipe)."""
        keys = list(range(len(self)) if indices is None else indices)
        shuffled = self._over(keys).shuffle(buffer_size=max(1, len(keys)), initial=None)
        return shuffled.map(partial(item_of, self.lookup_table()))


class SequenceWrapper(MapDataPipe[T]):
    """A list, tuple or dict as a map-style pipe; copied unless ``deepcopy=False``
    (``streamdag.datapipes.map.SequenceWrapper`` converts to DataPipes)."""

    def __init__(self, sequence: Sequence[T] | Mapping[Any, T], deepcopy: bool = True) -> None:
        self.sequence = sequence
        if deepcopy:
            try:
                self.sequence = copy.deepcopy(sequence)
            except TypeError:
                warnings.warn(
                    "The input sequence can not be deepcopied, please be aware of "
                    "in-place modification would affect source data",
                    stacklevel=2,
                )

    def __getitem__(self, index: Any) -> T:
        return self.sequence[index]

    def __len__(self) -> int:
        return len(self.sequence)

    def lookup_table(self) -> Any:
        return self.sequence


class Mapper(MapDataPipe[Any]):
    def __init__(self, source: MapDataPipe[Any], fn: Callable[[Any], Any]) -> None:
        self.source, self.fn = source, fn

    def __getitem__(self, index: Any) -> Any:
        return self.fn(self.source[index])

    def __len__(self) -> int:
        return len(self.source)

    def pipe_class(self) -> type[DataPipe[Any]]:
        return self.source.pipe_class()

    def to_iter_datapipe(self, indices: list[Any] | None = None) -> DataPipe[Any]:
        return self.source.to_iter_datapipe(indices).map(self.fn)


class Batcher(MapDataPipe[Any]):
    def __init__(
        self,
        source: MapDataPipe[Any],
        batch_size: int,
        drop_last: bool,
        wrapper_class: Callable[[list[Any]], Any],
    ) -> None:
        if batch_size <= 0:
            raise AssertionError("Batch size is required to be larger than 0!")
        self.source, self.batch_size = source, batch_size
        self.drop_last, self.wrapper_class = drop_last, wrapper_class

    def __getitem__(self, index: int) -> Any:
        batch: list[Any] = []
        try:
            batch.extend(
                self.source[i]
                for i in range(index * self.batch_size, (index + 1) * self.batch_size)
            )
        except IndexError as exc:
            if self.drop_last or not batch:
                raise IndexError(f"Index {index} is out of bound.") from exc
        return self.wrapper_class(batch)

    def pipe_class(self) -> type[DataPipe[Any]]:
        return self.source.pipe_class()

    def __len__(self) -> int:
        n, size = len(self.source), self.batch_size
        return n // size if self.drop_last else (n + size - 1) // size


class _Several(MapDataPipe[Any]):
    def __init__(self, *sources: MapDataPipe[Any]) -> None:
        if not sources:
            raise ValueError("Expected at least one DataPipe, but got nothing")
        if not all(isinstance(s, MapDataPipe) for s in sources):
            raise TypeError("Expected all inputs to be `MapDataPipe`")
        self.sources = sources

    def pipe_class(self) -> type[DataPipe[Any]]:
        return self.sources[0].pipe_class()


class Zipper(_Several):
    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        out = []
        for source in self.sources:
            try:
                out.append(source[index])
            except IndexError as exc:
                raise IndexError(
                    f"Index {index} is out of range for one of the input MapDataPipes {source}."
                ) from exc
        return tuple(out)

    def __len__(self) -> int:
        return min(len(s) for s in self.sources)


class Concater(_Several):
    def __getitem__(self, index: int) -> Any:
        offset = 0
        for source in self.sources:
            if index - offset < len(source):
                return source[index - offset]
            offset += len(source)
        raise IndexError(f"Index {index} is out of range.")

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)


def UnZipper(  # noqa: N802 - torchdata's name (its class returns a list)
    source: MapDataPipe[Sequence[Any]],
    sequence_length: int,
    columns_to_skip: Sequence[int] | None = None,
) -> list[MapDataPipe[Any]]:
    """torchdata's map-style ``UnZipper``: the pipes of ``source.unzip(...)``."""
    if sequence_length < 1:
        raise ValueError(
            f"Expected `sequence_length` larger than 0, but {sequence_length} is found"
        )
    params = {"sequence_length": sequence_length, "columns_to_skip": columns_to_skip}
    columns = unzip_columns(params)
    if not columns:
        raise RuntimeError(
            "All instances are being filtered out in UnZipper. Please check "
            "the input `sequence_length` and `columns_to_skip`."
        )
    return [_Column(source, column) for column in columns]


class _Column(MapDataPipe[Any]):
    """Index i: column ``column`` of the source's item i (one output of unzip)."""

    def __init__(self, source: MapDataPipe[Sequence[Any]], column: int) -> None:
        self.source, self.column = source, column

    def __getitem__(self, index: Any) -> Any:
        return self.source[index][self.column]

    def __len__(self) -> int:
        return len(self.source)

    def pipe_class(self) -> type[DataPipe[Any]]:
        return self.source.pipe_class()


class InMemoryCacheHolder(MapDataPipe[T]):
    """The source's items, each computed when first indexed and then kept
    (torchdata's map-style ``in_memory_cache``: items of a map-style pipe are
    computed at each lookup otherwise). The cache lives in this object: each
    worker process fills its own copy."""

    def __init__(self, source: MapDataPipe[T]) -> None:
        self.source = source
        self.cache: dict[Any, T] = {}

    def __getitem__(self, index: Any) -> T:
        if index not in self.cache:
            self.cache[index] = self.source[index]
        return self.cache[index]

    def __len__(self) -> int:
        return len(self.source)

    def pipe_class(self) -> type[DataPipe[Any]]:
        return self.source.pipe_class()


class IterToMapConverter(MapDataPipe[Any]):
    """An iterable pipe's ``(key, value)`` pairs (or ``key_value_fn(element)``)
    as a dict, read in full when first indexed; a later duplicate key wins."""

    def __init__(
        self, datapipe: Iterable[Any], key_value_fn: Callable[[Any], Any] | None = None
    ) -> None:
        self.datapipe, self.key_value_fn = datapipe, key_value_fn
        self._map: dict[Any, Any] | None = None

    def _load(self) -> dict[Any, Any]:
        if self._map is None:
            table: dict[Any, Any] = {}
            for item in self.datapipe:
                pair = item if self.key_value_fn is None else self.key_value_fn(item)
                try:
                    size = len(pair)
                except TypeError:
                    raise TypeError(
                        f"Cannot convert dictionary update element {type(pair)} "
                        f"({pair}) to a sequence"
                    ) from None
                if size != 2:
                    raise ValueError(
                        f"dictionary update sequence element has length {size}, 2 is required"
                    )
                key, value = pair
                if key in table:
                    warnings.warn(
                        f"Found duplicate key {key}. Please check your `key_value_fn`", stacklevel=3
                    )
                table[key] = value
            self._map = table
        return self._map

    def __getitem__(self, index: Any) -> Any:
        try:
            return self._load()[index]
        except KeyError:
            raise IndexError(f"Index {index} is invalid for IterToMapConverter.") from None

    def __len__(self) -> int:
        if self._map is None:
            try:
                return len(self.datapipe)  # type: ignore[arg-type]
            except TypeError:
                pass
        return len(self._load())

    def lookup_table(self) -> Any:
        return self._load()

    def pipe_class(self) -> type[DataPipe[Any]]:
        return type(self.datapipe)  # type: ignore[return-value]

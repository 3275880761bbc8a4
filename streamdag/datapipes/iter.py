"""torchdata's class-style names where torchdata had them, so a port changes
only the import line: ``from streamdag.datapipes.iter import FileOpener, Mapper``.

Each name is a thin constructor over the functional API: ``Mapper(dp, fn)`` is
``dp.map(fn)`` and takes the same arguments, in the same order, after the
source pipe (passed positionally). It returns a ``DataPipe``, so class names
serve to build pipes, not for ``isinstance`` checks. A torchdata name that
streamdag does not provide fails to import with the reason (see
``torchdata_names``)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from .datapipe import DataPipe, IterableWrapper, IterDataPipe, SampleMultiplexer, node_of
from .file_lister import FileLister
from .torchdata_names import ITER, not_provided

P = ParamSpec("P")
R = TypeVar("R")


def _class_style(
    name: str, method: Callable[Concatenate[Any, P], R]
) -> Callable[Concatenate[DataPipe[Any], P], R]:
    """torchdata's ``name(datapipe, *args, **kwargs)`` as ``datapipe.method(...)``,
    with the method's signature and documentation."""

    @functools.wraps(method)
    def construct(datapipe: DataPipe[Any], /, *args: P.args, **kwargs: P.kwargs) -> R:
        node_of(name, datapipe)  # a clear error naming the class for a non-DataPipe
        return method(datapipe, *args, **kwargs)

    signature = inspect.signature(method)
    source, *rest = signature.parameters.values()
    construct.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[source.replace(name="datapipe", kind=source.POSITIONAL_ONLY), *rest]
    )
    construct.__name__ = construct.__qualname__ = name
    construct.__module__ = __name__
    construct.__doc__ = (
        f"torchdata's ``{name}(datapipe, ...)``: "
        f"``datapipe.{method.__name__}(...)``.\n\n{method.__doc__ or ''}"
    )
    return construct


def _joined(name: str, method: Callable[..., DataPipe[Any]]) -> Callable[..., DataPipe[Any]]:
    """torchdata's ``name(*datapipes)`` as ``first.method(*rest)``."""

    def construct(*datapipes: DataPipe[Any]) -> DataPipe[Any]:
        if not datapipes:
            raise TypeError(f"{name} needs at least one DataPipe")
        first, *rest = (DataPipe(node_of(name, dp)) for dp in datapipes)
        return method(first, *rest)

    construct.__name__ = construct.__qualname__ = name
    construct.__doc__ = (
        f"torchdata's ``{name}(*datapipes)``: ``datapipes[0].{method.__name__}(*datapipes[1:])``."
    )
    return construct


# -- sources and files ----------------------------------------------------
FSSpecFileLister = FileLister  # torchdata's fsspec lister; streamdag's FileLister is fsspec
FileOpener = _class_style("FileOpener", DataPipe.open_files)
FSSpecFileOpener = _class_style("FSSpecFileOpener", DataPipe.open_files_by_fsspec)

# -- per element ----------------------------------------------------------
Mapper = _class_style("Mapper", DataPipe.map)
Filter = _class_style("Filter", DataPipe.filter)
FlatMapper = _class_style("FlatMapper", DataPipe.flatmap)

# -- grouping -------------------------------------------------------------
Batcher = _class_style("Batcher", DataPipe.batch)
UnBatcher = _class_style("UnBatcher", DataPipe.unbatch)
Collator = _class_style("Collator", DataPipe.collate)

# -- order and splitting --------------------------------------------------
Shuffler = _class_style("Shuffler", DataPipe.shuffle)
ShardingFilter = _class_style("ShardingFilter", DataPipe.sharding_filter)
Header = _class_style("Header", DataPipe.header)
Cycler = _class_style("Cycler", DataPipe.cycle)

# -- several pipes ----------------------------------------------------------
Zipper = _joined("Zipper", DataPipe.zip)
Concater = _joined("Concater", DataPipe.concat)
Multiplexer = _joined("Multiplexer", DataPipe.mux)
Forker = _class_style("Forker", DataPipe.fork)
Demultiplexer = _class_style("Demultiplexer", DataPipe.demux)

# -- execution helpers --------------------------------------------------------
Prefetcher = _class_style("Prefetcher", DataPipe.prefetch)


def InMemoryCacheHolder(datapipe: DataPipe[Any], size: None = None) -> DataPipe[Any]:  # noqa: N802
    """torchdata's ``InMemoryCacheHolder(datapipe, size=None)``:
    ``datapipe.in_memory_cache()``. torchdata's ``size`` (megabytes) has no
    equivalent: streamdag bounds the cache by elements,
    ``in_memory_cache(max_items=...)``."""
    if size is not None:
        raise TypeError(
            "InMemoryCacheHolder: size (megabytes) is not supported; bound the "
            "cache by elements with datapipe.in_memory_cache(max_items=...)"
        )
    return DataPipe(node_of("InMemoryCacheHolder", datapipe)).in_memory_cache()


# -- archives, compression, text ------------------------------------------------
TarArchiveLoader = _class_style("TarArchiveLoader", DataPipe.load_from_tar)
ZipArchiveLoader = _class_style("ZipArchiveLoader", DataPipe.load_from_zip)
Decompressor = _class_style("Decompressor", DataPipe.decompress)
LineReader = _class_style("LineReader", DataPipe.readlines)
CSVParser = _class_style("CSVParser", DataPipe.parse_csv)
WebDataset = _class_style("WebDataset", DataPipe.webdataset)

__all__ = [
    "Batcher",
    "CSVParser",
    "Collator",
    "Concater",
    "Cycler",
    "Decompressor",
    "Demultiplexer",
    "FSSpecFileLister",
    "FSSpecFileOpener",
    "FileLister",
    "FileOpener",
    "Filter",
    "FlatMapper",
    "Forker",
    "Header",
    "InMemoryCacheHolder",
    "IterDataPipe",
    "IterableWrapper",
    "LineReader",
    "Mapper",
    "Multiplexer",
    "Prefetcher",
    "SampleMultiplexer",
    "ShardingFilter",
    "Shuffler",
    "TarArchiveLoader",
    "UnBatcher",
    "WebDataset",
    "ZipArchiveLoader",
    "Zipper",
]


def __getattr__(name: str) -> Any:
    raise not_provided(__name__, name, ITER)

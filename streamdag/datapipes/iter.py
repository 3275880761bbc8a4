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

from ..errors import ParamError
from .datapipe import (
    DataPipe,
    IterableWrapper,
    IterDataPipe,
    SampleMultiplexer,
    make_node,
    node_of,
)
from .file_lister import FileLister, with_length
from .map_style import MapDataPipe
from .torchdata_names import ITER, not_provided

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


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


def FileOpener(  # noqa: N802 - torchdata's name
    datapipe: DataPipe[str],
    /,
    mode: str = "r",
    encoding: str | None = None,
    length: int = -1,
    **kwargs: Any,
) -> DataPipe[tuple[str, Any]]:
    """torchdata's ``FileOpener(datapipe, mode, encoding, length)``:
    ``datapipe.open_files(mode, encoding, **kwargs)`` whose ``len()`` is
    ``length`` (-1: unknown)."""
    node_of("FileOpener", datapipe)
    return with_length(datapipe.open_files(mode, encoding, **kwargs), length)


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


def ShardingFilter(  # noqa: N802 - torchdata's name
    datapipe: DataPipe[T], /, sharding_group_filter: Any = None, **kwargs: Any
) -> DataPipe[T]:
    """torchdata's ``ShardingFilter(datapipe, sharding_group_filter=None)``:
    ``datapipe.sharding_filter()``, which splits over rank x worker as
    torchdata's default group does. A group filter (torchdata's
    ``SHARDING_PRIORITIES.DISTRIBUTED`` or ``.MULTIPROCESSING``: split over
    one level only) is refused: a ``ParamError`` says what to do instead."""
    if sharding_group_filter is not None:
        msg = (
            f"ShardingFilter: sharding_group_filter={sharding_group_filter!r} is not "
            "supported: streamdag's sharding_filter splits over rank x worker (torchdata's "
            "default group); to split over ranks only, put the worker part after a "
            ".main_process() boundary or run one worker per rank"
        )
        raise ParamError(msg)
    return DataPipe.sharding_filter(DataPipe(node_of("ShardingFilter", datapipe)), **kwargs)


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
PinMemory = _class_style("PinMemory", DataPipe.pin_memory)


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

# -- reader behaviour as torchdata's ------------------------------------------------
CSVDictParser = _class_style("CSVDictParser", DataPipe.parse_csv_as_dict)
JsonParser = _class_style("JsonParser", DataPipe.parse_json_files)

# -- downloads, caching, decompression, TFRecord, routed decoding -------------------
RoutedDecoder = _class_style("RoutedDecoder", DataPipe.routed_decode)
Extractor = _class_style("Extractor", DataPipe.extract)
Bz2FileLoader = _class_style("Bz2FileLoader", DataPipe.load_from_bz2)
XzFileLoader = _class_style("XzFileLoader", DataPipe.load_from_xz)
TFRecordLoader = _class_style("TFRecordLoader", DataPipe.load_from_tfrecord)
HttpReader = _class_style("HttpReader", DataPipe.read_from_http)
HashChecker = _class_style("HashChecker", DataPipe.check_hash)
OnDiskCacheHolder = _class_style("OnDiskCacheHolder", DataPipe.on_disk_cache)
EndOnDiskCacheHolder = _class_style("EndOnDiskCacheHolder", DataPipe.end_caching)

# -- the remaining transform names ---------------------------------------------
MultiplexerLongest = _joined("MultiplexerLongest", DataPipe.mux_longest)
ZipperLongest = _joined("ZipperLongest", DataPipe.zip_longest)
Enumerator = _class_style("Enumerator", DataPipe.enumerate)
IndexAdder = _class_style("IndexAdder", DataPipe.add_index)
Slicer = _class_style("Slicer", DataPipe.slice)
Dropper = _class_style("Dropper", DataPipe.drop)
Flattener = _class_style("Flattener", DataPipe.flatten)
Rows2Columnar = _class_style("Rows2Columnar", DataPipe.rows2columnar)
ParagraphAggregator = _class_style("ParagraphAggregator", DataPipe.lines_to_paragraphs)
Repeater = _class_style("Repeater", DataPipe.repeat)
InBatchShuffler = _class_style("InBatchShuffler", DataPipe.in_batch_shuffle)
IterKeyZipper = _class_style("IterKeyZipper", DataPipe.zip_with_iter)
MapKeyZipper = _class_style("MapKeyZipper", DataPipe.zip_with_map)
RoundRobinDemultiplexer = _class_style("RoundRobinDemultiplexer", DataPipe.round_robin_demux)
UnZipper = _class_style("UnZipper", DataPipe.unzip)
RandomSplitter = _class_style("RandomSplitter", DataPipe.random_split)
LengthSetter = _class_style("LengthSetter", DataPipe.set_length)
FullSync = _class_style("FullSync", DataPipe.fullsync)

# -- grouping -----------------------------------------------------------------------
Grouper = _class_style("Grouper", DataPipe.groupby)
BucketBatcher = _class_style("BucketBatcher", DataPipe.bucketbatch)
MaxTokenBucketizer = _class_style("MaxTokenBucketizer", DataPipe.max_token_bucketize)


# -- function-applying names ---------------------------------------------------------
BatchMapper = _class_style("BatchMapper", DataPipe.map_batches)
ThreadPoolMapper = _class_style("ThreadPoolMapper", DataPipe.threadpool_map)
ShuffledFlatMapper = _class_style("ShuffledFlatMapper", DataPipe.shuffled_flatmap)
ShardExpander = _class_style("ShardExpander", DataPipe.shard_expand)
StreamReader = _class_style("StreamReader", DataPipe.read_from_stream)
BatchAsyncMapper = _class_style("BatchAsyncMapper", DataPipe.async_map_batches)


def Sampler(  # noqa: N802 - torchdata's name
    datapipe: DataPipe[Any],
    /,
    sampler: Callable[..., Any] | None = None,
    sampler_args: tuple[Any, ...] | None = None,
    sampler_kwargs: dict[str, Any] | None = None,
    *,
    name: str | None = None,
) -> DataPipe[Any]:
    """torchdata's ``Sampler(datapipe, sampler=SequentialSampler, sampler_args=None,
    sampler_kwargs=None)``: what ``sampler(*sampler_args, data_source=...,
    **sampler_kwargs)`` yields (indices) over a source of ``len(datapipe)``
    (known in advance: read when the pipe is built), in an order from the
    loader's seed for a random sampler. The sampler's ``data_source`` is
    ``range(len(datapipe))``: the elements are never read."""
    params = {
        "sampler": sampler,
        "sampler_args": None if sampler_args is None else list(sampler_args),
        "sampler_kwargs": sampler_kwargs,
        "length": len(DataPipe(node_of("Sampler", datapipe))),
    }
    return DataPipe(make_node("sampler", params, (), name))


def MapToIterConverter(datapipe: MapDataPipe[Any], indices: Any = None) -> DataPipe[Any]:  # noqa: N802
    """torchdata's ``MapToIterConverter(datapipe, indices=None)``:
    ``datapipe.to_iter_datapipe(indices)``."""
    return datapipe.to_iter_datapipe(indices)


__all__ = [
    "Sampler",
    "BatchAsyncMapper",
    "StreamReader",
    "ShardExpander",
    "ShuffledFlatMapper",
    "ThreadPoolMapper",
    "BatchMapper",
    "Batcher",
    "BucketBatcher",
    "Bz2FileLoader",
    "CSVDictParser",
    "CSVParser",
    "Collator",
    "Concater",
    "Cycler",
    "Decompressor",
    "Demultiplexer",
    "Dropper",
    "EndOnDiskCacheHolder",
    "Enumerator",
    "Extractor",
    "FSSpecFileLister",
    "FSSpecFileOpener",
    "FileLister",
    "FileOpener",
    "Filter",
    "FlatMapper",
    "Flattener",
    "Forker",
    "FullSync",
    "Grouper",
    "HashChecker",
    "Header",
    "HttpReader",
    "InBatchShuffler",
    "InMemoryCacheHolder",
    "IndexAdder",
    "IterDataPipe",
    "IterKeyZipper",
    "IterableWrapper",
    "JsonParser",
    "LengthSetter",
    "LineReader",
    "MapKeyZipper",
    "MapToIterConverter",
    "Mapper",
    "MaxTokenBucketizer",
    "Multiplexer",
    "MultiplexerLongest",
    "OnDiskCacheHolder",
    "ParagraphAggregator",
    "PinMemory",
    "Prefetcher",
    "RandomSplitter",
    "Repeater",
    "RoundRobinDemultiplexer",
    "RoutedDecoder",
    "Rows2Columnar",
    "SampleMultiplexer",
    "ShardingFilter",
    "Shuffler",
    "Slicer",
    "TFRecordLoader",
    "TarArchiveLoader",
    "UnBatcher",
    "UnZipper",
    "WebDataset",
    "XzFileLoader",
    "ZipArchiveLoader",
    "Zipper",
    "ZipperLongest",
]


def __getattr__(name: str) -> Any:
    raise not_provided(__name__, name, ITER)

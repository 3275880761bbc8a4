"""The same pipeline code run with torchdata 0.9 and with streamdag, only the
import line changed: ``torchdata.datapipes.iter`` -> ``streamdag.datapipes.iter``
and ``torchdata.dataloader2`` -> ``streamdag.dataloader2``."""

from __future__ import annotations

import gzip
import io
import tarfile
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import streamdag.dataloader2 as sd_dl2
import streamdag.datapipes.iter as sd_iter

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    td_iter = pytest.importorskip("torchdata.datapipes.iter")
    td_dl2 = pytest.importorskip("torchdata.dataloader2")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def double(x: int) -> int:
    return 2 * x


def is_even(x: int) -> bool:
    return x % 2 == 0


def pair(x: int) -> list[int]:
    return [x, -x]


def mod3(x: int) -> int:
    return x % 3


def plain(value: Any) -> Any:
    """Comparable: lists for tuples, lists, DataChunks and tensors; bytes for streams."""
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "read"):
        return value.read()
    if hasattr(value, "tolist"):  # tensors
        return value.tolist()
    return value


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    for i in range(3):
        (root / f"t{i}.txt").write_text(f"line a{i}\nline b{i}\n")
    (root / "c.csv").write_text("x,y\n1,2\n3,4\n")
    with tarfile.open(root / "a.tar", "w") as tar:
        for name, data in [
            ("s0.cls", b"0"),
            ("s0.txt", b"zero"),
            ("s1.cls", b"1"),
            ("s1.txt", b"one"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(root / "a.zip", "w") as zf:
        zf.writestr("m0.txt", b"first")
        zf.writestr("m1.txt", b"second")
    (root / "g.txt.gz").write_bytes(gzip.compress(b"squeezed\n"))
    return root


def _rows(ns: ModuleType) -> Any:
    return ns.IterableWrapper(list(range(12)))


# Each builds a pipeline from the module ``ns`` (torchdata's or streamdag's
# ``datapipes.iter``) and a folder of files; the code is the same for both.
PIPELINES: dict[str, Any] = {
    "IterableWrapper": lambda ns, d: ns.IterableWrapper([3, 1, 2]),
    "Mapper": lambda ns, d: ns.Mapper(_rows(ns), double),
    "Mapper-cols": lambda ns, d: ns.Mapper(ns.Mapper(_rows(ns), pair), double, 1),
    "Filter": lambda ns, d: ns.Filter(_rows(ns), is_even),
    "FlatMapper": lambda ns, d: ns.FlatMapper(_rows(ns), pair),
    "Batcher": lambda ns, d: ns.Batcher(_rows(ns), 5),
    "Batcher-drop_last": lambda ns, d: ns.Batcher(_rows(ns), 5, True),
    "UnBatcher": lambda ns, d: ns.UnBatcher(ns.Batcher(_rows(ns), 5)),
    "Collator": lambda ns, d: ns.Collator(ns.Batcher(_rows(ns), 4)),
    "ShardingFilter": lambda ns, d: ns.ShardingFilter(_rows(ns)),
    "Header": lambda ns, d: ns.Header(_rows(ns), 4),
    "Cycler": lambda ns, d: ns.Cycler(ns.Header(_rows(ns), 3), 3),
    "Zipper": lambda ns, d: ns.Zipper(_rows(ns), ns.Mapper(_rows(ns), double)),
    "Concater": lambda ns, d: ns.Concater(ns.Header(_rows(ns), 2), _rows(ns)),
    "Multiplexer": lambda ns, d: ns.Multiplexer(ns.Header(_rows(ns), 4), _rows(ns)),
    "Forker": lambda ns, d: ns.Zipper(*ns.Forker(_rows(ns), 2)),
    "Demultiplexer": lambda ns, d: ns.Concater(*ns.Demultiplexer(_rows(ns), 3, mod3)),
    "Prefetcher": lambda ns, d: ns.Prefetcher(_rows(ns), 3),
    "InMemoryCacheHolder": lambda ns, d: ns.InMemoryCacheHolder(_rows(ns)),
    "FileLister": lambda ns, d: ns.FileLister(str(d), "*.txt"),
    "FSSpecFileLister": lambda ns, d: ns.FSSpecFileLister(str(d), "*.txt"),
    "FileOpener": lambda ns, d: ns.FileOpener(ns.FileLister(str(d), "*.txt"), "rb"),
    "FSSpecFileOpener": lambda ns, d: ns.FSSpecFileOpener(ns.FileLister(str(d), "*.txt"), "rb"),
    "LineReader": lambda ns, d: ns.LineReader(
        ns.FileOpener(ns.FileLister(str(d), "*.txt"), "rb"), decode=True
    ),
    "TarArchiveLoader": lambda ns, d: ns.TarArchiveLoader(
        ns.FileOpener(ns.FileLister(str(d), "*.tar"), "rb")
    ),
    "ZipArchiveLoader": lambda ns, d: ns.ZipArchiveLoader(
        ns.FileOpener(ns.FileLister(str(d), "*.zip"), "rb")
    ),
    "Decompressor": lambda ns, d: ns.Decompressor(
        ns.FileOpener(ns.FileLister(str(d), "*.gz"), "rb")
    ),
    "CSVDictParser": lambda ns, d: ns.CSVDictParser(
        ns.FileOpener(ns.FileLister(str(d), "*.csv"), "rb")
    ),
    "MultiplexerLongest": lambda ns, d: ns.MultiplexerLongest(ns.Header(_rows(ns), 4), _rows(ns)),
    "ZipperLongest": lambda ns, d: ns.ZipperLongest(ns.Header(_rows(ns), 4), _rows(ns)),
    "Enumerator": lambda ns, d: ns.Enumerator(_rows(ns), 3),
    "IndexAdder": lambda ns, d: ns.IndexAdder(ns.Mapper(_rows(ns), as_dict)),
    "Slicer": lambda ns, d: ns.Slicer(ns.Mapper(_rows(ns), pair), 1),
    "Dropper": lambda ns, d: ns.Dropper(ns.Mapper(_rows(ns), pair), 0),
    "Flattener": lambda ns, d: ns.Flattener(ns.Batcher(ns.Mapper(_rows(ns), pair), 2)),
    "Rows2Columnar": lambda ns, d: ns.Rows2Columnar(ns.Batcher(ns.Mapper(_rows(ns), as_dict), 4)),
    "Repeater": lambda ns, d: ns.Repeater(_rows(ns), 2),
    "UnZipper": lambda ns, d: ns.Zipper(*ns.UnZipper(ns.Mapper(_rows(ns), pair), 2)),
    "RoundRobinDemultiplexer": lambda ns, d: ns.Zipper(*ns.RoundRobinDemultiplexer(_rows(ns), 3)),
    "LengthSetter": lambda ns, d: ns.LengthSetter(ns.Filter(_rows(ns), is_even), 6),
}

#: class-style names whose pipelines need a server, a cache folder, a seed or a
#: map-style pipe: their functional names have differential tests of their own
#: (tests/differential/test_io.py, test_newops.py, test_readers.py); here each
#: must construct its functional method
BY_FUNCTIONAL_NAME = {
    "Grouper": "groupby",  # the grouping names: tests/differential/test_grouping.py
    "BucketBatcher": "bucketbatch",
    "MaxTokenBucketizer": "max_token_bucketize",
    "RoutedDecoder": "routed_decode",
    "Extractor": "extract",
    "Bz2FileLoader": "load_from_bz2",
    "XzFileLoader": "load_from_xz",
    "TFRecordLoader": "load_from_tfrecord",
    "HttpReader": "read_from_http",
    "HashChecker": "check_hash",
    "OnDiskCacheHolder": "on_disk_cache",
    "EndOnDiskCacheHolder": "end_caching",
    "JsonParser": "parse_json_files",
    "ParagraphAggregator": "lines_to_paragraphs",
    "InBatchShuffler": "in_batch_shuffle",
    "IterKeyZipper": "zip_with_iter",
    "MapKeyZipper": "zip_with_map",
    "RandomSplitter": "random_split",
    "FullSync": "fullsync",
    "PinMemory": "pin_memory",  # torchdata's raises without CUDA: tests/test_pin_memory.py
    "BatchMapper": "map_batches",  # these six: tests/differential/test_remaining.py
    "ThreadPoolMapper": "threadpool_map",
    "ShuffledFlatMapper": "shuffled_flatmap",
    "ShardExpander": "shard_expand",
    "StreamReader": "read_from_stream",
    "BatchAsyncMapper": "async_map_batches",
}


def as_dict(x: int) -> dict[str, int]:
    return {"x": x}


UNORDERED = {"Shuffler", "SampleMultiplexer"}  # random: compared as multisets


def test_every_class_style_name_has_a_differential_case() -> None:
    checked = (
        {name.split("-")[0] for name in PIPELINES}
        | UNORDERED
        | {"IterDataPipe", "CSVParser", "WebDataset"}  # below
        | set(BY_FUNCTIONAL_NAME)
        | {"MapToIterConverter"}  # below
        | {"Sampler"}  # tests/differential/test_remaining.py
    )
    assert set(sd_iter.__all__) <= checked


@pytest.mark.parametrize("name", sorted(BY_FUNCTIONAL_NAME))
def test_class_style_names_construct_their_functional_method(name: str) -> None:
    """Each wraps the method of torchdata's functional name (its signature shows it)."""
    assert getattr(sd_iter, name).__wrapped__.__name__ == BY_FUNCTIONAL_NAME[name]


def test_map_to_iter_converter() -> None:
    td_map = pytest.importorskip("torchdata.datapipes.map")
    import streamdag.datapipes.map as sd_map

    def items(iter_ns: ModuleType, map_ns: ModuleType) -> list[Any]:
        return list(iter_ns.MapToIterConverter(map_ns.SequenceWrapper([5, 6, 7])))

    assert items(sd_iter, sd_map) == items(td_iter, td_map) == [5, 6, 7]


@pytest.mark.parametrize("case", sorted(PIPELINES))
def test_same_elements_in_the_same_order(case: str, files: Path) -> None:
    build = PIPELINES[case]
    expected = [plain(x) for x in build(td_iter, files)]
    got = [plain(x) for x in build(sd_iter, files)]
    assert got == expected


@pytest.mark.parametrize("ns_name", ["td", "sd"])
def test_random_nodes_yield_the_same_multiset(ns_name: str) -> None:
    ns = td_iter if ns_name == "td" else sd_iter
    shuffled = list(ns.Shuffler(_rows(ns), buffer_size=5))
    mixed = list(ns.SampleMultiplexer({_rows(ns): 0.5, ns.Mapper(_rows(ns), double): 0.5}, seed=1))
    assert sorted(shuffled) == list(range(12))
    assert Counter(mixed) == Counter(list(range(12)) + [2 * x for x in range(12)])


def test_csv_parser_and_webdataset_rows(files: Path) -> None:
    """CSVParser and WebDataset give torchdata's rows and samples."""

    def rows(ns: ModuleType) -> list[Any]:
        return list(ns.CSVParser(ns.FileOpener(ns.FileLister(str(files), "*.csv"), "rb")))

    def samples(ns: ModuleType) -> list[Any]:
        tar = ns.TarArchiveLoader(ns.FileOpener(ns.FileLister(str(files), "*.tar"), "rb"))
        return [
            {k: v if isinstance(v, str) else _read(v) for k, v in s.items()}
            for s in ns.WebDataset(tar)
        ]

    assert rows(sd_iter) == rows(td_iter)
    assert samples(sd_iter) == samples(td_iter)
    assert sd_iter.IterDataPipe is sd_iter.IterableWrapper([1]).__class__


def _read(value: Any) -> bytes:
    """A member's bytes (torchdata gives streams, streamdag bytes)."""
    return value.read() if hasattr(value, "read") else value


# -- DataLoader2 -------------------------------------------------------------------
def _loader_pipe(ns: ModuleType) -> Any:
    return ns.Batcher(ns.Mapper(ns.ShardingFilter(_rows(ns)), double), 2)


def test_dataloader2_in_process_same_order() -> None:
    td = td_dl2.DataLoader2(_loader_pipe(td_iter), reading_service=td_dl2.InProcessReadingService())
    sd = sd_dl2.DataLoader2(_loader_pipe(sd_iter), reading_service=sd_dl2.InProcessReadingService())
    try:
        for _ in range(2):  # two epochs
            assert [plain(b) for b in sd] == [plain(b) for b in td]
    finally:
        td.shutdown()
        sd.shutdown()


def test_dataloader2_two_workers_same_multiset() -> None:
    td = td_dl2.DataLoader2(
        _loader_pipe(td_iter), reading_service=td_dl2.MultiProcessingReadingService(2)
    )
    sd = sd_dl2.DataLoader2(
        _loader_pipe(sd_iter), reading_service=sd_dl2.MultiProcessingReadingService(2)
    )
    try:

        def elements(loader: Any) -> Counter:
            return Counter(x for batch in loader for x in batch)

        assert elements(sd) == elements(td)
    finally:
        td.shutdown()
        sd.shutdown()


@pytest.mark.parametrize("enable", [False, None])
def test_shuffle_adapter(enable: bool | None) -> None:
    def run(ns: ModuleType, dl2: ModuleType, adapter: Any) -> list[int]:
        loader = dl2.DataLoader2(ns.Shuffler(_rows(ns)), [adapter(enable)])
        try:
            return list(loader)
        finally:
            loader.shutdown()

    from torchdata.dataloader2.adapter import Shuffle as TDShuffle

    from streamdag.dataloader2.adapter import Shuffle

    got, expected = run(sd_iter, sd_dl2, Shuffle), run(td_iter, td_dl2, TDShuffle)
    if enable is False:
        assert got == expected == list(range(12))
    else:
        assert sorted(got) == sorted(expected)

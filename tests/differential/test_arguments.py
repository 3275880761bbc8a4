"""torchdata 0.9 arguments beyond the basic ones (``length``, ``deepcopy``,
``sharding_group_filter``, ``CacheTimeout``): the same code, only the import
line changed, gives the same elements, lengths and errors."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import streamdag as sd
import streamdag.dataloader2.adapter as sd_adapter
import streamdag.datapipes.iter as sd_iter
import streamdag.datapipes.map as sd_map
from streamdag.graph_io import dumps as sd_dumps
from streamdag.testing import assert_resumes, assert_round_trips

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    td_iter = pytest.importorskip("torchdata.datapipes.iter")
    td_adapter = pytest.importorskip("torchdata.dataloader2.adapter")
    td_map = pytest.importorskip("torchdata.datapipes.map")
    from torch.utils.data.datapipes.iter.sharding import SHARDING_PRIORITIES

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::UserWarning")]
LIBS = pytest.mark.parametrize("ns", [td_iter, sd_iter], ids=["torchdata", "streamdag"])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    for i in range(3):
        (root / f"{i}.txt").write_text(f"file {i}\n")
    return root


def bump(sample: dict[str, int]) -> dict[str, int]:
    """Changes its element in place, as some user functions do."""
    sample["n"] += 10
    return sample


def length(pipe: Any) -> int | type:
    try:
        return len(pipe)
    except TypeError:
        return TypeError


def test_file_lister_length(files: Path) -> None:
    for kwargs in ({}, {"length": 2}, {"length": 0}):
        ours = sd_iter.FileLister(str(files), "*.txt", **kwargs)
        theirs = td_iter.FileLister(str(files), "*.txt", **kwargs)
        assert (length(ours), list(ours)) == (length(theirs), list(theirs))
    assert len(sd_iter.FileLister(sd_iter.IterableWrapper([str(files)]), length=5)) == 5


@pytest.mark.parametrize("kwargs", [{}, {"length": 3}, {"length": 7}])
def test_file_opener_length(files: Path, kwargs: dict[str, Any]) -> None:
    def run(ns: ModuleType) -> tuple[Any, list[tuple[str, bytes]]]:
        pipe = ns.FileOpener(ns.FileLister(str(files), "*.txt"), "b", **kwargs)
        return length(pipe), [(path, stream.read()) for path, stream in pipe]

    assert run(sd_iter) == run(td_iter)


@pytest.mark.parametrize("deepcopy", [None, True, False])
def test_iterable_wrapper_deepcopy(deepcopy: bool | None) -> None:
    """Copied (the default): a function that changes elements in place does
    not change the next epoch's; not copied: it does, in both libraries."""

    def epochs(ns: ModuleType) -> list[list[dict[str, int]]]:
        kwargs = {} if deepcopy is None else {"deepcopy": deepcopy}
        pipe = ns.Mapper(ns.IterableWrapper([{"n": 1}, {"n": 2}], **kwargs), bump)
        return [[dict(x) for x in pipe] for _ in range(2)]  # copies: as each epoch saw them

    ours = epochs(sd_iter)
    assert ours == epochs(td_iter)
    assert (ours[0] == ours[1]) is (deepcopy is not False)


def test_iterable_wrapper_deepcopy_in_a_loader() -> None:
    source = [{"n": i} for i in range(4)]
    pipe = sd.IterableWrapper(source).map(bump)
    with sd.DataLoader2(pipe, reading_service=sd.MultiThreadingReadingService(1)) as loader:
        assert list(loader) == list(loader) == [{"n": i + 10} for i in range(4)]
    assert source == [{"n": i} for i in range(4)]


@LIBS
def test_sharding_filter_default_group(ns: ModuleType) -> None:
    pipe = ns.ShardingFilter(ns.IterableWrapper(range(6)), None)
    assert list(pipe) == list(range(6))


def test_sharding_filter_group_is_refused_with_the_reason() -> None:
    with pytest.raises(sd.ParamError, match=r"sharding_group_filter=.*rank x worker"):
        sd_iter.ShardingFilter(
            sd_iter.IterableWrapper(range(6)), SHARDING_PRIORITIES.MULTIPROCESSING
        )


def test_cache_timeout_sets_every_end_caching(tmp_path: Path) -> None:
    def cached(ns: ModuleType, name: str) -> Any:
        holder = ns.OnDiskCacheHolder(ns.IterableWrapper([name]), filepath_fn=str)
        return ns.EndOnDiskCacheHolder(ns.Mapper(holder, lambda n: (n, b"x")), mode="wb")

    paths = [str(tmp_path / "a"), str(tmp_path / "b")]
    pipe = sd_iter.Concater(*(cached(sd_iter, path) for path in paths))
    adapted = sd_adapter.CacheTimeout(7)(pipe)
    assert [n.params["timeout"] for n in sd.Graph(adapted).find_all(op="end_caching")] == [7, 7]
    with sd.DataLoader2(pipe, datapipe_adapter_fn=sd_adapter.CacheTimeout(7)) as loader:
        assert list(loader) == paths


@pytest.mark.parametrize("adapter", [td_adapter, sd_adapter], ids=["torchdata", "streamdag"])
def test_cache_timeout_needs_a_timeout(adapter: ModuleType) -> None:
    with pytest.raises(ValueError, match="timeout should be integer"):
        adapter.CacheTimeout()


@pytest.fixture(scope="module")
def gz_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gz")
    for i in range(2):
        (root / f"{i}.txt.gz").write_bytes(gzip.compress(f"line {i}\r\nzwei é\n".encode()))
    return root


@pytest.mark.parametrize(
    ("mode", "kwargs_for_open"),
    [
        ("r", {"compression": "gzip"}),
        ("rb", {"compression": "gzip"}),
        ("r", {"compression": "gzip", "encoding": "latin-1", "newline": ""}),
    ],
)
def test_fsspec_file_opener_kwargs_for_open(
    gz_files: Path, mode: str, kwargs_for_open: dict[str, Any]
) -> None:
    """``kwargs_for_open`` go to ``fs.open`` for each file: gzip files read
    decompressed, text in the encoding asked for."""

    def run(ns: ModuleType) -> list[tuple[str, Any]]:
        lister = ns.FileLister(str(gz_files), "*.gz")
        pipe = ns.FSSpecFileOpener(lister, mode, kwargs_for_open=kwargs_for_open)
        return [(path, stream.read()) for path, stream in pipe]

    ours = run(sd_iter)
    assert ours == run(td_iter)
    assert ours[0][1][:6] in ("line 0", b"line 0")


def test_fsspec_file_opener_kwargs_are_filesystem_options(gz_files: Path) -> None:
    def run(ns: ModuleType) -> list[str]:
        lister = ns.IterableWrapper([str(gz_files / "0.txt.gz")])
        pipe = lister.open_files_by_fsspec(kwargs_for_open={"compression": "gzip"}, auto_mkdir=True)
        return [stream.read() for _, stream in pipe]

    assert run(sd_iter) == run(td_iter) == ["line 0\nzwei é\n"]
    pipe = sd_iter.IterableWrapper(["a"]).open_files_by_fsspec(auto_mkdir=True)
    assert pipe.node.params["storage_options"] == {"auto_mkdir": True}


def test_kwargs_for_open_resume_and_are_saved(gz_files: Path) -> None:
    pipe = sd.FileLister(str(gz_files), "*.gz").open_files(kwargs_for_open={"compression": "gzip"})
    lines = pipe.readlines(return_path=False)
    assert assert_resumes(lines) == ["line 0", "zwei é", "line 1", "zwei é"]
    loaded = assert_round_trips(lines)
    assert loaded.node.inputs[0].params["kwargs_for_open"] == {"compression": "gzip"}


def test_kwargs_for_open_errors() -> None:
    files = sd.IterableWrapper(["a.gz"])
    with pytest.raises(sd.ParamError, match="encoding= or kwargs_for_open's 'encoding'"):
        files.open_files(encoding="utf-8", kwargs_for_open={"encoding": "latin-1"})
    with pytest.raises(sd.ParamError, match="retry .* takes no kwargs_for_open"):
        files.open_files(retry=True, kwargs_for_open={"compression": "gzip"})
    with pytest.raises(sd.ParamError, match="kwargs_for_open must be a dict"):
        files.open_files(kwargs_for_open=["gzip"])  # type: ignore[arg-type]


def test_kwargs_for_open_credentials_are_left_out_of_saved_graphs() -> None:
    """As in storage_options: graph files get shared, so credentials stay out."""
    options = {"block_size": 1024, "headers": {"Authorization": "Bearer tok-0005"}}
    pipe = sd.IterableWrapper(["http://127.0.0.1:9/a"]).open_files(
        kwargs_for_open=options, name="open"
    )
    with pytest.warns(UserWarning, match=r"'open' \(kwargs_for_open.headers.Authorization\)"):
        data = sd_dumps(pipe, "json")
    assert b"tok-0005" not in data and b"block_size" in data
    assert pipe.node.params["kwargs_for_open"] == options  # in memory: kept


MAPS = pytest.mark.parametrize("ns", [td_map, sd_map], ids=["torchdata", "streamdag"])


@pytest.mark.parametrize("columns_to_skip", [None, [1], (0, 2)])
def test_map_style_unzip(columns_to_skip: list[int] | None) -> None:
    def run(ns: ModuleType) -> list[tuple[int, Any, list[int]]]:
        source = ns.SequenceWrapper([(i, i + 10, i + 20) for i in range(4)])
        pipes = source.unzip(3, columns_to_skip=columns_to_skip)
        assert ns.UnZipper(source, 3, columns_to_skip)[0][2] == pipes[0][2]
        return [(len(p), p[1], list(p)) for p in pipes]

    assert run(sd_map) == run(td_map)


@MAPS
@pytest.mark.parametrize(
    ("args", "error"),
    [((0,), "Expected `sequence_length` larger than 0, but 0 is found"), ((2, [0, 1]), "filtered")],
)
def test_map_style_unzip_errors(ns: ModuleType, args: tuple[Any, ...], error: str) -> None:
    with pytest.raises((ValueError, RuntimeError), match=error) as caught:
        ns.SequenceWrapper([(1, 2)]).unzip(*args)
    assert caught.type is (ValueError if args == (0,) else RuntimeError)


class Counted:
    """A map function that counts its calls: how often an item was computed."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: int) -> int:
        self.calls += 1
        return x * 2


@MAPS
def test_map_style_in_memory_cache_computes_each_item_once(ns: ModuleType) -> None:
    fn = Counted()
    cached = ns.SequenceWrapper(range(5)).map(fn).in_memory_cache()
    first = [cached[i] for i in (3, 3, 1)]
    assert (first, list(cached), list(cached), len(cached)) == (
        [6, 6, 2],
        [0, 2, 4, 6, 8],
        [0, 2, 4, 6, 8],
        5,
    )
    assert fn.calls == 5
    assert isinstance(ns.InMemoryCacheHolder(ns.SequenceWrapper([1])), ns.MapDataPipe)


def test_map_style_unzip_and_cache_convert_to_iterable_pipes() -> None:
    fn = Counted()
    source = sd_map.SequenceWrapper([(i, str(i)) for i in range(3)])
    numbers, names = source.unzip(2)
    cached = numbers.map(fn).in_memory_cache()
    assert list(cached.to_iter_datapipe()) == list(cached.to_iter_datapipe()) == [0, 2, 4]
    assert fn.calls == 3
    with sd.DataLoader2(names.to_iter_datapipe()) as loader:
        assert list(loader) == ["0", "1", "2"]


@pytest.mark.parametrize("total_length", [None, 10])
def test_random_split_override_seed_redraws_every_group(total_length: int | None) -> None:
    """torchdata's ``override_seed`` on one group changes the split of all
    groups from the next iteration on, in place, and returns the group."""

    def run(ns: ModuleType) -> list[list[int]]:
        source = ns.IterableWrapper(range(10))
        a, b = ns.RandomSplitter(source, {"a": 5, "b": 5}, seed=0, total_length=total_length)
        got = [list(a), list(b)]
        assert a.override_seed(7) is a
        got += [list(a), list(b), list(b)]
        target = source.random_split({"a": 0.5, "b": 0.5}, seed=0, target="b")
        return [*got, list(target.override_seed(7))]

    ours = run(sd_iter)
    assert ours == run(td_iter)
    assert ours[0] != ours[2] and sorted(ours[2] + ours[3]) == list(range(10))


def test_random_split_override_seed_runs_in_loaders_and_saves() -> None:
    train, valid = sd.IterableWrapper(range(12)).random_split({"t": 2, "v": 1}, seed=0)
    valid.override_seed(5)
    assert_round_trips(train)
    with sd.DataLoader2(train.concat(valid)) as loader:
        assert sorted(loader) == list(range(12))
    assert (train.node.params["seed"], len(train), len(valid)) == (5, 8, 4)
    with pytest.raises(
        sd.ParamError, match="random_split: seed must be an int, float, str or bytes"
    ):
        train.override_seed([1])

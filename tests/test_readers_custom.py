"""Custom readers (@sd.reader): sources and per-element readers, the run
context, shardable readers, exact resume through state_dict or by skipping,
parameter checks, error policy, the streamdag.readers entry points and the
SQLite example."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

import streamdag as sd
from streamdag.datapipes import WorkerContext, make_node
from streamdag.datapipes.reader import available_readers, get_reader
from streamdag.errors import NodeError, ParamError
from streamdag.testing import ReaderConformance, assert_resumes, run_epoch
from tests.support.readers import run_with_stats

ROOT = Path(__file__).resolve().parents[1]


@sd.reader("test_countdown")
def countdown(ctx: sd.ReaderContext, start: int, step: int = 1):
    """A deterministic source."""
    yield from range(start, 0, -step)


@sd.reader("test_context")
def context_reader(ctx: sd.ReaderContext):
    yield (ctx.rank, ctx.world_size, ctx.worker_id, ctx.num_workers, ctx.epoch, ctx.seed)


@sd.reader("test_words", inputs=1)
def words(ctx: sd.ReaderContext, item, upper: bool = False):
    """Per input element: the words of a file."""
    path, stream = item
    for word in stream.read().decode().split():
        yield word.upper() if upper else word


class Counter:
    """A class reader with its own O(1) state; counts how it was started."""

    starts: list = []

    def __init__(self, ctx, limit):
        self.limit = limit
        self.next = 0

    def __iter__(self):
        Counter.starts.append(self.next)
        while self.next < self.limit:
            self.next += 1
            yield self.next - 1

    def state_dict(self):
        return {"next": self.next}

    def load_state_dict(self, state):
        self.next = state["next"]


counter = sd.reader("test_counter")(Counter)


@sd.reader("test_sharded", shardable=True)
def sharded(ctx: sd.ReaderContext, n: int):
    yield from range(ctx.shard_index, n, ctx.num_shards)


@sd.reader("test_flaky")
def flaky(ctx: sd.ReaderContext, fail_at: int):
    for i in range(10):
        if i == fail_at:
            raise OSError("disk on fire")
        yield i


def test_source_reader_runs_and_resumes_by_skipping():
    dp = countdown(start=10, step=2)
    assert list(dp) == [10, 8, 6, 4, 2]
    assert assert_resumes(dp.shuffle(3), stops=list(range(6)))


def test_source_reader_read_to_its_end_by_a_batch_resumes_at_its_end():
    """The batch pulls the end of the run before the loop takes the batch:
    a state saved then resumes nothing, not the run again."""
    assert assert_resumes(countdown(start=3).batch(4), stops=[0, 1]) == [[3, 2, 1]]


def test_reader_is_the_function_with_a_name():
    assert countdown.name == "test_countdown"
    assert countdown.__doc__ == "A deterministic source."
    assert "test_countdown" in available_readers()
    assert get_reader("test_countdown").definition is countdown.definition


def test_context_has_rank_worker_epoch_and_shared_seed():
    outs = []
    for worker in range(2):
        service = sd.InProcessReadingService(WorkerContext(worker_id=worker, num_workers=2))
        with sd.DataLoader2(context_reader(), reading_service=service, seed=3) as loader:
            loader.set_epoch(4)
            outs.append(list(loader)[0])
    assert [o[:5] for o in outs] == [(0, 1, 0, 2, 4), (0, 1, 1, 2, 4)]
    assert outs[0][5] == outs[1][5]  # a source is upstream of sharding: one seed for all


def test_per_element_reader(tmp_path):
    for name, text in [("a.txt", "one two"), ("b.txt", "three")]:
        (tmp_path / name).write_text(text)
    files = sd.FileLister(str(tmp_path)).open_files(mode="b")
    assert list(words(files, upper=True)) == ["ONE", "TWO", "THREE"]
    assert list(files.read_with("test_words")) == ["one", "two", "three"]
    assert_resumes(files.read_with(words), stops=[0, 1, 2, 3])


def test_class_reader_resumes_from_its_state_dict():
    dp = counter(limit=20).batch(3)
    Counter.starts.clear()
    full = assert_resumes(dp, stops=[2, 5])
    assert full[-1] == [18, 19]
    assert 6 in Counter.starts and 15 in Counter.starts  # restarted at the row, not re-read


def test_shardable_reader_splits_and_seeds_per_worker():
    outs = []
    for worker in range(2):
        service = sd.InProcessReadingService(WorkerContext(worker_id=worker, num_workers=2))
        dp = sharded(n=40).map(int).shuffle(5)
        outs.append(list(sd.DataLoader2(dp, reading_service=service, seed=1)))
    assert sorted(outs[0] + outs[1]) == list(range(40))
    assert all(x % 2 == 0 for x in outs[0])
    orders = [[x // 2 for x in out] for out in outs]
    assert orders[0] != orders[1]  # the shuffle after it draws a seed per worker


@pytest.mark.parametrize(
    "service", [sd.MultiThreadingReadingService, sd.MultiProcessingReadingService]
)
def test_shardable_reader_under_workers_is_split_without_a_warning(service):
    """The reader is the sharding point: no "duplicates" warning, each element once."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with sd.DataLoader2(sharded(n=40).map(int), reading_service=service(2)) as loader:
            assert sorted(loader) == list(range(40))


def test_sharding_filter_after_a_shardable_reader_is_an_error():
    with pytest.raises(ParamError, match="remove the sharding_filter"):
        run_epoch(sharded(n=4).sharding_filter())


def test_bad_params_fail_at_construction():
    with pytest.raises(ParamError, match=r"test_countdown: .*start.*the reader takes: start, step"):
        countdown(stop=3)
    with pytest.raises(ParamError, match="test_countdown: on_error"):
        countdown(start=3, on_error="ignore")
    with pytest.raises(ParamError, match="reserved"):
        sd.reader("test_reserved")(lambda_free_reserved)


def lambda_free_reserved(ctx, name):
    yield name


@pytest.mark.parametrize(
    ("policy", "expected", "skipped"), [("skip", [0, 1, 2], 1), ("warn", [0, 1, 2], 1)]
)
def test_reader_error_policy(policy, expected, skipped):
    with pytest.warns(sd.SkippedInputWarning) if policy == "warn" else _nothing():
        out, stats = run_with_stats(flaky(fail_at=3, on_error=policy))
    assert out == expected and stats["test_flaky"]["skipped"] == skipped
    with pytest.raises(NodeError, match=r"test_flaky node .*reader 'test_flaky'.*disk on fire"):
        run_epoch(flaky(fail_at=3))


class _nothing:  # noqa: N801 - a null context manager read like pytest.warns
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_entry_point_reader_found_by_name(tmp_path, monkeypatch):
    """A package declaring a reader under 'streamdag.readers' is loaded the
    first time a graph names it."""
    pkg = tmp_path / "sd_plugin_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        def squares(ctx, n):
            yield from (i * i for i in range(n))
    """)
    )
    dist = tmp_path / "sd_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sd-plugin-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[streamdag.readers]\nplugin_squares = sd_plugin_demo:squares\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sd_plugin_demo", raising=False)
    assert "plugin_squares" in available_readers()
    dp = sd.DataPipe(make_node("plugin_squares", {"n": 4}))
    assert list(dp) == [0, 1, 4, 9]
    assert list(get_reader("plugin_squares")(n=3)) == [0, 1, 4]
    with pytest.raises(ParamError, match="unknown op 'plugin_nope'"):
        make_node("plugin_nope", {})


def load_example():
    """examples/custom_reader.py, imported once under one module name."""
    module = sys.modules.get("custom_reader_example")
    if module is None:
        spec = importlib.util.spec_from_file_location(
            "custom_reader_example", ROOT / "examples" / "custom_reader.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["custom_reader_example"] = module
        spec.loader.exec_module(module)
    return module


def test_sqlite_example_runs():
    result = load_example().main()
    assert result == {
        "batches": 20,
        "exact_resume": True,
        "shares": [500, 500],
        "reloaded_same": True,
    }


class TestSqliteExampleConforms(ReaderConformance):
    """The example's reader passes the suite third-party readers get."""

    sharded = True
    resume_stops = (0, 1, 37, 99, 100)

    def make_pipe(self, tmp_path):
        module = load_example()
        module.make_database(tmp_path / "t.db", rows=100)
        return module.sqlite_rows(path=str(tmp_path / "t.db"), table="items", batch_rows=16)


class TestWebDatasetChainConforms(ReaderConformance):
    sharded = True

    def make_pipe(self, tmp_path):
        from tests.support.readers import samples_tar

        for k in range(4):
            samples_tar(tmp_path / f"{k}.tar", 5, start=5 * k)
        return (
            sd.FileLister(str(tmp_path), masks="*.tar")
            .shuffle()
            .sharding_filter()
            .open_files(mode="b")
            .load_from_tar()
            .webdataset()
            .decode()
        )

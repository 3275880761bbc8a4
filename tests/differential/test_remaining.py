"""torchdata 0.9's remaining function-applying names (map_batches,
threadpool_map, shuffled_flatmap, shard_expand, read_from_stream and their
class names): the same pipeline, with only the import line changed, gives
the same elements in the same order (shuffled_flatmap: the same elements)."""

from __future__ import annotations

import asyncio
import io
import re
import warnings
from collections import Counter
from types import ModuleType
from typing import Any

import pytest

import streamdag as sd
import streamdag.datapipes.iter as sd_iter
from streamdag.testing import assert_deterministic, assert_resumes

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    td_iter = pytest.importorskip("torchdata.datapipes.iter")

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::UserWarning")]


def outcome(build: Any, ns: ModuleType) -> Any:
    """The elements, or the type of the error (streamdag's chained original)."""
    try:
        return list(build(ns))
    except Exception as exc:
        cause = exc.__cause__ if type(exc).__module__.startswith("streamdag") else None
        return type(cause or exc)


def same(build: Any) -> list[Any]:
    """``build(namespace)`` under torchdata and streamdag: the same outcome."""
    expected, got = outcome(build, td_iter), outcome(build, sd_iter)
    assert got == expected
    return got


def add_sizes(batch: list[Any]) -> list[Any]:
    return [*batch, len(batch)]


def sums(batch: list[list[int]]) -> list[int]:
    return [sum(row) for row in batch]


def negate(x: int) -> int:
    return -x


def add(a: int, b: int) -> int:
    return a + b


def upto(x: int) -> list[int]:
    return list(range(x % 5))


ROWS = [(i, i * 10, -i) for i in range(11)]
DICTS = [{"a": i, "b": i * 10} for i in range(7)]


# -- map_batches / BatchMapper ------------------------------------------------------
@pytest.mark.parametrize("size", [1, 3, 4, 11, 20])
def test_map_batches_sizes(size: int) -> None:
    got = same(lambda ns: ns.IterableWrapper(range(11)).map_batches(add_sizes, size))
    assert got[-1] == 11 % size or size


@pytest.mark.parametrize("col", [1, [0, 2]])
def test_map_batches_columns(col: Any) -> None:
    fn = sums if isinstance(col, list) else add_sizes
    same(lambda ns: ns.IterableWrapper(ROWS).map_batches(fn, 4, input_col=col))


def test_batch_mapper_class_and_dict_keys() -> None:
    same(lambda ns: ns.BatchMapper(ns.IterableWrapper(DICTS), add_sizes, 3, "b"))
    assert same(lambda ns: ns.BatchMapper(ns.IterableWrapper([]), add_sizes, 3)) == []


# -- threadpool_map / ThreadPoolMapper ---------------------------------------------
@pytest.mark.parametrize(
    ("input_col", "output_col"),
    [(None, None), (1, None), (1, -1), (0, 2), (0, [1]), ([0, 1], None)],
)
def test_threadpool_map_columns(input_col: Any, output_col: Any) -> None:
    fn = add if isinstance(input_col, list) else negate
    source = [list(r) for r in ROWS] if output_col == 2 else ROWS
    same(
        lambda ns: ns.IterableWrapper(source).threadpool_map(
            fn, input_col=input_col, output_col=output_col, scheduled_tasks=3, max_workers=2
        )
    )


def test_threadpool_mapper_class_keeps_order_and_length() -> None:
    got = same(
        lambda ns: ns.ThreadPoolMapper(
            ns.IterableWrapper(range(300)), negate, thread_name_prefix="io"
        )
    )
    assert got == [-x for x in range(300)]
    assert len(sd_iter.IterableWrapper(range(5)).threadpool_map(negate)) == 5


def test_threadpool_map_refuses_what_torchdata_refuses() -> None:
    wrap = sd_iter.IterableWrapper(ROWS)
    for kwargs in ({"output_col": 1}, {"scheduled_tasks": 0}, {"max_workers": 0}):
        with pytest.raises(ValueError):
            td_iter.IterableWrapper(ROWS).threadpool_map(negate, **kwargs)
        with pytest.raises(ValueError):
            wrap.threadpool_map(negate, **kwargs)
    with pytest.raises(ValueError, match="single-element"):
        wrap.threadpool_map(negate, input_col=0, output_col=[1, 2])


# -- shuffled_flatmap / ShuffledFlatMapper (same elements, order from the seed) ----
@pytest.mark.parametrize("buffer_size", [1, 2, 5, 100])
def test_shuffled_flatmap_same_elements(buffer_size: int) -> None:
    def build(ns: ModuleType) -> Any:
        return ns.IterableWrapper(range(40)).shuffled_flatmap(upto, buffer_size=buffer_size)

    theirs, ours = list(build(td_iter)), list(build(sd_iter))
    assert Counter(ours) == Counter(theirs)


def test_shuffled_flatmapper_class_without_fn_and_with_input_col() -> None:
    nested = [[1, 2, 3, 4], "abcd", "ABCD"]
    ours = list(sd_iter.ShuffledFlatMapper(sd_iter.IterableWrapper(nested), buffer_size=2))
    theirs = list(td_iter.ShuffledFlatMapper(td_iter.IterableWrapper(nested), buffer_size=2))
    assert Counter(ours) == Counter(theirs)
    rows = [(i, list(range(i)), "ab" * i) for i in range(6)]
    for col in (1, [1, 2]):
        ours = list(sd_iter.IterableWrapper(rows).shuffled_flatmap(input_col=col))
        theirs = list(td_iter.IterableWrapper(rows).shuffled_flatmap(input_col=col))
        assert sorted(map(str, ours)) == sorted(map(str, theirs))


def test_shuffled_flatmap_order_is_the_seeds_and_resumes() -> None:
    pipe = sd_iter.IterableWrapper(range(30)).shuffled_flatmap(upto, buffer_size=4)
    assert_deterministic(pipe)
    full = assert_resumes(pipe)
    assert Counter(full) == Counter(x for i in range(30) for x in upto(i))


# -- shard_expand / ShardExpander ---------------------------------------------------
PATTERNS = [
    ["s3://b/train-{000000..000011}.tar"],
    ["imgs_{00..05}.tar", "labels_{00..02}.tar"],
    ["a{1..3}b{08..10}c", "plain.tar"],
    ["x{0..12}"],
    ["x{9..10}"],
]


@pytest.mark.parametrize("patterns", PATTERNS)
def test_shard_expand(patterns: list[str]) -> None:
    same(lambda ns: ns.ShardExpander(ns.IterableWrapper(patterns)))


@pytest.mark.parametrize("bad", ["x{05..5}", "x{01..100}", "x{3..3}", "x{5..2}"])
def test_shard_expand_bad_ranges(bad: str) -> None:
    assert same(lambda ns: ns.IterableWrapper([bad]).shard_expand()) is ValueError
    with pytest.raises(sd.NodeError, match=re.escape(f"in {bad!r}")):
        list(sd_iter.IterableWrapper([bad]).shard_expand())


# -- read_from_stream / StreamReader ------------------------------------------------
@pytest.mark.parametrize("chunk", [None, 1, 3, 64])
def test_read_from_stream(chunk: int | None) -> None:
    def build(ns: ModuleType) -> Any:
        streams = [
            ("a", io.BytesIO(b"abcdefg")),
            ("empty", io.BytesIO()),
            ("t", io.StringIO("xyz")),
        ]
        return ns.StreamReader(ns.IterableWrapper(streams, deepcopy=False), chunk)

    same(build)


# -- async_map_batches / BatchAsyncMapper -------------------------------------------
async def slow_negate(x: int) -> int:
    await asyncio.sleep(0.001 * (x % 3))  # later elements finish first: order is kept
    return -x


async def async_add(a: int, b: int) -> int:
    return a + b


@pytest.mark.parametrize(
    ("input_col", "output_col"), [(None, None), (1, None), (1, -1), (0, [2]), ([0, 1], None)]
)
@pytest.mark.parametrize("flatten", [True, False])
def test_async_map_batches(input_col: Any, output_col: Any, flatten: bool) -> None:
    fn = async_add if isinstance(input_col, list) else slow_negate
    source = [list(r) for r in ROWS] if output_col == [2] else ROWS
    same(
        lambda ns: ns.IterableWrapper(source).async_map_batches(
            fn, 4, input_col, output_col, max_concurrency=2, flatten=flatten
        )
    )


def test_batch_async_mapper_class_length_and_refusals() -> None:
    for ns in (td_iter, sd_iter):
        pipe = ns.BatchAsyncMapper(ns.IterableWrapper(range(10)), slow_negate, 3)
        assert (len(pipe), list(pipe)) == (10, [-x for x in range(10)])
        for bad in ({"async_fn": negate}, {"async_fn": slow_negate, "output_col": 1}):
            with pytest.raises(ValueError):
                ns.IterableWrapper(ROWS).async_map_batches(batch_size=2, **bad)


# -- Sampler -------------------------------------------------------------------------
def test_sampler_yields_the_samplers_indices() -> None:
    from torch.utils.data import RandomSampler, SequentialSampler

    for sampler in (None, SequentialSampler):
        args = () if sampler is None else (sampler,)
        got = same(lambda ns, args=args: ns.Sampler(ns.IterableWrapper("abcdef"), *args))
        assert got == list(range(6))
    for kwargs in ({}, {"num_samples": 4}, {"num_samples": 9, "replacement": True}):
        # a copy each: torchdata adds data_source to the dict it is given
        theirs = td_iter.Sampler(td_iter.IterableWrapper("abcdef"), RandomSampler, None, {**kwargs})
        ours = sd_iter.Sampler(sd_iter.IterableWrapper("abcdef"), RandomSampler, None, {**kwargs})
        assert len(ours) == len(theirs)
        if not kwargs.get("replacement"):
            assert len(set(ours)) == len(list(theirs))
        assert set(ours) <= set(range(6))


def test_sampler_order_is_the_seeds_and_resumes() -> None:
    from torch.utils.data import RandomSampler

    pipe = sd_iter.Sampler(sd_iter.IterableWrapper(range(20)), RandomSampler)
    assert_deterministic(pipe)
    assert sorted(assert_resumes(pipe)) == list(range(20))


def test_map_style_shuffler_same_items() -> None:
    import streamdag.datapipes.map as sd_map

    td_map = pytest.importorskip("torchdata.datapipes.map")
    for indices in (None, [4, 1, 3]):
        theirs = list(td_map.Shuffler(td_map.SequenceWrapper("abcdef"), indices=indices))
        ours = sd_map.Shuffler(sd_map.SequenceWrapper("abcdef"), indices=indices)
        assert sorted(ours) == sorted(theirs)
        assert_deterministic(ours)


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("cannot fetch 3")
    return x


async def async_fail_on_three(x: int) -> int:
    return fail_on_three(x)


def test_errors_in_concurrent_calls_name_the_node_and_the_element() -> None:
    wrap = sd_iter.IterableWrapper(range(6))
    for pipe, op in (
        (wrap.threadpool_map(fail_on_three, name="fetch"), "threadpool_map"),
        (wrap.async_map_batches(async_fail_on_three, 4, name="fetch"), "async_map_batches"),
    ):
        with pytest.raises(sd.NodeError, match=rf"{op} node 'fetch'.*cannot fetch 3.*element 3"):
            list(pipe)

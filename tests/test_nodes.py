"""Exact outputs of every core node, and their construction-time errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import streamdag as sd
from streamdag.testing import assert_resumes, run_epoch


def double(x):
    return 2 * x


def is_odd(x):
    return x % 2 == 1


def repeat_n(x):
    return [x] * x


def parity(x):
    return x % 3


def test_iterable_wrapper_sources():
    assert list(sd.IterableWrapper([3, 1, 2])) == [3, 1, 2]
    assert list(sd.IterableWrapper(range(4))) == [0, 1, 2, 3]
    assert list(sd.IterableWrapper((5, 6))) == [5, 6]
    assert list(sd.IterableWrapper({"a": 1, "b": 2})) == ["a", "b"]


def test_iterable_wrapper_refuses_one_shot_iterators():
    with pytest.raises(sd.ParamError, match="one-shot iterator"):
        sd.IterableWrapper(x for x in range(3))


def test_generic_iterable_resumes_by_skipping():
    assert_resumes(sd.IterableWrapper(np.arange(10)).map(int), stops=[0, 3, 10])


def test_map_filter_flatmap():
    dp = sd.IterableWrapper(range(6))
    assert list(dp.map(double)) == [0, 2, 4, 6, 8, 10]
    assert list(dp.filter(is_odd)) == [1, 3, 5]
    assert list(dp.flatmap(repeat_n)) == [1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5]


def test_map_columns_on_tuples_and_dicts():
    tuples = sd.IterableWrapper([(1, 10), (2, 20)])
    assert list(tuples.map(double, input_col=1)) == [(1, 20), (2, 40)]
    assert list(tuples.map(double, input_col=0, output_col=-1)) == [(1, 10, 2), (2, 20, 4)]
    assert list(tuples.map(max, input_col=[0, 1])) == [(10,), (20,)]
    dicts = sd.IterableWrapper([{"a": 1}, {"a": 5}])
    assert list(dicts.map(double, input_col="a", output_col="b")) == [
        {"a": 1, "b": 2},
        {"a": 5, "b": 10},
    ]
    assert list(dicts.filter(is_odd, input_col="a")) == [{"a": 1}, {"a": 5}]


def test_map_does_not_mutate_input_samples():
    samples = [{"a": 1}]
    list(sd.IterableWrapper(samples).map(double, input_col="a"))
    assert samples == [{"a": 1}]


def test_batch_and_unbatch():
    dp = sd.IterableWrapper(range(7))
    assert list(dp.batch(3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(dp.batch(3, drop_last=True)) == [[0, 1, 2], [3, 4, 5]]
    assert list(dp.batch(3).unbatch()) == list(range(7))


def test_collate_default_and_custom():
    samples = [
        {"x": np.array([1, 2], dtype=np.uint8), "y": 3},
        {"x": np.array([3, 4], dtype=np.uint8), "y": 4},
    ]
    (batch,) = list(sd.IterableWrapper(samples).batch(2).collate())
    assert batch["x"].dtype == torch.uint8
    assert batch["x"].tolist() == [[1, 2], [3, 4]]
    assert batch["y"].tolist() == [3, 4]
    assert list(sd.IterableWrapper(range(4)).batch(2).collate(sum)) == [1, 5]


def test_zip_concat_mux():
    a, b = sd.IterableWrapper(range(3)), sd.IterableWrapper("wxyz")
    assert list(a.zip(b)) == [(0, "w"), (1, "x"), (2, "y")]
    assert list(a.concat(b)) == [0, 1, 2, "w", "x", "y", "z"]
    # mux stops as soon as any input ends; a partial last round is dropped (as torchdata)
    assert list(b.mux(a)) == ["w", 0, "x", 1, "y", 2]


def test_fork_branches_each_see_every_element():
    dp = sd.IterableWrapper(range(5)).map(double)
    left, right = dp.fork(2)
    assert list(left.zip(right)) == [(0, 0), (2, 2), (4, 4), (6, 6), (8, 8)]


def test_fork_source_read_once_per_epoch():
    counter = CountingIterable(4)
    left, right = sd.IterableWrapper(counter, deepcopy=False).fork(2)
    assert list(left.zip(right.map(double))) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    assert counter.iterations == 1


class CountingIterable:
    def __init__(self, n):
        self.n, self.iterations = n, 0

    def __iter__(self):
        self.iterations += 1
        return iter(range(self.n))


def test_fork_buffer_overflow_is_a_clear_error():
    left, right = sd.IterableWrapper(range(100)).fork(2, buffer_size=5)
    with pytest.raises(BufferError, match="fell more than buffer_size=5"):
        list(left.concat(right))


def test_demux_routes_and_checks_classifier():
    a, b, c = sd.IterableWrapper(range(9)).demux(3, parity)
    assert list(a.mux(b, c)) == list(range(9))
    bad = sd.IterableWrapper([1, 2]).demux(2, double)[0]
    with pytest.raises(
        sd.NodeError, match=r"classifier_fn returned 2 .*expected an int in \[0, 2\)"
    ):
        list(bad)


def test_header_cycle_prefetch_cache():
    dp = sd.IterableWrapper(range(5))
    assert list(dp.header(2)) == [0, 1]
    assert list(dp.header(0)) == []
    assert list(dp.cycle(2)) == [0, 1, 2, 3, 4] * 2
    assert list(dp.cycle().header(12)) == [0, 1, 2, 3, 4] * 2 + [0, 1]
    assert list(sd.IterableWrapper([]).cycle()) == []
    assert list(dp.prefetch(2)) == [0, 1, 2, 3, 4]
    assert list(dp.in_memory_cache()) == [0, 1, 2, 3, 4]


def test_in_memory_cache_serves_later_epochs_from_memory():
    counter = CountingIterable(3)
    loader = sd.DataLoader2(sd.IterableWrapper(counter, deepcopy=False).in_memory_cache())
    assert list(loader) == [0, 1, 2]
    assert list(loader) == [0, 1, 2]
    assert counter.iterations == 1


def test_in_memory_cache_over_limit_warns_and_passes_data():
    loader = sd.DataLoader2(sd.IterableWrapper(range(5)).in_memory_cache(max_items=2))
    with pytest.warns(UserWarning, match="max_items=2"):
        assert list(loader) == [0, 1, 2, 3, 4]


def test_sample_multiplexer_yields_everything_once_in_weighted_order():
    a = sd.IterableWrapper(range(100))
    b = sd.IterableWrapper(range(1000, 1100))
    out = run_epoch(sd.SampleMultiplexer({a: 9.0, b: 1.0}, seed=3))
    assert sorted(out) == list(range(100)) + list(range(1000, 1100))
    first_half = out[:100]
    assert sum(x < 1000 for x in first_half) > 70  # weight 0.9 while both are alive
    assert run_epoch(sd.SampleMultiplexer({a: 9.0, b: 1.0}, seed=3)) == out


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda dp: dp.batch(0), "batch: batch_size must be an int >= 1, got 0"),
        (lambda dp: dp.batch("4"), "batch: batch_size must be an int, got '4'"),
        (lambda dp: dp.shuffle(-1), "shuffle: buffer_size must be an int >= 1, got -1"),
        (lambda dp: dp.shuffle(10, initial=0), "shuffle: initial must be an int >= 1, got 0"),
        (lambda dp: dp.map(3), "map: fn must be callable, got 3"),
        (lambda dp: dp.map(double, output_col=1), "map: output_col needs input_col"),
        (lambda dp: dp.fork(0), "fork: num_instances must be an int >= 1"),
        (lambda dp: dp.header(-2), "header: limit must be an int >= 0"),
        (lambda dp: dp.prefetch(0), "prefetch: buffer_size must be an int >= 1"),
        (lambda dp: dp.zip([1, 2]), "zip: inputs must be DataPipes"),
        (lambda dp: sd.SampleMultiplexer({dp: 0}), "sample_multiplexer: weights must be positive"),
    ],
)
def test_invalid_params_fail_at_construction_naming_the_op(build, message):
    with pytest.raises(sd.ParamError) as info:
        build(sd.IterableWrapper(range(3)))
    assert message in str(info.value)


def test_nothing_runs_at_construction():
    calls = []
    dp = sd.IterableWrapper(range(3)).map(calls.append)
    assert calls == []
    list(dp)
    assert calls == [0, 1, 2]

"""Exact resume: a hypothesis property over random pipelines of
map/filter/shuffle/batch/fork/zip, plus the buffering nodes one by one."""

from __future__ import annotations

import operator

from hypothesis import given, settings
from hypothesis import strategies as st

import streamdag as sd
from streamdag.testing import assert_resumes, resumed_epoch, run_epoch


def add_one(x):
    return x + 1 if isinstance(x, int) else x


def keep_not_div3(x):
    return not isinstance(x, int) or x % 3 != 0


def first_of(x):
    return x[0] if isinstance(x, tuple) else x


STEPS = st.lists(
    st.sampled_from(
        ["map", "filter", "shuffle", "batch", "unbatch", "forkzip", "prefetch", "header", "flatmap"]
    ),
    min_size=1,
    max_size=5,
)


def build(length: int, steps: list[str], sizes: list[int]) -> sd.DataPipe:
    dp = sd.IterableWrapper(list(range(length)))
    batched = False
    for step, size in zip(steps, sizes, strict=False):
        if step == "map":
            dp = dp.map(add_one)
        elif step == "filter":
            dp = dp.filter(keep_not_div3)
        elif step == "shuffle":
            dp = dp.shuffle(buffer_size=size, initial=max(1, size // 3))  # with a growth phase
        elif step == "batch" and not batched:
            dp, batched = dp.batch(size), True
        elif step == "unbatch" and batched:
            dp, batched = dp.unbatch(), False
        elif step == "forkzip":
            a, b = dp.fork(2, buffer_size=size + 8)
            dp = a.zip(b.shuffle(3) if size % 2 else b).map(first_of)
        elif step == "prefetch":
            dp = dp.prefetch(size)
        elif step == "header":
            dp = dp.header(length // 2 + size)
        elif step == "flatmap" and not batched:
            dp = dp.flatmap(lambda_free_repeat)
    return dp


def lambda_free_repeat(x):
    return [x, x] if isinstance(x, int) and x % 4 == 0 else [x]


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(0, 60),
    steps=STEPS,
    sizes=st.lists(st.integers(1, 9), min_size=5, max_size=5),
    stop_frac=st.floats(0, 1),
    seed=st.integers(0, 2**31),
)
def test_prefix_plus_resumed_suffix_equals_uninterrupted(length, steps, sizes, stop_frac, seed):
    """Random pipelines, random stop points: prefix + resumed rest == full run."""
    dp = build(length, steps, sizes)
    full = run_epoch(dp, seed)
    stop = int(stop_frac * len(full))
    prefix, rest = resumed_epoch(dp, stop, seed)
    assert prefix + rest == full


def test_shuffle_resume_at_every_point():
    dp = sd.IterableWrapper(range(50)).shuffle(buffer_size=8).batch(3)
    assert_resumes(dp, stops=list(range(18)))


def test_shuffle_resume_at_every_point_of_its_growth_phase():
    dp = sd.IterableWrapper(range(60)).shuffle(buffer_size=20, initial=3)
    assert_resumes(dp, stops=list(range(61)))


def test_fork_with_lagging_branch_resumes():
    """One branch is behind a shuffle buffer, so it asks the hub for an older
    checkpoint than its sibling."""
    a, b = sd.IterableWrapper(range(40)).fork(2, buffer_size=20)
    dp = a.shuffle(6).zip(b.map(operator.neg))
    assert_resumes(dp, stops=list(range(0, 41, 3)))


def test_demux_mux_resume():
    evens, odds = sd.IterableWrapper(range(30)).demux(2, lambda_free_parity, buffer_size=5)
    assert_resumes(evens.mux(odds.map(add_one)), stops=list(range(31)))


def lambda_free_parity(x):
    return x % 2


def test_sample_multiplexer_and_cycle_resume():
    a = sd.IterableWrapper(range(10))
    b = sd.IterableWrapper(range(100, 120)).shuffle(4)
    dp = sd.SampleMultiplexer({a: 1.0, b: 3.0}).cycle(2)
    assert_resumes(dp, stops=list(range(0, 61, 4)))


def test_concat_sharding_header_resume():
    dp = sd.IterableWrapper(range(7)).concat(sd.IterableWrapper(range(10, 15))).header(10)
    assert_resumes(dp, stops=list(range(11)))


def test_in_memory_cache_resume_in_fresh_loader():
    dp = sd.IterableWrapper(range(12)).in_memory_cache().shuffle(4)
    assert_resumes(dp, stops=[0, 5, 12])

"""Seeds: identical (seed, epoch) -> identical stream; new epoch -> new order;
shuffle spreads elements; the seed rule around the sharding point."""

from __future__ import annotations

import numpy as np

import streamdag as sd
from streamdag.runtime.graph import RuntimeGraph
from streamdag.runtime.node import WorkerContext
from streamdag.testing import run_epoch

SHUFFLED = sd.IterableWrapper(range(200)).shuffle(buffer_size=50).batch(10)


def test_same_seed_and_epoch_give_same_stream():
    assert run_epoch(SHUFFLED, seed=7, epoch=2) == run_epoch(SHUFFLED, seed=7, epoch=2)


def test_new_epoch_or_seed_gives_new_order_of_same_elements():
    base = run_epoch(SHUFFLED, seed=7, epoch=0)
    for other in (run_epoch(SHUFFLED, seed=7, epoch=1), run_epoch(SHUFFLED, seed=8, epoch=0)):
        assert other != base
        assert sorted(sum(other, [])) == list(range(200))


def test_successive_iterations_are_successive_epochs():
    loader = sd.DataLoader2(SHUFFLED, seed=7)
    first, second = list(loader), list(loader)
    assert first == run_epoch(SHUFFLED, seed=7, epoch=0)
    assert second == run_epoch(SHUFFLED, seed=7, epoch=1)


def test_without_seed_each_epoch_is_random():
    loader = sd.DataLoader2(SHUFFLED)
    assert list(loader) != list(loader)


def test_shuffle_spreads_sorted_input():
    """Over many seeds, the mean output position of each input element is
    near the middle, and early elements do not stay early."""
    n, buffer = 100, 100
    dp = sd.IterableWrapper(range(n)).shuffle(buffer_size=buffer, initial=buffer)
    positions = np.zeros((n,))
    first_quarter_hits = 0
    seeds = 200
    for seed in range(seeds):
        out = run_epoch(dp, seed=seed)
        positions[np.array(out)] += np.arange(n)
        first_quarter_hits += sum(x < 25 for x in out[:25])
    mean_position = positions / seeds
    assert abs(mean_position.mean() - (n - 1) / 2) < 1e-9
    assert np.all(np.abs(mean_position - (n - 1) / 2) < 15)
    assert 0.15 < first_quarter_hits / (25 * seeds) < 0.35  # ~0.25 when uniform


PULLED: list[int] = []


def record_pull(x: int) -> int:
    PULLED.append(x)
    return x


def test_shuffle_emits_from_initial_then_grows_to_buffer_size():
    """The first element comes out after ``initial`` pulls; while growing, two
    elements go in per one out; the buffer never holds more than buffer_size."""
    PULLED.clear()
    it = iter(sd.IterableWrapper(range(500)).map(record_pull).shuffle(buffer_size=50, initial=10))
    out = [next(it)]
    assert len(PULLED) == 10 and out[0] in range(10)
    held = [len(PULLED) - 1]  # buffered after each output
    for x in it:
        out.append(x)
        held.append(len(PULLED) - len(out))
    assert held[:4] == [9, 10, 11, 12]
    assert held.index(49) == 40 and max(held) == 49  # full (49 + the one picked) from then on
    assert sorted(out) == list(range(500))


def test_seeds_agree_upstream_of_sharding_and_differ_downstream():
    dp = sd.IterableWrapper(range(10)).shuffle(4).sharding_filter().map(abs).shuffle(2)
    workers = [
        WorkerContext(rank=r, world_size=2, worker_id=w, num_workers=2)
        for r in range(2)
        for w in range(2)
    ]
    graphs = [RuntimeGraph(dp.node, w) for w in workers]
    upstream, downstream = set(), set()
    for graph in graphs:
        graph.start_epoch(base_seed=11, epoch=3)
        first, last = [n for n in graph.nodes.values() if n.spec.op == "shuffle"]
        upstream.add(first.seed())
        downstream.add(last.seed())
    assert len(upstream) == 1
    assert len(downstream) == 4


def test_sharding_filter_splits_over_global_workers():
    dp = sd.IterableWrapper(range(10)).sharding_filter()
    seen = []
    for rank in range(2):
        for worker in range(2):
            graph = RuntimeGraph(dp.node, WorkerContext(rank, 2, worker, 2))
            graph.start_epoch(0, 0)
            seen.append(list(graph.iterate()))
    assert seen == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]


def test_sharding_filter_under_cycle_splits_every_pass_the_same():
    dp = sd.IterableWrapper(range(10)).sharding_filter().cycle(2)
    graph = RuntimeGraph(dp.node, WorkerContext(0, 1, 1, 3))
    graph.start_epoch(0, 0)
    assert list(graph.iterate()) == [1, 4, 7, 1, 4, 7]

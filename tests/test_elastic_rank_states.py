"""Elastic resume across ranks without a process group: the states of a
two-rank job (each rank's worker service told its rank, as
DistributedReadingService does) resumed by one process (a one-GPU resume),
and what ``load_state_dict`` refuses in a list of rank states."""

from __future__ import annotations

from itertools import islice

import pytest

import streamdag as sd
from streamdag.errors import ResumeError
from streamdag.testing.loaders import saved

MT = sd.MultiThreadingReadingService
N = 60


def tagged(x: int) -> list[int]:
    """The element and the global index of the virtual worker that made it."""
    return [x, sd.get_worker_info().shard_index]


def _pipe() -> sd.DataPipe:
    return sd.IterableWrapper(range(N)).shuffle(buffer_size=7).sharding_filter().map(tagged)


def _rank(rank: int, world: int, workers: int) -> sd.MultiThreadingReadingService:
    service = MT(workers)
    service.set_rank(rank, world)
    return service


def _two_ranks(stops: tuple[int, int], workers: int = 2) -> tuple[list, list, list[dict]]:
    """Each rank's full epoch and prefix, and its state after the prefix."""
    fulls, prefixes, states = [], [], []
    for rank, stop in enumerate(stops):
        with sd.DataLoader2(_pipe(), _rank(rank, 2, workers), seed=3) as loader:
            fulls.append(list(loader))
        with sd.DataLoader2(_pipe(), _rank(rank, 2, workers), seed=3) as loader:
            prefixes.append(list(islice(loader, stop)))
            states.append(saved(loader.state_dict()))
    return fulls, prefixes, states


@pytest.mark.parametrize("stops", [(7, 12), (0, 9), (15, 15)])
@pytest.mark.parametrize("workers", [1, 3])
def test_one_process_resumes_every_rank_of_a_two_rank_job(stops, workers):
    """Prefixes of both old ranks + the rest in one process = one epoch, each
    virtual worker continuing its own uninterrupted stream (a rank that had
    yielded nothing starts its own share as laid out then)."""
    fulls, prefixes, states = _two_ranks(stops)
    with sd.DataLoader2(_pipe(), MT(workers), seed=3) as loader:
        loader.load_state_dict(states[::-1])  # any order
        rest = list(loader)
    before = prefixes[0] + prefixes[1]
    assert sorted(x for x, _ in before + rest) == list(range(N))
    for u in range(4):
        whole = [x for part in fulls for x, v in part if v == u]
        assert [x for x, v in before + rest if v == u] == whole


def test_a_list_that_cannot_cover_every_virtual_worker_is_refused():
    """Missing, doubled or mismatched rank states raise a ResumeError that says which."""
    _, _, states = _two_ranks((5, 11))
    with sd.DataLoader2(_pipe(), MT(2)) as loader:
        with pytest.raises(ResumeError, match=r"missing rank \[1\]"):
            loader.load_state_dict(states[:1])
        with pytest.raises(ResumeError, match="rank 0's"):
            loader.load_state_dict([states[0], states[0]])
        with pytest.raises(ResumeError, match="different epochs or seeds"):
            loader.load_state_dict([states[0], {**states[1], "epoch": 1}])


def test_another_world_size_needs_the_merged_stream_alone_in_the_main_process():
    """A main-process part's state is each rank's own, and in process there
    are no workers to deal virtual workers to: both are refused, saying why."""
    _, _, states = _two_ranks((5, 11))
    tail = _pipe().main_process().map(tagged)
    with sd.DataLoader2(tail, MT(2)) as loader:
        loader.load_state_dict(states)
        with pytest.raises(ResumeError, match="main-process part"):
            list(loader)
    with sd.DataLoader2(_pipe()) as loader:
        loader.load_state_dict(states)
        with pytest.raises(ResumeError, match="under a worker service"):
            list(loader)

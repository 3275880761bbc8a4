"""Elastic resume of states taken with elements in flight (a loop that holds
``k`` elements ahead of the one it trains on, Lightning's automatic 1): on
another number of workers or ranks, what the loop had trained on (the
elements handed out less the last ``k``) and the resumed rest are one epoch,
each element once, each virtual worker continuing its own stream."""

from __future__ import annotations

from itertools import islice

import pytest

import streamdag as sd
from streamdag.errors import ResumeError
from streamdag.reading_service.merge import BACK
from streamdag.testing.loaders import saved

pytestmark = pytest.mark.timeout(120)

MP, MT = sd.MultiProcessingReadingService, sd.MultiThreadingReadingService
N = 60


def tagged(x: int) -> list[int]:
    """The element and the global index of the virtual worker that made it."""
    return [x, sd.get_worker_info().shard_index]


def _pipe() -> sd.DataPipe:
    return sd.IterableWrapper(range(N)).shuffle(buffer_size=7).sharding_filter().map(tagged)


def _stopped(service: sd.ReadingService, stop: int, in_flight: int) -> tuple[list, dict]:
    """The first ``stop`` elements handed out and the state taken after them
    with ``in_flight`` of them not trained on yet."""
    with sd.DataLoader2(_pipe(), service, seed=3) as loader:
        handed = list(islice(loader, stop))
        return handed, saved(loader.state_dict(in_flight=in_flight))


def _check_one_epoch(trained: list, rest: list, fulls: list[list], lanes: int) -> None:
    """Each element once, and each virtual worker's elements in the order of
    its uninterrupted stream."""
    assert sorted(x for x, _ in trained + rest) == list(range(N))
    for u in range(lanes):
        whole = [x for full in fulls for x, v in full if v == u]
        assert [x for x, v in trained + rest if v == u] == whole


@pytest.mark.parametrize("in_order", [True, False])
@pytest.mark.parametrize("in_flight", [1, 2, BACK])
@pytest.mark.parametrize("workers", [1, 3])
def test_in_flight_state_of_two_processes_resumes_on_another_worker_count(
    in_flight: int, workers: int, in_order: bool
) -> None:
    """W=2 -> W'=1 or 3: the trained prefix and the rest are one epoch; in
    order, exactly the uninterrupted run's order."""
    with sd.DataLoader2(_pipe(), MP(2, in_order=in_order), seed=3) as loader:
        full = list(loader)
    handed, state = _stopped(MP(2, in_order=in_order), 23, in_flight)
    with sd.DataLoader2(_pipe(), MP(workers, in_order=in_order), seed=3) as loader:
        loader.load_state_dict(state)
        rest = list(loader)
    trained = handed[: len(handed) - in_flight]
    _check_one_epoch(trained, rest, [full], 2)
    if in_order:
        assert trained + rest == full


@pytest.mark.parametrize(("stop", "in_flight"), [(4, 4), (5, 3), (7, 6)])
def test_in_flight_reaching_back_over_chunks_resumes_on_another_worker_count(
    stop: int, in_flight: int
) -> None:
    """The first chunks of an epoch hold one element: a state that many
    elements back (to the epoch's start, at most) is still each virtual
    worker's own position (documented ``"replay": 0``), and exact on W'=3."""
    with sd.DataLoader2(_pipe(), MP(2), seed=3) as loader:
        full = list(loader)
    handed, state = _stopped(MP(2), stop, in_flight)
    assert state["replay"] == 0
    with sd.DataLoader2(_pipe(), MP(3), seed=3) as loader:
        loader.load_state_dict(state)
        assert handed[: stop - in_flight] + list(loader) == full


def _rank(rank: int, world: int, workers: int) -> MT:
    service = MT(workers)
    service.set_rank(rank, world)  # as DistributedReadingService does
    return service


@pytest.mark.parametrize("in_flight", [1, 2])
@pytest.mark.parametrize("workers", [1, 3])
def test_in_flight_states_of_a_two_rank_job_resume_in_one_process(
    in_flight: int, workers: int
) -> None:
    """Both ranks' states taken with ``in_flight`` (as Lightning's DDP
    checkpoint is) resume on one rank: each element once."""
    fulls, trained, states = [], [], []
    for rank, stop in enumerate((9, 14)):
        with sd.DataLoader2(_pipe(), _rank(rank, 2, 2), seed=3) as loader:
            fulls.append(list(loader))
        handed, state = _stopped(_rank(rank, 2, 2), stop, in_flight)
        trained += handed[: len(handed) - in_flight]
        states.append(state)
    with sd.DataLoader2(_pipe(), MT(workers), seed=3) as loader:
        loader.load_state_dict(states)
        rest = list(loader)
    _check_one_epoch(trained, rest, fulls, 4)


def test_states_that_replay_in_the_old_merged_order_stay_on_their_world_size() -> None:
    """More in flight than a worker service can go back over: the states
    replay from an earlier position in the old merged order, which another
    world size does not have; refused naming the ranks, not resumed afresh."""
    states = [_stopped(_rank(rank, 2, 2), BACK + 4, BACK + 1)[1] for rank in range(2)]
    assert all(state["replay"] for state in states)
    with sd.DataLoader2(_pipe(), MT(2), seed=3) as loader:
        with pytest.raises(ResumeError, match=r"ranks \[0, 1\] replay elements"):
            loader.load_state_dict(states)


@pytest.mark.parametrize("workers", [1, 3])
def test_replayed_state_with_a_main_process_part_resumes_on_another_worker_count(
    workers: int,
) -> None:
    """With a main-process part the state replays from the epoch's start in
    the merged order of its virtual workers; under another ``num_workers``
    (another default ``virtual_workers``) the epoch still starts with the
    saved ones, so the rest is the uninterrupted run's."""
    pipe = _pipe().main_process().batch(2)
    with sd.DataLoader2(pipe, MP(2), seed=3) as loader:
        full = list(loader)
    with sd.DataLoader2(pipe, MP(2), seed=3) as loader:
        handed = list(islice(loader, 11))
        state = saved(loader.state_dict(in_flight=1))
    assert state["replay"] == 10
    with sd.DataLoader2(pipe, MP(workers), seed=3) as loader:
        loader.load_state_dict(state)
        rest = list(loader)
    assert handed[:10] + rest == full

"""Persistent workers start the next epoch as soon as they are done with one
(DataLoader2 says which, with its seed, when an epoch starts), and the loop
sees exactly the stream it would have seen without that: same elements, same
order, same resume state; a loop that asks for another seed or epoch, or
leaves an epoch early, gets what it asked for."""

from __future__ import annotations

import time
from functools import partial
from itertools import islice

import pytest

import streamdag as sd
from streamdag.testing import run_epoch
from tests.support.leaks import no_leaks  # noqa: F401 - fixture
from tests.support.rs_functions import record

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaks")]

SERVICES = {
    "processes": partial(sd.MultiProcessingReadingService, 2, persistent_workers=True),
    "threads": partial(sd.MultiThreadingReadingService, 2),
}


def pipeline(log=None, n=30):
    dp = sd.IterableWrapper(range(n)).shuffle().sharding_filter()
    return dp.map(partial(record, str(log))) if log is not None else dp.map(int)


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(params=list(SERVICES))
def service(request):
    return SERVICES[request.param]


def test_the_next_epoch_starts_when_one_ends(service, tmp_path):
    log = tmp_path / "log"
    with sd.DataLoader2(pipeline(log), reading_service=service(), seed=1) as loader:
        first = list(loader)
        deadline = time.monotonic() + 10
        while len(lines(log)) <= 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(lines(log)) > 30  # the workers map epoch 1's elements before iter()
        second = list(loader)
    assert second == run_epoch(pipeline(), seed=1, epoch=1, reading_service=service)
    assert first == run_epoch(pipeline(), seed=1, epoch=0, reading_service=service)
    assert sorted(second) == list(range(30)) and second != first


def wait_for_lines(log, n, seconds=10):
    deadline = time.monotonic() + seconds
    while len(lines(log)) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(lines(log))


def test_the_next_epoch_starts_before_this_one_is_read_to_its_end(service, tmp_path):
    """Workers done with epoch 0 start epoch 1 while the loop still takes
    epoch 0's last elements (their pass is queued behind the current one)."""
    log = tmp_path / "log"
    with sd.DataLoader2(pipeline(log), reading_service=service(), seed=1) as loader:
        it = iter(loader)
        head = list(islice(it, 29))  # one element of epoch 0 not taken yet
        assert wait_for_lines(log, 31) > 30  # epoch 1 is being mapped meanwhile
        first = head + list(it)
        second = list(loader)
    assert first == run_epoch(pipeline(), seed=1, epoch=0, reading_service=service)
    assert second == run_epoch(pipeline(), seed=1, epoch=1, reading_service=service)


def test_an_epoch_left_early_drops_the_queued_pass(service):
    """Leaving epoch 0 early, the loop gets epoch 1 whole from its start (the
    pass queued behind epoch 0 is abandoned), then epoch 2."""
    with sd.DataLoader2(pipeline(), reading_service=service(), seed=1) as loader:
        head = list(islice(iter(loader), 5))
        second = list(loader)
        third = list(loader)
    assert head == run_epoch(pipeline(), seed=1, epoch=0, reading_service=service)[:5]
    assert second == run_epoch(pipeline(), seed=1, epoch=1, reading_service=service)
    assert third == run_epoch(pipeline(), seed=1, epoch=2, reading_service=service)


def test_statistics_do_not_count_a_queued_epoch_before_the_loop_reaches_it(service, tmp_path):
    """After epoch 0, the workers have mapped part of epoch 1, but stats()
    shows epoch 0's counts until the loop takes epoch 1."""
    log = tmp_path / "log"
    with sd.DataLoader2(pipeline(log), reading_service=service(), seed=1, stats=True) as loader:
        list(loader)
        assert wait_for_lines(log, 31) > 30
        mapped = [n for n in loader.stats().nodes if n.op == "map"]
        assert [n.elements_out for n in mapped] == [30]
        list(loader)
        mapped = [n for n in loader.stats().nodes if n.op == "map"]
        assert [n.elements_out for n in mapped] == [60]


def test_another_seed_or_epoch_than_announced_is_what_the_loop_gets(service):
    with sd.DataLoader2(pipeline(), reading_service=service(), seed=1) as loader:
        list(loader)  # epoch 0; epoch 1 with seed 1 starts ahead
        loader.seed(5)
        assert list(loader) == run_epoch(pipeline(), seed=5, epoch=1, reading_service=service)
        loader.set_epoch(7)  # epoch 2 started ahead, 7 asked for
        assert list(loader) == run_epoch(pipeline(), seed=5, epoch=7, reading_service=service)


def test_an_epoch_started_ahead_resumes_exactly(service):
    with sd.DataLoader2(pipeline(), reading_service=service(), seed=1) as loader:
        list(loader)
        it = iter(loader)  # epoch 1, taken from the pass started ahead
        head = list(islice(it, 7))
        state = loader.state_dict()
        rest = list(it)
    with sd.DataLoader2(pipeline(), reading_service=service(), seed=1) as resumed:
        resumed.load_state_dict(state)
        assert list(resumed) == rest
    assert head + rest == run_epoch(pipeline(), seed=1, epoch=1, reading_service=service)


def test_a_loader_without_seed_draws_the_next_seed_when_an_epoch_starts(service):
    """The state records the seed the workers were started with: a resume
    from it gives the rest of the epoch exactly."""
    with sd.DataLoader2(pipeline(), reading_service=service()) as loader:
        first = list(loader)
        it = iter(loader)
        head = list(islice(it, 10))
        state = loader.state_dict()
        rest = list(it)
    assert sorted(head + rest) == sorted(first) == list(range(30))
    with sd.DataLoader2(pipeline(), reading_service=service()) as resumed:
        resumed.load_state_dict(state)
        assert list(resumed) == rest


def test_a_loaded_state_is_not_replaced_by_the_announced_epoch(service):
    with sd.DataLoader2(pipeline(), reading_service=service(), seed=1) as loader:
        it = iter(loader)
        head = list(islice(it, 12))
        state = loader.state_dict()
        list(it)  # epoch 0 ends: epoch 1 starts ahead
        loader.load_state_dict(state)
        assert head + list(loader) == run_epoch(
            pipeline(), seed=1, epoch=0, reading_service=service
        )

"""MultiThreadingReadingService: the same contract as the process service,
in threads of this process."""

from __future__ import annotations

import threading
import time
from functools import partial

import pytest

import streamdag as sd
from streamdag.testing import assert_resumes, run_epoch
from tests.support.rs_functions import fail_on_7, sleep_on_5, square

pytestmark = pytest.mark.timeout(60)

MT = sd.MultiThreadingReadingService


def tag_thread(x):
    info = sd.get_worker_info()
    return (x, info.worker_id, threading.current_thread().name)


def sharded(n=40):
    return sd.IterableWrapper(range(n)).shuffle(buffer_size=8).sharding_filter().map(square)


def test_every_element_once_in_a_deterministic_order():
    with sd.DataLoader2(sharded(), reading_service=MT(3), seed=2) as loader:
        first, second = list(loader), list(loader)
    assert sorted(first) == sorted(second) == [i * i for i in range(40)]
    assert first != second
    assert run_epoch(sharded(), seed=2, reading_service=partial(MT, 3)) == first


def test_elements_come_from_the_threads_in_turn():
    dp = sd.IterableWrapper(range(8)).sharding_filter().map(tag_thread)
    out = run_epoch(dp, reading_service=partial(MT, 2))
    assert [x for x, _, _ in out] == list(range(8))
    assert [w for _, w, _ in out] == [0, 1] * 4
    assert {name for _, _, name in out} == {"streamdag-thread-0", "streamdag-thread-1"}


def test_resume_mid_epoch_equals_the_uninterrupted_run():
    dp = sharded(50).batch(3)
    assert_resumes(dp, stops=[0, 1, 5, 9, 17], seed=8, reading_service=partial(MT, 2))


def test_out_of_order_mode_yields_every_element_once():
    out = run_epoch(sharded(300), reading_service=partial(MT, 2, in_order=False))
    assert sorted(out) == [i * i for i in range(300)]


def test_error_names_the_thread_and_node():
    dp = sd.IterableWrapper(range(20)).sharding_filter().map(fail_on_7, name="checker")
    with sd.DataLoader2(dp, reading_service=MT(2)) as loader:
        with pytest.raises(sd.WorkerError, match="worker 1 .*map node 'checker'") as info:
            list(loader)
    assert "fail_on_7" in info.value.traceback


def test_timeout():
    dp = sd.IterableWrapper(range(20)).sharding_filter().map(sleep_on_5)
    with sd.DataLoader2(dp, reading_service=MT(2, timeout=0.5)) as loader:
        with pytest.raises(sd.WorkerTimeoutError):
            list(loader)


def test_shutdown_stops_the_threads():
    before = threading.active_count()
    with sd.DataLoader2(sharded(), reading_service=MT(3)) as loader:
        it = iter(loader)
        next(it)
        assert threading.active_count() == before + 3
    assert threading.active_count() == before


def torch_threads(x):
    import torch

    return torch.get_num_threads()


def test_worker_threads_use_one_torch_thread_and_leave_the_main_threads_count():
    import torch

    before = torch.get_num_threads()
    dp = sd.IterableWrapper(range(4)).sharding_filter().map(torch_threads)
    assert run_epoch(dp, reading_service=partial(MT, 2)) == [1, 1, 1, 1]
    assert torch.get_num_threads() == before


SEEN: list[int] = []


def record_worker_slow_first(x):
    if x == 0:
        time.sleep(0.05)  # the others would run meanwhile if they had started
    SEEN.append(sd.get_worker_info().worker_id)
    return x


def test_other_threads_start_once_thread_0_sent_its_first_chunk():
    """The first batch does not share the GIL: worker 0 runs alone until it
    has sent a chunk, then the others start."""
    SEEN.clear()
    dp = sd.IterableWrapper(range(30)).sharding_filter().map(record_worker_slow_first)
    assert run_epoch(dp, reading_service=partial(MT, 3)) == list(range(30))
    assert SEEN[0] == 0  # later entries may be the next epoch, started ahead
    assert set(SEEN) == {0, 1, 2}


def is_odd(x: int) -> bool:
    return x % 2 == 1


def test_other_threads_start_when_thread_0_yields_nothing():
    """Thread 0's empty pass still lets the others start (no hang), every epoch."""
    dp = sd.IterableWrapper(range(6)).sharding_filter().filter(is_odd)
    with sd.DataLoader2(dp, reading_service=MT(2), seed=0) as loader:
        assert [list(loader) for _ in range(2)] == [[1, 3, 5], [1, 3, 5]]

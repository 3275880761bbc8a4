"""Faults and lifecycle of worker processes: errors carry the worker, node and
traceback; deaths and stalls are detected quickly; nothing is left behind
(processes, shared memory) whatever way the loop ends."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import streamdag as sd
from tests.support.leaks import (  # noqa: F401 - fixture
    alive,
    children,
    no_leaks,
    open_fds,
    wait_until,
)
from tests.support.rs_functions import big_tensor, fail_on_7, sleep_on_5, slow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaks")]

MP = sd.MultiProcessingReadingService


def numbers(n=20):
    return sd.IterableWrapper(range(n)).sharding_filter()


def test_worker_exception_names_worker_node_and_keeps_the_traceback():
    """Elements before the failing one arrive first, in order; then the error."""
    dp = numbers().map(fail_on_7, name="checker")
    got = []
    with sd.DataLoader2(dp, reading_service=MP(2)) as loader:
        with pytest.raises(sd.WorkerError) as info:
            for x in loader:
                got.append(x)
    err = info.value
    assert got == list(range(7))
    assert err.worker_id == 1 and err.op == "map" and err.name == "checker"
    assert "worker 1" in str(err) and "map node 'checker'" in str(err)
    assert "fail_on_7" in err.traceback and "ValueError: bad element 7" in err.traceback
    assert isinstance(err.__cause__, ValueError)
    assert isinstance(err, sd.NodeError)


def test_persistent_workers_survive_a_node_error():
    dp = numbers().map(fail_on_7)
    with sd.DataLoader2(dp, reading_service=MP(2, persistent_workers=True)) as loader:
        for _ in range(2):
            with pytest.raises(sd.WorkerError):
                list(loader)


def test_worker_init_fn_failure_is_reported():
    with sd.DataLoader2(numbers(), reading_service=MP(2, worker_init_fn=_bad_init)) as loader:
        with pytest.raises(sd.WorkerError, match="init failed"):
            list(loader)


def _bad_init(worker_id):
    raise RuntimeError("init failed")


def test_sigkilled_worker_fails_the_iteration_quickly_naming_it():
    svc = MP(2)
    with sd.DataLoader2(numbers(400).map(slow), reading_service=svc) as loader:
        it = iter(loader)
        next(it)
        victim = svc.worker_pids[1]
        os.kill(victim, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(sd.WorkerDiedError, match="worker 1 .*SIGKILL") as info:
            for _ in it:
                pass
        assert time.monotonic() - start < 5
        assert info.value.worker_id == 1 and info.value.exitcode == -signal.SIGKILL
    assert not alive(victim)


def test_the_next_epoch_after_a_death_starts_new_workers():
    svc = MP(2, persistent_workers=True)
    with sd.DataLoader2(numbers(200).map(slow), reading_service=svc) as loader:
        it = iter(loader)
        next(it)
        os.kill(svc.worker_pids[0], signal.SIGKILL)
        with pytest.raises(sd.WorkerDiedError):
            list(it)
        assert sorted(loader) == list(range(200))


@pytest.mark.parametrize("ending", ["shutdown", "death"])
def test_the_main_process_keeps_no_descriptor_of_its_workers(ending):
    """Sockets, shared-memory segments, process pipes and the selector that
    waits on the workers are all closed, after a shutdown and after a
    worker's death."""
    before = open_fds()
    svc = MP(3)
    loader = sd.DataLoader2(numbers(300).map(big_tensor), reading_service=svc)
    it = iter(loader)
    kept = [next(it) for _ in range(5)]  # viewing shared memory
    if ending == "death":
        os.kill(svc.worker_pids[2], signal.SIGKILL)
        with pytest.raises(sd.WorkerDiedError):
            list(it)
    del it, kept
    loader.shutdown()
    gc.collect()
    assert open_fds() == before


def test_timeout_raises_when_no_element_arrives():
    with sd.DataLoader2(numbers().map(sleep_on_5), reading_service=MP(2, timeout=1)) as loader:
        start = time.monotonic()
        with pytest.raises(sd.WorkerTimeoutError, match="worker 1 within timeout=1"):
            list(loader)
        assert time.monotonic() - start < 10


def test_keyboard_interrupt_in_the_training_loop_leaves_nothing_behind():
    svc = MP(2)
    with pytest.raises(KeyboardInterrupt):
        with sd.DataLoader2(numbers(400).map(slow), reading_service=svc) as loader:
            for i, _ in enumerate(loader):
                pids = svc.worker_pids
                if i == 3:
                    raise KeyboardInterrupt
    assert not any(alive(pid) for pid in pids)


def test_garbage_collection_stops_the_workers():
    svc = MP(2)
    loader = sd.DataLoader2(numbers(400).map(slow), reading_service=svc)
    it = iter(loader)
    next(it)
    pids = svc.worker_pids
    del it, loader, svc
    gc.collect()
    assert wait_until(lambda: not any(alive(pid) for pid in pids))


def test_shutdown_is_idempotent_and_final():
    loader = sd.DataLoader2(numbers(), reading_service=MP(2))
    it = iter(loader)
    next(it)
    loader.shutdown()
    loader.shutdown()
    with pytest.raises(RuntimeError):
        iter(loader)


@pytest.mark.parametrize("persistent", [False, True])
def test_a_new_iter_tears_the_old_epoch_down(persistent):
    """Lightning's sanity check then training: the second iter() starts a clean
    epoch, the old iterator is dead, and there are never more workers than asked."""
    svc = MP(2, persistent_workers=persistent)
    before = children()
    with sd.DataLoader2(numbers(), reading_service=svc) as loader:
        sanity = iter(loader)
        next(sanity)
        training = iter(loader)
        assert sorted(training) == list(range(20))
        assert len(children() - before) <= 2
        with pytest.raises(RuntimeError, match="newer iter"):
            next(sanity)


def test_persistent_workers_are_kept_across_epochs():
    svc = MP(2, persistent_workers=True)
    with sd.DataLoader2(numbers(), reading_service=svc) as loader:
        list(loader)
        first = svc.worker_pids
        list(loader)
        assert svc.worker_pids == first


def test_non_persistent_workers_stop_at_the_end_of_each_epoch():
    svc = MP(2)
    with sd.DataLoader2(numbers(), reading_service=svc) as loader:
        it = iter(loader)
        next(it)
        pids = svc.worker_pids
        list(it)
        assert svc.worker_pids == [] and not any(alive(pid) for pid in pids)


_ORPHAN_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import streamdag as sd
    from tests.support.rs_functions import slow
    svc = sd.MultiProcessingReadingService(2)
    dp = sd.IterableWrapper(range(10_000)).sharding_filter().map(slow)
    it = iter(sd.DataLoader2(dp, reading_service=svc))
    next(it)
    print(*svc.worker_pids, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_workers_exit_when_the_main_process_is_killed():
    proc = subprocess.run(
        [sys.executable, "-c", _ORPHAN_SCRIPT],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=os.getcwd(),
    )
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2, proc.stderr
    assert wait_until(lambda: not any(alive(pid) for pid in pids), timeout=5)

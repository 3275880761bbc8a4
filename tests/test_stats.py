"""Per-node statistics (DataLoader2(stats=True).stats()): exact element
counts per node in every reading service, summed over workers and epochs;
bytes, skips; CPU time charged to the node that spends it; progress bar."""

from __future__ import annotations

import functools
import io
import tarfile
import time

import pytest

import streamdag as sd
from tests.support.leaks import no_leaks  # noqa: F401 - fixture
from tests.support.readers import jpeg_bytes

pytestmark = pytest.mark.usefixtures("no_leaks")


def is_even(x):
    return x % 2 == 0


def plus_one(x):
    return x + 1


def burn(x, n=20_000):
    total = 0
    for i in range(n):
        total += i
    return x


def light(x):
    return x


def counts(stats, *names):
    return [(stats.node(n).elements_in, stats.node(n).elements_out) for n in names]


def pipeline(n=100, shard=False):
    dp = sd.IterableWrapper(range(n))
    if shard:
        dp = dp.sharding_filter()
    return (
        dp.map(plus_one, name="plus")
        .filter(is_even, name="even")
        .batch(8, name="batch")
        .collate(name="collate")
    )


def run(dp, service=None, epochs=1, **kwargs):
    with sd.DataLoader2(dp, reading_service=service, seed=0, stats=True, **kwargs) as loader:
        out = [list(loader) for _ in range(epochs)]
        return out, loader.stats()


def test_counts_in_process_are_exact():
    _, stats = run(pipeline())
    assert counts(stats, "plus", "even", "batch", "collate") == [
        (100, 100),
        (100, 50),
        (50, 7),
        (7, 7),
    ]
    assert stats.nodes[0].op == "iterable_wrapper" and stats.nodes[0].elements_out == 100
    assert [n.copies for n in stats.nodes] == [1] * 5


@pytest.mark.parametrize(
    "service",
    [
        lambda: sd.MultiProcessingReadingService(2),
        lambda: sd.MultiThreadingReadingService(2),
    ],
    ids=["processes", "threads"],
)
def test_counts_are_summed_over_workers(service):
    """Each worker reads the whole source and keeps its shard: the source
    reports 2 x 100 read, every node after the sharding point 100 in all."""
    _, stats = run(pipeline(shard=True), service())
    assert stats.nodes[0].elements_out == 200 and stats.nodes[0].copies == 2
    assert counts(stats, "plus", "even") == [(100, 100), (100, 50)]
    batches = stats.node("batch")
    # worker 0 holds the even x (x + 1 is odd: none kept), worker 1 all 50
    assert batches.elements_in == 50 and batches.elements_out == 7
    assert stats.node("collate").elements_out == batches.elements_out


@pytest.mark.parametrize(
    "service",
    [
        lambda: None,
        lambda: sd.MultiProcessingReadingService(0),
        lambda: sd.MultiProcessingReadingService(2, persistent_workers=False),
    ],
    ids=["in_process", "inline", "new_workers_each_epoch"],
)
def test_counts_add_up_over_epochs(service):
    """Workers stopped after an epoch keep their part in the totals."""
    _, stats = run(pipeline(shard=True), service(), epochs=3)
    assert counts(stats, "plus", "even", "batch") == [(300, 300), (300, 150), (150, 21)]


def test_a_count_no_node_knows_is_none_not_a_guess():
    """Between two C-level filters nothing counts per element: unknown."""
    dp = sd.IterableWrapper(range(30)).filter(is_even, name="a").filter(bool, name="b")
    _, stats = run(dp)
    assert counts(stats, "a", "b") == [(30, None), (None, 14)]
    assert "?" in stats.table()


def write_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        end = tar.offset  # after the last member's data
    return end + 512  # the parser stops at the first zero block ending the archive


def test_reader_bytes_and_skips(tmp_path):
    """load_from_tar reports the bytes it parsed (headers and data up to the
    end-of-archive block, not the padding after it); decode counts the
    sample it dropped, and its count out is one less than in."""
    good = jpeg_bytes(32, 24)
    sizes = []
    for shard in range(2):
        members = [(f"{shard}{i}.jpg", good) for i in range(3)]
        if shard == 1:
            members.append(("bad.jpg", b"not a jpeg"))
        sizes.append(write_tar(tmp_path / f"{shard}.tar", members))
    dp = (
        sd.FileLister(str(tmp_path), masks="*.tar")
        .open_files(mode="b")
        .load_from_tar(name="tar")
        .webdataset(name="samples")
        .decode(on_error="skip", name="decode")
    )
    (out,), stats = run(dp)
    assert len(out) == 6
    tar = stats.node("tar")
    assert tar.bytes_read == sum(sizes) and tar.reads_storage
    assert stats.bytes_read == sum(sizes)
    assert counts(stats, "tar", "samples", "decode") == [(2, 7), (7, 7), (7, 6)]
    assert stats.node("decode").skipped == 1


@pytest.mark.parametrize(
    "service",
    [
        lambda: None,
        lambda: sd.MultiProcessingReadingService(2),
        lambda: sd.MultiThreadingReadingService(2),
    ],
    ids=["in_process", "processes", "threads"],
)
def test_cpu_time_is_charged_to_the_node_that_spends_it(service):
    """``burn`` does 20,000 steps per element, ``light`` none: the sampler
    must find the time in ``burn``'s node, whichever thread or process runs it."""
    dp = (
        sd.IterableWrapper(range(400))
        .sharding_filter()
        .map(light, name="light")
        .map(burn, name="burn")
        .batch(10)
    )
    _, stats = run(dp, service())
    assert stats.bottleneck().name == "burn"
    assert stats.node("burn").busy_s > 10 * stats.node("light").busy_s
    assert "bottleneck: map 'burn'" in stats.table()


def test_time_outside_the_loader_is_the_training_step():
    with sd.DataLoader2(pipeline(40), stats=True) as loader:
        for _ in loader:
            time.sleep(0.02)
        stats = loader.stats()
    assert stats.outside_s >= 3 * 0.02  # 3 batches, each followed by a 20 ms "step"


def nap(x, seconds=0.01):
    time.sleep(seconds)
    return x


@pytest.mark.parametrize(
    "service",
    [lambda: sd.MultiProcessingReadingService(2), lambda: sd.MultiThreadingReadingService(2)],
    ids=["processes", "threads"],
)
def test_workers_waiting_for_the_main_process_are_counted(service):
    """1 ms per element in the workers and a 10 ms step after each: the
    workers spend most of their time with their chunks made, waiting; 10 ms
    per element and no step: hardly any."""
    dp = sd.IterableWrapper(range(120)).sharding_filter()
    quick = dp.map(functools.partial(nap, seconds=0.001))
    with sd.DataLoader2(quick, reading_service=service(), stats=True) as loader:
        for _ in loader:
            time.sleep(0.01)
        idle = loader.stats()
    _, busy = run(dp.map(nap), service())
    for stats in (idle, busy):
        assert 0 <= stats.credit_wait_s <= stats.worker_s
    assert idle.credit_wait_s > 0.5 * idle.worker_s
    assert busy.credit_wait_s < 0.5 * busy.worker_s
    assert "the workers waited for the main process to take their chunks" in idle.table()


def test_stats_need_the_flag():
    with sd.DataLoader2(pipeline()) as loader:
        list(loader)
        with pytest.raises(RuntimeError, match=r"stats=True"):
            loader.stats()


def test_progress_bar_shows_rates(capsys):
    with sd.DataLoader2(pipeline(), progress=True) as loader:
        assert len(list(loader)) == 7
    err = capsys.readouterr().err
    assert "epoch 0" in err and "7el" in err.replace(" ", "") and "samples/s" in err


@pytest.mark.slow  # a subprocess with worker processes
def test_a_loader_never_shut_down_does_not_kill_the_exit():
    """The CPU-time sampler's timer (SIGPROF) is disarmed at exit: its
    default action would end the process with "Profiling timer expired"."""
    import subprocess
    import sys

    code = (
        "import streamdag as sd\n"
        "from tests.test_stats import pipeline\n"
        "loader = sd.DataLoader2(pipeline(2000), stats=True)\n"
        "print(len(list(loader)))\n"
        "sum(range(3_000_000))  # CPU time while exiting: ticks keep coming\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, "125\n"), done.stderr

"""torchdata's per-epoch ``reset_fn`` / ``worker_reset_fn`` with its
``SeedGenerator``, and the ``*prefetch_cnt`` arguments of the services."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import pytest

import streamdag as sd
from streamdag.core.placement import ReceiveAhead
from streamdag.dataloader2.random import SeedGenerator
from streamdag.reading_service.init_fns import WorkerPipe
from streamdag.runtime.node import WorkerContext
from streamdag.testing import assert_resumes

N = 12


def tag(x: int, worker: int, shared: int, own: int) -> tuple[int, int, int, int, int]:
    return (x, worker, shared, own, os.getpid())


def tag_epoch(datapipe: Any, worker_info: WorkerContext, seeds: SeedGenerator) -> Any:
    """A reset fn that maps with this epoch's seeds baked in."""
    fn = partial(
        tag,
        worker=worker_info.worker_id,
        shared=seeds.generate_shared_seed(),
        own=seeds.generate_seed(),
    )
    return datapipe.map(fn)


def add_offset(x: int, offset: int) -> int:
    return x + offset


def offset_epoch(datapipe: Any, worker_info: WorkerContext, seeds: SeedGenerator) -> Any:
    """An epoch-specific offset, drawn from the seed generator, after a shuffle."""
    return datapipe.map(partial(add_offset, offset=seeds.generate_seed() % 1000 * 1000))


def unchanged(datapipe: Any, worker_info: WorkerContext, seeds: SeedGenerator) -> Any:
    return datapipe


def returns_nothing(datapipe: Any, worker_info: WorkerContext, seeds: SeedGenerator) -> None:
    return None


def numbers() -> Any:
    return sd.IterableWrapper(range(N)).sharding_filter()


SERVICES = {
    "in_process": lambda **kw: sd.InProcessReadingService(reset_fn=kw.pop("reset"), **kw),
    "threads": lambda **kw: sd.MultiThreadingReadingService(
        2, worker_reset_fn=kw.pop("reset"), **kw
    ),
    "processes": lambda **kw: sd.MultiProcessingReadingService(
        2, worker_reset_fn=kw.pop("reset"), **kw
    ),
}


def epochs(service: str, seed: int, count: int = 2, **kw: Any) -> list[list[Any]]:
    with sd.DataLoader2(numbers(), reading_service=SERVICES[service](**kw), seed=seed) as loader:
        return [list(loader) for _ in range(count)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("service", SERVICES)
def test_reset_fn_runs_in_every_worker_at_each_epoch(service: str) -> None:
    """Each epoch runs the pipe the reset fn returned for it: the same
    elements in order, with seeds shared by all workers, own to each worker,
    new each epoch and the same again for the same seed."""
    workers = 1 if service == "in_process" else 2
    first = epochs(service, seed=7, reset=tag_epoch)
    for got in first:
        assert [x for x, *_ in got] == list(range(N))
        assert [w for _, w, *_ in got] == [x % workers for x in range(N)]
        assert len({s for _, _, s, _, _ in got}) == 1
        assert len({o for *_, o, _ in got}) == workers
        assert all(o == next(p for _, w2, _, p, _ in got if w2 == w) for _, w, _, o, _ in got)
    assert {s for _, _, s, _, _ in first[0]}.isdisjoint({s for _, _, s, _, _ in first[1]})
    assert {o for *_, o, _ in first[0]}.isdisjoint({o for *_, o, _ in first[1]})
    again = epochs(service, seed=7, reset=tag_epoch)
    assert [[e[:4] for e in got] for got in again] == [[e[:4] for e in got] for got in first]
    other = epochs(service, seed=8, reset=tag_epoch)
    assert [[e[:2] for e in got] for got in other] == [[e[:2] for e in got] for got in first]
    assert [e[2] for e in other[0]] != [e[2] for e in first[0]]


@pytest.mark.timeout(120)
def test_persistent_workers_run_the_reset_fn_each_epoch() -> None:
    service = sd.MultiProcessingReadingService(
        2, worker_reset_fn=tag_epoch, persistent_workers=True
    )
    with sd.DataLoader2(numbers(), reading_service=service, seed=3) as loader:
        first, second = list(loader), list(loader)
    assert {e[4] for e in first} == {e[4] for e in second}  # the same two processes
    assert len({e[4] for e in first}) == 2
    assert {e[2] for e in first}.isdisjoint({e[2] for e in second})  # reset again


@pytest.mark.timeout(120)
@pytest.mark.parametrize("service", SERVICES)
def test_unchanged_pipe_from_reset_fn_runs_as_without(service: str) -> None:
    assert epochs(service, seed=1, reset=unchanged) == [list(range(N))] * 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("service", SERVICES)
def test_a_reset_fn_that_returns_no_pipe_is_named(service: str) -> None:
    with pytest.raises(Exception, match=r"reset_fn\(datapipe, worker_info, seed_generator\) must"):
        epochs(service, seed=1, reset=returns_nothing)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", SERVICES)
def test_reset_fn_resumes_exactly(service: str) -> None:
    """The four resume phases: a reset fn is deterministic per (seed, epoch,
    worker), so a resumed epoch rebuilds the pipe it ran."""
    pipe = sd.IterableWrapper(range(30)).shuffle(buffer_size=8).sharding_filter()
    full = assert_resumes(
        pipe,
        stops=(0, 7, 29, 30),
        seed=5,
        reading_service=partial(SERVICES[service], reset=offset_epoch),
    )
    assert sorted(x % 1000 for x in full) == list(range(30))


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "factory",
    [
        partial(sd.MultiProcessingReadingService, 2, worker_prefetch_cnt=3, main_prefetch_cnt=4),
        partial(sd.MultiThreadingReadingService, 2, worker_prefetch_cnt=3, main_prefetch_cnt=4),
    ],
    ids=["processes", "threads"],
)
def test_prefetch_counts_keep_output_and_resume(factory: Any) -> None:
    pipe = sd.IterableWrapper(range(40)).shuffle(buffer_size=8).sharding_filter()
    with sd.DataLoader2(pipe, reading_service=factory.func(2), seed=2) as loader:
        default = list(loader)
    assert assert_resumes(pipe, stops=(0, 5, 39), seed=2, reading_service=factory) == default


def test_prefetch_counts_add_prefetch_where_torchdata_does() -> None:
    """``worker_prefetch_cnt`` ends each worker's part, ``main_prefetch_cnt``
    follows the merge; None (default) and 0 add nothing."""
    spec = numbers().node
    ended = WorkerPipe(spec, WorkerContext(), prefetch=3).initial()
    assert (ended.op, dict(ended.params), ended.inputs) == ("prefetch", {"buffer_size": 3}, (spec,))
    for count in (None, 0):
        assert WorkerPipe(spec, WorkerContext(), prefetch=count).initial() is spec
    stream = sd.Node("_worker_stream", {"boundary": spec.id, "batch_size": None}, ())
    main = ReceiveAhead(4).apply(sd.Node("batch", {"batch_size": 2}, (stream,)))
    assert main.inputs[0].op == "prefetch" and main.inputs[0].params["buffer_size"] == 4
    assert ReceiveAhead(0).apply(stream) is stream


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_bad_prefetch_counts_are_named(value: Any) -> None:
    for make in (
        partial(sd.MultiProcessingReadingService, 2, worker_prefetch_cnt=value),
        partial(sd.MultiThreadingReadingService, 2, main_prefetch_cnt=value),
    ):
        with pytest.raises(sd.ParamError, match="prefetch_cnt must be None or an int >= 0"):
            make()


def test_seed_generator_follows_torchdatas_contract() -> None:
    """Same seed, same numbers; ``spawn`` gives a worker its own sequence and
    keeps the shared one; ``seed(n)`` starts both again."""
    a, b = SeedGenerator(42), SeedGenerator(42)
    assert [a.generate_seed() for _ in range(3)] == [b.generate_seed() for _ in range(3)]
    assert len({SeedGenerator(42).generate_seed(), SeedGenerator(43).generate_seed()}) == 2
    root = SeedGenerator(9)
    w0, w1 = root.spawn(0), root.spawn(1)
    assert w0.generate_shared_seed() == w1.generate_shared_seed() == root.generate_shared_seed()
    assert w0.generate_seed() != w1.generate_seed()
    assert root.spawn(1).generate_seed() == SeedGenerator(9).spawn(1).generate_seed()
    assert root.spawn(2, inplace=True) is root
    assert root.generate_seed() == SeedGenerator(9).spawn(2).generate_seed()
    root.seed(9)
    assert root.generate_seed() == SeedGenerator(9).generate_seed()
    assert all(0 <= s < 2**64 for s in (root.generate_seed(), root.generate_shared_seed()))
    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match="uint64 seed"):
            SeedGenerator(bad)
    with pytest.raises(ValueError, match="worker_id"):
        root.spawn(-1)

"""RayReadingService on a local Ray instance (2 CPUs, started once for the
module: it takes seconds): the same stream as the process service, resume
across the two, a killed actor replaced without changing the stream, errors
naming the actor and its node, and no actor left behind."""

from __future__ import annotations

import gc
from itertools import islice

import pytest

import streamdag as sd
from streamdag.errors import GraphFormatError
from tests.support.leaks import wait_until
from tests.support.rs_functions import big_array, fail_on_7, slow, tag_random

ray = pytest.importorskip("ray")
from ray.util.state import list_actors  # noqa: E402 - after the skip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
TRUSTED = ["tests.support.rs_functions"]


@pytest.fixture(scope="session")
def ray_cluster():
    # the dashboard serves ray.util.state, which the leak checks read
    ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1")
    yield
    ray.shutdown()


@pytest.fixture
def no_actors_left(ray_cluster):
    yield
    gc.collect()
    assert wait_until(lambda: _live_actors() == []), _live_actors()


def _live_actors():
    return [a.actor_id for a in list_actors(filters=[("state", "!=", "DEAD")])]


def _pipeline(n=200, fn=tag_random):
    return sd.IterableWrapper(range(n)).shuffle(buffer_size=50).sharding_filter().map(fn)


def _ray(num_workers=2, **kwargs):
    return sd.RayReadingService(num_workers, trusted_modules=TRUSTED, **kwargs)


def _run(dp, service, seed=7, stop=None, state=None):
    """The elements (up to ``stop``) and the state after them."""
    with sd.DataLoader2(dp, reading_service=service, seed=seed) as loader:
        if state is not None:
            loader.load_state_dict(state)
        items = list(islice(loader, stop))
        return items, loader.state_dict()


@pytest.mark.usefixtures("no_actors_left")
def test_same_elements_in_the_same_order_as_the_process_service_two_epochs():
    dp = _pipeline().batch(4)
    with sd.DataLoader2(dp, reading_service=sd.MultiProcessingReadingService(2), seed=3) as ref:
        expected = [list(ref), list(ref)]
    with sd.DataLoader2(dp, reading_service=_ray(), seed=3) as loader:
        got = [list(loader), list(loader)]
    assert got == expected
    assert got[0] != got[1]  # the second epoch is shuffled and seeded anew
    assert sorted(x for batch in got[0] for x, _ in batch) == list(range(200))


@pytest.mark.usefixtures("no_actors_left")
def test_resume_state_moves_between_ray_and_processes():
    dp = _pipeline()
    full, _ = _run(dp, sd.MultiProcessingReadingService(2))
    head, state = _run(dp, sd.MultiProcessingReadingService(2), stop=37)
    rest, _ = _run(dp, _ray(), state=state)
    assert head + rest == full
    head, state = _run(dp, _ray(), stop=81)
    rest, _ = _run(dp, sd.MultiProcessingReadingService(2), state=state)
    assert head + rest == full


@pytest.mark.usefixtures("no_actors_left")
def test_killed_actor_is_replaced_and_the_stream_is_unchanged():
    dp = _pipeline(400, slow)  # 10 ms an element: many chunks per actor
    expected, _ = _run(dp, sd.MultiProcessingReadingService(2))
    service = _ray()
    with sd.DataLoader2(dp, reading_service=service, seed=7) as loader:
        it = iter(loader)
        got = list(islice(it, 60))
        ray.kill(service.actors[0])
        got += list(it)
    assert got == expected


@pytest.mark.usefixtures("no_actors_left")
def test_actor_that_cannot_be_restarted_fails_the_epoch_naming_actor_and_node():
    service = _ray(max_restarts=0)
    with sd.DataLoader2(_pipeline(400, slow), reading_service=service, seed=7) as loader:
        it = iter(loader)
        list(islice(it, 10))
        actor = service.actors[1]
        ray.kill(actor)
        with pytest.raises(sd.WorkerDiedError) as info:
            list(it)
    message = str(info.value)
    assert f"Ray actor {actor._actor_id.hex()} of worker 1 (rank 0) on node " in message
    assert "max_restarts=0" in message
    assert info.value.worker_id == 1


@pytest.mark.usefixtures("no_actors_left")
def test_node_error_in_an_actor_names_the_worker_and_node():
    dp = sd.IterableWrapper(range(20)).sharding_filter().map(fail_on_7)
    with sd.DataLoader2(dp, reading_service=_ray()) as loader:
        with pytest.raises(sd.WorkerError, match=r"worker 1 .*map node.*bad element 7") as info:
            list(loader)
    assert "ValueError: bad element 7" in info.value.traceback


@pytest.mark.usefixtures("no_actors_left")
def test_the_actors_get_the_saved_graph_so_its_functions_must_be_trusted():
    dp = sd.IterableWrapper(range(4)).sharding_filter().map(fail_on_7)
    loader = sd.DataLoader2(dp, reading_service=sd.RayReadingService(2))
    with pytest.raises(GraphFormatError, match=r"tests\.support\.rs_functions.*trusted_modules"):
        list(loader)
    loader.shutdown()
    closure = sd.IterableWrapper(range(4)).sharding_filter().map(lambda x: x)
    with sd.DataLoader2(closure, reading_service=_ray()) as loader:
        with pytest.raises(GraphFormatError, match="lambda"):
            list(loader)


@pytest.mark.usefixtures("no_actors_left")
def test_large_arrays_arrive_from_the_object_store_without_a_copy():
    dp = sd.IterableWrapper(range(6)).sharding_filter().map(big_array)
    with sd.DataLoader2(dp, reading_service=_ray()) as loader:
        arrays = list(loader)
    assert [int(a[0]) for a in arrays] == list(range(6))
    assert all(a.nbytes == 1 << 20 and (a == a[0]).all() for a in arrays)
    # a view of Ray's shared-memory object, not a copy in the trainer's heap
    assert all(not a.flags.writeable and not a.flags.owndata for a in arrays)


def test_no_actor_is_left_after_an_error_or_garbage_collection(ray_cluster):
    before = _live_actors()
    dp = sd.IterableWrapper(range(20)).sharding_filter().map(fail_on_7)
    with pytest.raises(sd.WorkerError):
        with sd.DataLoader2(dp, reading_service=_ray()) as loader:
            list(loader)
    assert wait_until(lambda: _live_actors() == before)
    loader = sd.DataLoader2(_pipeline(), reading_service=_ray())
    next(iter(loader))
    assert len(_live_actors()) == len(before) + 2
    del loader
    gc.collect()
    assert wait_until(lambda: _live_actors() == before)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'streamdag\[ray\]'"):
        sd.RayReadingService(2)

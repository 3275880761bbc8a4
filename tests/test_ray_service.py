"""RayReadingService on a local Ray instance (2 CPUs, started once for the
module: it takes seconds): the same stream as the process service, resume
across the two, a killed actor replaced without changing the stream, errors
naming the actor and its node, and no actor left behind."""

from __future__ import annotations

import gc
import json
import socket
import time
from functools import partial
from itertools import islice

import pytest
import torch

import streamdag as sd
from streamdag.errors import GraphFormatError, ParamError
from streamdag.reading_service import ray_pool, ray_wire
from streamdag.reading_service.ray_pool import check_store
from streamdag.reading_service.ray_replay import Replay
from streamdag.reading_service.worker import CREDIT, DATA, ERROR, RUN, THEN
from tests.support import rs_functions
from tests.support.leaks import wait_until
from tests.support.rs_functions import (
    big_array,
    big_tensor,
    fail_on_7,
    generator_on_3,
    slow,
    square,
    tag_random,
    tensors_of_each_kind,
)

ray = pytest.importorskip("ray")
from ray.util.state import list_actors, list_objects  # noqa: E402 - after the skip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
TRUSTED = ["tests.support.rs_functions"]
TRUSTED_KW = {"trusted_modules": TRUSTED}


@pytest.fixture(scope="module")
def ray_cluster():
    # the dashboard serves ray.util.state, which the leak checks read; Ray's
    # daemons stop with this module, not to share the CPUs with later ones
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
def test_a_chunk_that_arrives_early_is_unpickled_when_its_turn_comes():
    """As with worker processes: actor 1's chunk waits as bytes while the
    trainer waits for actor 0's first element."""
    rs_functions.UNPICKLED.clear()
    dp = sd.IterableWrapper(range(6)).sharding_filter().map(rs_functions.counted_after_a_pause_at_0)
    with sd.DataLoader2(dp, reading_service=_ray()) as loader:
        it = iter(loader)
        assert next(it).value == 0
        assert rs_functions.UNPICKLED == [0]
        assert [e.value for e in it] == [1, 2, 3, 4, 5]
    assert sorted(rs_functions.UNPICKLED) == list(range(6))


@pytest.mark.usefixtures("no_actors_left")
def test_actors_start_with_the_loader_and_serve_every_epoch_like_persistent_processes():
    dp = _pipeline().batch(4)
    persistent = sd.MultiProcessingReadingService(2, persistent_workers=True)
    with sd.DataLoader2(dp, reading_service=persistent, seed=3) as ref:
        expected = [list(ref), list(ref)]
    service = _ray()
    with sd.DataLoader2(dp, reading_service=service, seed=3) as loader:
        started = {actor._actor_id.hex() for actor in service.actors}
        assert len(started) == 2  # before the first batch is asked for
        got = []
        for _ in range(2):
            got.append(list(loader))
            assert {actor._actor_id.hex() for actor in service.actors} == started
            assert set(_live_actors()) == started
    assert got == expected
    assert got[0] != got[1]
    assert wait_until(lambda: not started & set(_live_actors()))  # shut down with the loader


def _own_ray_main(_index, outdir):
    """Without Ray running, the service starts a local instance sized to its actors."""
    dp = _pipeline(60)
    service = sd.RayReadingService(1, resources={"CPU": 1, "reader": 1}, **TRUSTED_KW)
    with sd.DataLoader2(dp, reading_service=service, seed=5) as loader:
        items = list(loader)
        resources = ray.cluster_resources()
    wanted = sd.RayReadingService.preload_modules()

    def imported_at_start() -> list[str]:  # pickled by value: imports nothing itself
        import sys

        return [name for name in wanted if name in sys.modules]

    preloaded = ray.get(ray.remote(num_cpus=1)(imported_at_start).remote())
    ray.shutdown()
    with open(f"{outdir}/out.json", "w") as f:
        json.dump({"items": items, "resources": resources, "preloaded": preloaded}, f)


def test_without_ray_running_the_service_starts_one_sized_to_its_actors(tmp_path):
    import torch.multiprocessing as tmp

    tmp.start_processes(_own_ray_main, args=(str(tmp_path),), nprocs=1, start_method="spawn")
    out = json.loads((tmp_path / "out.json").read_text())
    assert sorted(x for x, _ in out["items"]) == list(range(60))
    # one actor of one CPU and one "reader": not the machine's CPUs
    assert out["resources"]["CPU"] == 1
    assert out["resources"]["reader"] == 1
    # its worker processes start with what an actor needs already imported
    assert out["preloaded"] == sd.RayReadingService.preload_modules()
    assert "torch" in out["preloaded"]
    options = sd.RayReadingService(3, resources={"CPU": 0.5}).local_ray_options()
    assert options == {
        "num_cpus": 2,
        "resources": None,
        "include_dashboard": False,
        "log_to_driver": False,
        "_system_config": {"preload_python_modules": sd.RayReadingService.preload_modules()},
    }


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
        killed = service.actors[0]
        ray.kill(killed)
        got += list(it)
        assert service.actors[0]._actor_id != killed._actor_id  # replaced
    assert got == expected


@pytest.mark.usefixtures("no_actors_left")
def test_virtual_workers_resume_another_worker_count_and_an_actor_of_two_is_replaced():
    """A state of 3 worker processes over 4 virtual workers resumes in 2
    actors, each running two virtual workers; actor 0 (virtual workers 0
    and 2) is killed mid-epoch: the stream is still the uninterrupted one."""
    dp = _pipeline(400, slow)
    processes = partial(sd.MultiProcessingReadingService, 3, virtual_workers=4)
    full, _ = _run(dp, processes())
    head, state = _run(dp, processes(), stop=50)
    service = _ray(virtual_workers=4)
    with sd.DataLoader2(dp, reading_service=service, seed=7) as loader:
        loader.load_state_dict(state)
        it = iter(loader)
        rest = list(islice(it, 100))
        killed = service.actors[0]
        ray.kill(killed)
        rest += list(it)
        assert service.actors[0]._actor_id != killed._actor_id  # replaced
    assert head + rest == full


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
def test_stats_count_every_actors_elements():
    dp = sd.IterableWrapper(range(100)).sharding_filter().map(square, name="sq").batch(8)
    with sd.DataLoader2(dp, reading_service=_ray(), seed=0, stats=True) as loader:
        batches = list(loader)
        stats = loader.stats()
    assert sum(len(b) for b in batches) == 100
    assert (stats.node("sq").elements_in, stats.node("sq").elements_out) == (100, 100)
    assert stats.nodes[0].elements_out == 200 and stats.nodes[0].copies == 2


@pytest.mark.usefixtures("no_actors_left")
def test_node_error_in_an_actor_names_the_worker_and_node():
    dp = sd.IterableWrapper(range(20)).sharding_filter().map(fail_on_7)
    with sd.DataLoader2(dp, reading_service=_ray()) as loader:
        with pytest.raises(sd.WorkerError, match=r"worker 1 .*map node.*bad element 7") as info:
            list(loader)
    assert "ValueError: bad element 7" in info.value.traceback


@pytest.mark.usefixtures("no_actors_left")
def test_an_element_that_cannot_be_pickled_names_the_worker_and_node():
    """As in worker processes: the elements before it arrive, then the error."""
    dp = sd.IterableWrapper(range(6)).sharding_filter().map(generator_on_3, name="lazy")
    got = []
    with sd.DataLoader2(dp, reading_service=_ray()) as loader:
        with pytest.raises(sd.WorkerError) as info:
            for x in loader:
                got.append(x)
    assert got == [0, 1, 2]
    assert (info.value.worker_id, info.value.op, info.value.name) == (1, "map", "lazy")
    assert "map node 'lazy' yielded an element that cannot be pickled" in str(info.value)


@pytest.mark.usefixtures("no_actors_left")
def test_the_actors_get_the_saved_graph_so_its_functions_must_be_trusted():
    """Checked when the loader starts its actors: as it is created."""
    dp = sd.IterableWrapper(range(4)).sharding_filter().map(fail_on_7)
    with pytest.raises(GraphFormatError, match=r"tests\.support\.rs_functions.*trusted_modules"):
        sd.DataLoader2(dp, reading_service=sd.RayReadingService(2))
    closure = sd.IterableWrapper(range(4)).sharding_filter().map(lambda x: x)
    with pytest.raises(GraphFormatError, match="lambda"):
        sd.DataLoader2(closure, reading_service=_ray())


@pytest.mark.usefixtures("no_actors_left")
def test_large_arrays_arrive_from_the_object_store_without_a_copy():
    dp = sd.IterableWrapper(range(6)).sharding_filter().map(big_array)
    with sd.DataLoader2(dp, reading_service=_ray()) as loader:
        arrays = list(loader)
    assert [int(a[0]) for a in arrays] == list(range(6))
    assert all(a.nbytes == 1 << 20 and (a == a[0]).all() for a in arrays)
    # a view of Ray's shared-memory object, not a copy in the trainer's heap
    assert all(not a.flags.writeable and not a.flags.owndata for a in arrays)


@pytest.mark.usefixtures("no_actors_left")
def test_large_tensors_arrive_as_writable_views_of_the_object_store():
    """Torch would pickle a tensor into the chunk and copy it again on the
    trainer; the service sends its bytes out of band instead (any dtype,
    non-contiguous ones made contiguous), and small tensors inline."""
    dp = sd.IterableWrapper(range(4)).sharding_filter().map(big_tensor)
    with sd.DataLoader2(dp, reading_service=_ray()) as loader:
        tensors = list(loader)
    assert [t.tolist() == [i] * (1 << 18) for i, t in enumerate(tensors)] == [True] * 4
    # a copy would own (resizable) memory; these view the chunk's object
    assert not any(t.untyped_storage().resizable() for t in tensors)
    tensors[0].add_(5)  # only this trainer reads the object: a write is the user's own
    assert int(tensors[0][0]) == 5 and int(tensors[1][0]) == 1

    dp = sd.IterableWrapper(range(2)).sharding_filter().map(tensors_of_each_kind)
    with sd.DataLoader2(dp, reading_service=_ray()) as loader:
        got = list(loader)
    with sd.DataLoader2(dp, reading_service=sd.MultiProcessingReadingService(2)) as loader:
        expected = list(loader)
    for mine, theirs in zip(got, expected, strict=True):
        for key in ("bf16", "transposed", "small"):
            assert mine[key].dtype == theirs[key].dtype and torch.equal(mine[key], theirs[key])
    assert not got[0]["transposed"].untyped_storage().resizable()
    assert got[0]["small"].untyped_storage().resizable()  # inline: its own memory


@pytest.mark.usefixtures("no_actors_left")
def test_a_slow_consumer_keeps_the_object_store_within_prefetch_factor_plus_one_chunks():
    """10 ms an element: a chunk of 200 ms of work holds at most 21 arrays of
    1 MiB. Without backpressure the actors would fill the store with all 240."""
    mib = 1 << 20
    dp = sd.IterableWrapper(range(240)).sharding_filter().map(slow).map(big_array)
    used = []
    with sd.DataLoader2(dp, reading_service=_ray(prefetch_factor=1)) as loader:
        for i, _ in enumerate(loader):
            time.sleep(0.05)
            if i % 10 == 5:
                objects = list_objects(detail=True, limit=10_000)
                used.append(sum(o.object_size or 0 for o in objects))
    assert max(used) <= (1 + 1) * 2 * 21 * mib, [u / mib for u in used]
    assert max(used) >= mib  # the chunks were in the store


def test_no_actor_or_object_is_left_after_an_error_ctrl_c_or_garbage_collection(ray_cluster):
    before = _live_actors()
    dp = sd.IterableWrapper(range(20)).sharding_filter().map(fail_on_7)
    with pytest.raises(sd.WorkerError):
        with sd.DataLoader2(dp, reading_service=_ray()) as loader:
            list(loader)
    assert wait_until(lambda: _live_actors() == before)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C in the training loop
        with sd.DataLoader2(_pipeline(), reading_service=_ray()) as loader:
            for _ in loader:
                raise KeyboardInterrupt
    assert wait_until(lambda: _live_actors() == before)
    loader = sd.DataLoader2(_pipeline(), reading_service=_ray())
    next(iter(loader))
    assert len(_live_actors()) == len(before) + 2
    del loader
    gc.collect()
    assert wait_until(lambda: _live_actors() == before)
    assert wait_until(lambda: _live_objects() == []), _live_objects()


def _live_objects():
    """Objects in the store or in flight (chunks, calls), not actor handles."""
    objects = list_objects(limit=10_000)
    return [o.object_id for o in objects if o.reference_type != "ACTOR_HANDLE"]


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'streamdag\[ray\]'"):
        sd.RayReadingService(2)


@pytest.mark.usefixtures("no_actors_left")
def test_a_pass_starts_with_one_element_chunks_that_grow(monkeypatch):
    """A chunk costs Ray calls, so an actor's chunks hold up to 200 ms of
    work; a pass starts with chunks of one element (10 ms each here) so that
    the first element comes without waiting for a whole chunk."""
    chunks = []

    def unpack(packed):
        message = ray_wire.unpack(packed)
        if message[0] == DATA:
            chunks.append(len(message[3]))
        return message

    monkeypatch.setattr(ray_pool, "unpack", unpack)  # notes each chunk's size on its way
    dp = sd.IterableWrapper(range(60)).sharding_filter().map(slow)
    with sd.DataLoader2(dp, reading_service=_ray(1)) as loader:
        for _epoch in range(2):  # each pass starts short again
            chunks.clear()
            assert list(loader) == list(range(60))
            assert chunks[0] == 1 and sum(chunks) == 60, chunks
            assert max(chunks) >= 4, chunks  # doubling: 5, 10, 20, 40, ... 200 ms


@pytest.mark.usefixtures("no_actors_left")
def test_the_object_store_check_is_made_again_as_chunks_grow():
    """Chunks of one array of 1 MiB fit the store with this prefetch_factor
    (a quarter of it), chunks of four do not: the pass's first chunks hold
    one element, and the check follows them as they grow."""
    mib = 1 << 20
    prefetch = int(ray.cluster_resources()["object_store_memory"] // (4 * mib))
    dp = sd.IterableWrapper(range(60)).sharding_filter().map(slow).map(big_array)
    service = _ray(1, prefetch_factor=prefetch)
    with pytest.raises(ParamError, match=r"prefetch_factor=\d+ \+ 1\) chunks need"):
        with sd.DataLoader2(dp, reading_service=service) as loader:
            list(loader)


def test_chunks_in_flight_are_checked_against_the_object_store():
    mib = 1 << 20
    check_store(100 * mib, 2, 4, 1200 * mib)  # 4 x 3 chunks of 100 MiB fit
    with pytest.raises(ParamError) as info:
        check_store(100 * mib, 3, 4, 1200 * mib)
    message = str(info.value)
    assert "about 100.0 MiB" in message
    assert "4 actors x (prefetch_factor=3 + 1) chunks need 1600 MiB" in message
    assert "store has 1200 MiB" in message
    with pytest.raises(ParamError) as info:  # 2 actors running 4 virtual workers
        check_store(100 * mib, 2, 4, 1000 * mib, "virtual workers")
    assert "4 virtual workers x (prefetch_factor=2 + 1) chunks need 1200 MiB" in str(info.value)


def _rank_main(rank, port, address, outdir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    dp = _pipeline(120).batch(3)
    out = {}
    for name, workers in (
        ("ray", sd.RayReadingService(2, resources={"CPU": 0}, address=address, **TRUSTED_KW)),
        ("processes", sd.MultiProcessingReadingService(2)),
    ):
        service = sd.SequentialReadingService(sd.DistributedReadingService(), workers)
        with sd.DataLoader2(dp, reading_service=service, seed=11) as loader:
            out[name] = list(loader)
    ray.shutdown()
    dist.destroy_process_group()
    with open(f"{outdir}/rank{rank}.json", "w") as f:
        json.dump(out, f)


@pytest.mark.usefixtures("no_actors_left")
def test_each_rank_runs_its_own_actors_as_the_process_service_would(tmp_path):
    import torch.multiprocessing as tmp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = ray.get_runtime_context().gcs_address
    tmp.start_processes(
        _rank_main, args=(port, address, str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["ray"] == r["processes"] for r in ranks)
    seen = sorted(x for r in ranks for batch in r["ray"] for x, _ in batch)
    assert seen == list(range(120))  # 4 global workers split it, once each


def test_a_new_actor_resumes_the_first_unfinished_pass_and_requeues_the_rest():
    replay = Replay(0, 2)  # worker 0 of 2 runs virtual workers 0 and 2 of 4
    run = (RUN, 1, 5, 0, True, 4, [(0, None, 0, False), (2, None, 0, False)], 2)
    then = (THEN, 2, 5, 1, 2, 4)
    replay.sent(run)
    replay.sent(then)
    assert replay.commands() == [run, then]  # nothing received: start over
    replay.received((DATA, 1, 0, [1, 2], "v0 after 2", False, []))
    replay.received((DATA, 1, 0, [3], "v0 after 3", False, []))
    replay.received((DATA, 1, 2, [9], "v2 after 9", False, []))
    replay.sent((CREDIT, 1, 1, 0))
    replay.sent((CREDIT, 1, 1, 2))
    # each lane from its last chunk, with its own credits (v2: one more)
    lanes = [(0, "v0 after 3", 0, False), (2, "v2 after 9", 0, False)]
    assert replay.commands() == [(RUN, 1, 5, 0, True, 4, lanes, 1), (CREDIT, 1, 1, 2), then]
    replay.received((DATA, 1, 0, [4], "v0 end", True, []))  # an ended lane stays ended
    lanes = [(2, "v2 after 9", 0, False)]
    assert replay.commands() == [(RUN, 1, 5, 0, True, 4, lanes, 2), then]
    replay.received((DATA, 1, 2, [], "v2 end", True, []))
    replay.received((DATA, 2, 2, [7], "epoch 1 v2 after 7", False, []))
    # the queued pass runs the worker's lanes afresh; v0 has sent nothing yet
    lanes = [(0, None, 0, False), (2, "epoch 1 v2 after 7", 0, False)]
    assert replay.commands() == [(RUN, 2, 5, 1, True, 4, lanes, 1), (CREDIT, 2, 1, 0)]
    resumed = (RUN, 3, 5, 1, False, 4, [(0, "saved", 4, True), (2, "saved", 1, False)], 2)
    replay.sent(resumed)  # a new pass drops the old ones
    assert replay.commands() == [resumed]
    replay.received((DATA, 2, 0, [8], "abandoned", False, []))  # an old pass's: ignored
    replay.received((ERROR, 3, 2, [], {"event": "raised"}, []))
    assert replay.commands() == []  # the trainer raises it: nothing to resume


def _two_nodes_main(outdir):
    """A head node (the trainer's) and a second node offering "reader": the
    actors run there, so chunks cross from one object store to the other.
    Then that node is removed mid-epoch and the replacements start on a
    spare node. One cluster for both: each costs seconds to start."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    doomed = cluster.add_node(num_cpus=2, resources={"reader": 2})
    ray.init(address=cluster.address)
    out = {}
    try:
        service = _ray(resources={"CPU": 1, "reader": 1})
        with sd.DataLoader2(_pipeline(), reading_service=service, seed=3) as loader:
            out["ray"] = list(loader)
            out["nodes"] = [ray.get(a.where.remote())["node"] for a in service.actors]
        dp = sd.IterableWrapper(range(6)).sharding_filter().map(big_array)
        with sd.DataLoader2(dp, reading_service=_ray(resources={"CPU": 1, "reader": 1})) as loader:
            arrays = list(loader)
        out["arrays"] = [[int(a[0]), int(a[-1]), a.nbytes, a.flags.writeable] for a in arrays]
        out["trainer"] = ray.get_runtime_context().get_node_id()

        service = _ray(resources={"CPU": 1, "reader": 1})
        with sd.DataLoader2(_pipeline(400, slow), reading_service=service, seed=7) as loader:
            it = iter(loader)
            got = list(islice(it, 60))
            cluster.add_node(num_cpus=2, resources={"reader": 2})
            cluster.remove_node(doomed)
            got += list(it)
            nodes = [ray.get(a.where.remote())["node"] for a in service.actors]
        out["lost_node"] = {"got": got, "lost": doomed.node_id, "nodes": nodes}
    finally:
        ray.shutdown()
        cluster.shutdown()
    with open(f"{outdir}/two_nodes.json", "w") as f:
        json.dump(out, f)


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """What ``_two_nodes_main`` saw, run in a spawned process: a cluster of
    its own needs a driver of its own."""
    import multiprocessing

    outdir = tmp_path_factory.mktemp("two-nodes")
    proc = multiprocessing.get_context("spawn").Process(target=_two_nodes_main, args=(str(outdir),))
    proc.start()
    proc.join(200)
    assert proc.exitcode == 0
    return json.loads((outdir / "two_nodes.json").read_text())


def test_actors_on_another_node_stream_through_its_object_store(two_nodes):
    expected, _ = _run(_pipeline(), sd.MultiProcessingReadingService(2), seed=3)
    assert two_nodes["ray"] == json.loads(json.dumps(expected))
    assert two_nodes["trainer"] not in two_nodes["nodes"]
    assert two_nodes["arrays"] == [[i, i, 1 << 20, False] for i in range(6)]


def test_actors_of_a_lost_node_are_replaced_and_the_stream_is_unchanged(two_nodes):
    expected, _ = _run(_pipeline(400, slow), sd.MultiProcessingReadingService(2))
    lost_node = two_nodes["lost_node"]
    assert lost_node["got"] == json.loads(json.dumps(expected))
    assert lost_node["lost"] not in lost_node["nodes"]

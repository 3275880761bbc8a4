"""MultiProcessingReadingService with real worker processes: every element
exactly once, deterministic order, exact resume, seeds, placement, transport."""

from __future__ import annotations

import gc
import os
import random
import warnings
from functools import partial

import numpy as np
import pytest
import torch

import streamdag as sd
from streamdag.reading_service import processes, worker
from streamdag.testing import assert_resumes, run_epoch
from tests.support import rs_functions
from tests.support.leaks import no_leaks  # noqa: F401 - fixture
from tests.support.rs_functions import square, with_pid

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaks")]

MP = sd.MultiProcessingReadingService


def add_global_random(x):
    return (x, random.random(), float(np.random.rand()), float(torch.rand(1)))


def tag_worker(x):
    info = sd.get_worker_info()
    return (x, info.worker_id, info.num_workers)


def sharded(n=40):
    return sd.IterableWrapper(range(n)).shuffle(buffer_size=8).sharding_filter().map(square)


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_each_context_yields_every_element_once_in_a_deterministic_order(context):
    """Same seed -> identical stream; the union is exactly the input."""
    factory = partial(MP, 2, multiprocessing_context=context, persistent_workers=True)
    with sd.DataLoader2(sharded(), reading_service=factory(), seed=3) as loader:
        first, second = list(loader), list(loader)
    assert sorted(first) == sorted(second) == [i * i for i in range(40)]
    assert first != second  # a new epoch, a new order
    assert run_epoch(sharded(), seed=3, reading_service=factory) == first


def test_order_is_round_robin_over_workers():
    """in_order: element k comes from worker k % num_workers while all run."""
    dp = sd.IterableWrapper(range(12)).sharding_filter().map(tag_worker)
    out = run_epoch(dp, reading_service=partial(MP, 3))
    assert [x for x, _, _ in out] == list(range(12))
    assert [w for _, w, _ in out] == [0, 1, 2] * 4
    assert {n for _, _, n in out} == {3}


def test_uneven_workers_drop_out_of_the_rotation():
    dp = sd.IterableWrapper(range(7)).sharding_filter()
    assert run_epoch(dp, reading_service=partial(MP, 3)) == list(range(7))


def test_out_of_order_mode_yields_every_element_once():
    out = run_epoch(sharded(200), reading_service=partial(MP, 2, in_order=False))
    assert sorted(out) == [i * i for i in range(200)]


@pytest.mark.parametrize("persistent", [False, True])
def test_resume_mid_epoch_equals_the_uninterrupted_run(persistent):
    dp = sharded(60).shuffle(buffer_size=5).batch(4)
    full = assert_resumes(
        dp,
        stops=[0, 1, 4, 7, 14, 15],
        seed=5,
        reading_service=partial(MP, 2, persistent_workers=persistent),
    )
    assert sorted(x for b in full for x in b) == [i * i for i in range(60)]


def test_resume_out_of_order_keeps_every_element_once():
    """Without in_order the global order differs, but nothing is lost or repeated."""
    from streamdag.testing import resumed_epoch

    dp = sharded(300)
    prefix, rest = resumed_epoch(dp, 77, seed=1, reading_service=partial(MP, 2, in_order=False))
    assert sorted(prefix + rest) == [i * i for i in range(300)]


@pytest.mark.filterwarnings("ignore:.*without a sharding_filter")
def test_resume_of_an_unsharded_graph_with_a_different_number_of_workers_is_a_clear_error():
    """Without a sharding_filter every worker reads everything: another
    number of workers would change the epoch, so elastic resume refuses."""
    import msgpack

    dp = sd.IterableWrapper(range(40)).map(square)
    with sd.DataLoader2(dp, reading_service=MP(2), seed=0) as loader:
        it = iter(loader)
        next(it)
        state = msgpack.unpackb(msgpack.packb(loader.state_dict()))
    with sd.DataLoader2(dp, reading_service=MP(3), seed=0) as loader:
        loader.load_state_dict(state)
        with pytest.raises(
            sd.ResumeError, match="num_workers=2.*without a sharding_filter.*set_epoch"
        ):
            list(loader)


def test_state_between_epochs_loads_into_any_number_of_workers():
    dp = sharded()
    with sd.DataLoader2(dp, reading_service=MP(2), seed=0) as loader:
        list(loader)
        state = loader.state_dict()
    with sd.DataLoader2(dp, reading_service=MP(3), seed=0) as loader:
        loader.load_state_dict(state)
        assert sorted(loader) == [i * i for i in range(40)]


def test_main_process_part_runs_over_the_merged_stream():
    """Nodes after main_process() run once, in the main process."""
    dp = (
        sd.IterableWrapper(range(30))
        .sharding_filter()
        .map(square)
        .main_process()
        .map(with_pid)
        .shuffle(buffer_size=6)
        .batch(5)
    )
    full = assert_resumes(dp, stops=[0, 2, 3], reading_service=partial(MP, 2))
    assert {pid for batch in full for _, pid in batch} == {os.getpid()}
    assert sorted(x for batch in full for x, _ in batch) == [i * i for i in range(30)]


class _MainOnly(sd.datapipes.RuntimeNode):
    @staticmethod
    def validate(params):
        pass

    def iterator(self):
        return map(with_pid, self.inputs[0].iterator())


sd.register_op("test_main_only", replace=True, placement="main")(_MainOnly)


def test_ops_with_main_placement_move_to_the_main_process_without_a_marker():
    src = sd.IterableWrapper(range(10)).sharding_filter().map(with_pid)
    dp = sd.DataPipe(sd.datapipes.make_node("test_main_only", {}, [src.node]))
    out = run_epoch(dp, reading_service=partial(MP, 2))
    assert {inner_pid for (_, inner_pid), _ in out}.isdisjoint({os.getpid()})
    assert {outer for _, outer in out} == {os.getpid()}


class _MainAhead(_MainOnly):
    inputs_seen: list = []

    def iterator(self):
        self.inputs_seen.append((self.inputs[0].spec, self.inputs[0].inputs[0].spec.op))
        return super().iterator()


sd.register_op("test_main_ahead", replace=True, placement="main", receive_ahead=3)(_MainAhead)


@pytest.mark.parametrize("service", [partial(MP, 2), partial(sd.MultiThreadingReadingService, 2)])
def test_a_main_op_with_receive_ahead_gets_the_stream_through_a_prefetch_thread(service):
    src = sd.IterableWrapper(range(24)).sharding_filter().map(square).batch(4)
    dp = sd.DataPipe(sd.datapipes.make_node("test_main_ahead", {}, [src.node]))
    _MainAhead.inputs_seen.clear()
    full = assert_resumes(dp, stops=[0, 2, 5], reading_service=service)
    assert sorted(x for batch, _ in full for x in batch) == [i * i for i in range(24)]
    spec, upstream = _MainAhead.inputs_seen[0]
    assert (spec.op, spec.name, spec.params["buffer_size"], upstream) == (
        "prefetch",
        "receive ahead",
        3,
        "_worker_stream",
    )


def test_main_part_must_start_at_one_point():
    a = sd.IterableWrapper(range(4)).main_process()
    b = sd.IterableWrapper(range(4)).main_process()
    with pytest.raises(sd.ParamError, match="one point"):
        sd.DataLoader2(a.zip(b), reading_service=MP(2))


def test_main_process_sources_outside_the_worker_part_run_in_main():
    left = sd.IterableWrapper(range(6)).sharding_filter().main_process()
    dp = left.zip(sd.IterableWrapper(range(100, 106)))
    assert run_epoch(dp, reading_service=partial(MP, 2)) == [(i, 100 + i) for i in range(6)]


def test_no_workers_runs_in_process_with_the_same_results():
    dp = sd.IterableWrapper(range(20)).shuffle(buffer_size=4).batch(3)
    assert assert_resumes(dp, stops=[0, 3], reading_service=partial(MP, 0)) == run_epoch(dp)


def test_missing_sharding_filter_warns_once():
    dp = sd.IterableWrapper(range(4), name="numbers").map(square)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sd.DataLoader2(dp, reading_service=MP(2)) as loader:
            out = list(loader) + list(loader)
    sharding = [w for w in caught if issubclass(w.category, sd.ShardingWarning)]
    assert len(sharding) == 1
    assert "'numbers'" in str(sharding[0].message) and "sharding_filter" in str(sharding[0].message)
    assert sorted(out) == sorted([0, 1, 4, 9] * 4)


def test_one_unsharded_branch_is_named_in_the_warning():
    a = sd.IterableWrapper(range(4), name="a").sharding_filter()
    b = sd.IterableWrapper(range(4), name="b")
    with pytest.warns(sd.ShardingWarning, match="'b'") as caught:
        sd.DataLoader2(a.zip(b), reading_service=MP(2)).shutdown()
    assert "'a'" not in str(caught[0].message)


def test_several_sharding_points_split_each_input():
    a = sd.IterableWrapper(range(10)).sharding_filter()
    b = sd.IterableWrapper(range(100, 110)).sharding_filter()
    assert sorted(run_epoch(a.zip(b), reading_service=partial(MP, 2))) == [
        (i, 100 + i) for i in range(10)
    ]


def test_seeds_upstream_agree_and_downstream_differ_per_worker():
    """The pre-sharding shuffle gives one order (split without loss); global
    RNGs are seeded per worker, reproducibly, and differently each epoch."""
    dp = (
        sd.IterableWrapper(range(16))
        .shuffle(buffer_size=16)
        .sharding_filter()
        .map(add_global_random)
    )
    factory = partial(MP, 2, persistent_workers=True)
    with sd.DataLoader2(dp, reading_service=factory(), seed=11) as loader:
        epoch0, epoch1 = list(loader), list(loader)
    assert sorted(x for x, *_ in epoch0) == list(range(16))
    draws = [r for _, *r in epoch0]
    assert len({r[0] for r in draws}) == 16  # workers draw different Python random numbers
    assert draws[0] != draws[1]
    assert {r[0] for _, *r in epoch1}.isdisjoint({r[0] for r in draws})
    assert run_epoch(dp, seed=11, reading_service=factory) == epoch0


def test_worker_init_fn_runs_once_per_worker():
    dp = sd.IterableWrapper(range(8)).sharding_filter().map(_init_value)
    svc = MP(2, worker_init_fn=_set_init_value, persistent_workers=True)
    with sd.DataLoader2(dp, reading_service=svc) as loader:
        out = list(loader) + list(loader)
    assert sorted({v for _, v in out}) == [100, 101]


_INIT = {}


def _set_init_value(worker_id):
    _INIT["value"] = 100 + worker_id


def _init_value(x):
    return (x, _INIT.get("value"))


def test_tensors_and_arrays_cross_through_shared_memory():
    dp = sd.IterableWrapper(range(6)).sharding_filter().map(_big_sample)
    out = run_epoch(dp, reading_service=partial(MP, 2))
    for i, (tensor, array, small) in enumerate(out):
        assert tensor.shape == (64, 3, 32, 32) and int(tensor[0, 0, 0, 0]) == i
        assert array.shape == (300, 100) and array.dtype == np.float32 and array[0, 0] == i
        assert torch.equal(small, torch.tensor([i, i]))


def _big_sample(i):
    return (
        torch.full((64, 3, 32, 32), i, dtype=torch.uint8),
        np.full((300, 100), i, dtype=np.float32),
        torch.tensor([i, i]),
    )


def test_reused_shared_memory_never_overwrites_what_the_loop_keeps():
    """Workers write into segments the loop dropped; kept ones stay intact
    over two epochs (every 7th sample kept, a slice of every 5th)."""
    dp = sd.IterableWrapper(range(60)).sharding_filter().map(_big_sample)
    kept = []
    with sd.DataLoader2(dp, reading_service=MP(2, persistent_workers=True)) as loader:
        for _ in range(2):
            for tensor, array, _small in loader:
                i = int(array[0, 0])
                assert int(tensor.min()) == int(tensor.max()) == i
                if i % 7 == 0:
                    kept.append((i, tensor, array))
                elif i % 5 == 0:
                    kept.append((i, tensor[3, 1], array[7:9]))
    assert [i for i, _, _ in kept] == [i for i in range(60) if i % 7 == 0 or i % 5 == 0] * 2
    for i, tensor, array in kept:
        assert (tensor == i).all() and (array == i).all()


def test_small_elements_travel_in_chunks(monkeypatch):
    """Far fewer messages than elements (no queue put per element)."""
    counted = []
    original = processes.ProcessPool.recv

    def counting(self, timeout):
        messages = original(self, timeout)
        counted.extend(m for m in messages if m[0] == worker.DATA)
        return messages

    monkeypatch.setattr(processes.ProcessPool, "recv", counting)
    out = run_epoch(
        sd.IterableWrapper(range(5000)).sharding_filter(), reading_service=partial(MP, 2)
    )
    assert out == list(range(5000))
    assert len(counted) <= 5000 // 50


def test_a_chunk_that_arrives_early_is_unpickled_when_its_turn_comes():
    """In order, worker 1's chunk arrives while the loop waits for worker 0's
    first element; it waits as bytes (decoded objects that wait are traversed
    by Python's collector again and again), so only element 0 is unpickled
    when it is yielded. The stream is unchanged."""
    rs_functions.UNPICKLED.clear()
    dp = sd.IterableWrapper(range(6)).sharding_filter().map(rs_functions.counted_after_a_pause_at_0)
    with sd.DataLoader2(dp, reading_service=MP(2)) as loader:
        it = iter(loader)
        assert next(it).value == 0
        assert rs_functions.UNPICKLED == [0]
        assert [e.value for e in it] == [1, 2, 3, 4, 5]
    assert sorted(rs_functions.UNPICKLED) == list(range(6))


def test_spawn_names_the_node_whose_function_cannot_be_pickled():
    dp = sd.IterableWrapper(range(4)).sharding_filter().map(lambda x: x, name="inline")
    with sd.DataLoader2(dp, reading_service=MP(2, multiprocessing_context="spawn")) as loader:
        with pytest.raises(sd.ParamError, match="map node 'inline'.*module-level"):
            list(loader)


def test_lambdas_work_with_fork():
    dp = sd.IterableWrapper(range(4)).sharding_filter().map(lambda x: -x)
    assert run_epoch(dp, reading_service=partial(MP, 2)) == [0, -1, -2, -3]


def test_garbage_collection_is_paused_only_while_workers_fork():
    """A forked worker freezes what it inherited, then collects its own garbage."""
    dp = sd.IterableWrapper(range(4)).sharding_filter().map(lambda x: (x, gc.isenabled()))
    assert run_epoch(dp, reading_service=partial(MP, 2)) == [(i, True) for i in range(4)]
    assert gc.isenabled()


def test_bad_parameters_fail_at_construction():
    with pytest.raises(sd.ParamError):
        MP(-1)
    with pytest.raises(sd.ParamError):
        MP(2, prefetch_factor=0)
    with pytest.raises(sd.ParamError):
        MP(2, multiprocessing_context="threads")


@pytest.mark.parametrize(
    "service",
    [partial(MP, 2, persistent_workers=True), partial(sd.MultiThreadingReadingService, 2)],
)
def test_cycle_in_the_main_process_resumes_in_every_pass(service):
    """Each pass re-runs the workers' graphs (new shuffle order); a resume in
    the second pass restores the end of the first and starts the next."""
    dp = (
        sd.IterableWrapper(range(10))
        .shuffle(buffer_size=4)
        .sharding_filter()
        .map(square)
        .main_process()
        .cycle(2)
    )
    full = assert_resumes(dp, stops=[0, 5, 9, 10, 11, 19], seed=1, reading_service=service)
    assert sorted(full[:10]) == [i * i for i in range(10)]
    assert full[:10] != full[10:]


def test_second_pass_after_sharding_splits_exactly():
    dp = sd.IterableWrapper(range(10)).sharding_filter().main_process().cycle(2)
    full = run_epoch(dp, reading_service=partial(MP, 2))
    assert sorted(full[10:]) == list(range(10))

"""DistributedReadingService over torch.distributed (gloo, 2 ranks on
127.0.0.1, started here), alone and composed with 2 worker processes per rank.
All scenarios run in one launch of the ranks (starting them costs seconds);
each rank writes what it saw and the assertions run here."""

from __future__ import annotations

import json
import random
import socket
from itertools import islice

import pytest

import streamdag as sd
from tests.support.leaks import no_leaks  # noqa: F401 - fixture
from tests.support.rs_functions import fail_on_7, slow_start

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_leaks")]
WORLD = 2
N = 41  # 4 global workers: ranks get 21 and 20 elements


def tag_random(x):
    return [x, random.random()]


def _pipeline(n=N):
    return sd.IterableWrapper(range(n)).shuffle(buffer_size=n).sharding_filter()


def _services(even=True, sync_every=1, workers=2, **mp_kwargs):
    dist = sd.DistributedReadingService(even_batches=even, sync_every=sync_every)
    if workers == 0:
        return dist
    return sd.SequentialReadingService(dist, sd.MultiProcessingReadingService(workers,
                                                                              **mp_kwargs))


def _run(dp, service, seed=None, stop=None):
    with sd.DataLoader2(dp, reading_service=service, seed=seed) as loader:
        items = list(islice(loader, stop)) if stop is not None else list(loader)
        return items, loader.state_dict()


def _rank_main(rank, port, outdir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    out = {}
    # no seed given: each rank draws its own, rank 0's is broadcast
    out["random_seed"], state = _run(_pipeline().map(tag_random), _services(even=False))
    out["seed_used"] = state["seed"]
    out["even"], _ = _run(_pipeline(), _services(), seed=1)
    out["uneven"], _ = _run(_pipeline(), _services(even=False), seed=1)
    out["in_process"], _ = _run(_pipeline(), _services(even=False, workers=0), seed=1)
    full, _ = _run(_pipeline().batch(2), _services(sync_every=3), seed=4)
    prefix, state = _run(_pipeline().batch(2), _services(sync_every=3), seed=4, stop=4)
    with sd.DataLoader2(_pipeline().batch(2), reading_service=_services(sync_every=3)) as loader:
        loader.load_state_dict(json.loads(json.dumps(state)))
        rest = list(loader)
    out["resume"] = [full, prefix, rest]
    out["epoch_end"] = _resume_at_the_end_of_an_epoch()
    with sd.DataLoader2(_pipeline(), reading_service=_services(even=False), seed=1,
                        stats=True) as loader:
        list(loader)
        stats = loader.stats(all_ranks=True)
        shard = next(n for n in stats.nodes if n.op == "sharding_filter")
        out["stats"] = [stats.nodes[0].elements_out, stats.nodes[0].copies, shard.elements_out,
                        stats.processes]
    try:
        _run(sd.IterableWrapper(range(40)).sharding_filter().map(fail_on_7), _services(), seed=0)
    except Exception as exc:  # noqa: BLE001 - recorded for the assertions
        out["error"] = f"{type(exc).__name__}: {exc}"
    dist.destroy_process_group()
    with open(f"{outdir}/rank{rank}.json", "w") as f:
        json.dump(out, f)


def _resume_at_the_end_of_an_epoch():
    """Three epochs uninterrupted; and the state saved after the last element of
    epoch 0 (before StopIteration), loaded and run for three epochs, in workers
    slow to start (so that they read the next epochs' commands together)."""
    def loader(**mp_kwargs):
        service = _services(persistent_workers=True, **mp_kwargs)
        return sd.DataLoader2(_pipeline(), reading_service=service, seed=2)

    with loader() as uninterrupted:
        epochs = [list(uninterrupted) for _ in range(3)]
    with loader() as first:
        last = list(islice(first, len(epochs[0])))
        state = json.loads(json.dumps(first.state_dict()))
    with loader(worker_init_fn=slow_start) as resumed:
        resumed.load_state_dict(state)
        return [epochs, last, [list(resumed) for _ in range(3)]]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    import torch.multiprocessing as tmp

    outdir = tmp_path_factory.mktemp("ranks")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp.start_processes(_rank_main, args=(port, str(outdir)), nprocs=WORLD, join=True,
                        start_method="spawn")
    return [json.loads((outdir / f"rank{r}.json").read_text()) for r in range(WORLD)]


def test_rank_0_seed_is_broadcast(ranks):
    assert ranks[0]["seed_used"] == ranks[1]["seed_used"]


def test_every_element_exactly_once_across_ranks_and_workers(ranks):
    """Upstream shuffle agrees on every rank and worker, so the split is exact."""
    union = [x for r in ranks for x, _ in r["random_seed"]]
    assert sorted(union) == list(range(N))
    assert sorted(ranks[0]["in_process"] + ranks[1]["in_process"]) == list(range(N))


def test_global_rngs_differ_per_rank_and_worker(ranks):
    draws = [v for r in ranks for _, v in r["random_seed"]]
    assert len(set(draws)) == len(draws)


def test_every_rank_yields_the_same_count_by_default(ranks):
    assert len(ranks[0]["even"]) == len(ranks[1]["even"]) == N // 2
    assert sorted(len(r["uneven"]) for r in ranks) == [N // 2, N // 2 + 1]
    assert set(ranks[0]["even"]).isdisjoint(ranks[1]["even"])


def test_resume_on_every_rank_equals_the_uninterrupted_run(ranks):
    for r in ranks:
        full, prefix, rest = r["resume"]
        assert prefix == full[:4] and prefix + rest == full


def test_a_state_saved_after_the_last_element_resumes_into_the_next_epochs(ranks):
    """With persistent workers on each rank: the resumed epoch yields nothing and
    the next two are those of the uninterrupted run."""
    for r in ranks:
        epochs, last, resumed = r["epoch_end"]
        assert last == epochs[0] and len(last) == N // 2
        assert resumed == [[], epochs[1], epochs[2]]


def test_stats_sum_over_every_rank_and_worker(ranks):
    """4 global workers each read all 41 elements and keep their shard; the
    totals (2 ranks x (1 main + 2 worker processes)) are the same on both ranks."""
    assert ranks[0]["stats"] == ranks[1]["stats"] == [4 * N, 4, N, 6]


def test_a_data_error_on_one_rank_stops_all_ranks_instead_of_hanging(ranks):
    errors = sorted(r["error"] for r in ranks)
    assert errors[0].startswith("RuntimeError") and "another rank" in errors[0]
    assert errors[1].startswith("WorkerError") and "bad element 7" in errors[1]


def test_needs_an_initialized_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        sd.DataLoader2(_pipeline(), reading_service=sd.DistributedReadingService())


def test_sequential_accepts_one_distributed_and_one_executor():
    with pytest.raises(sd.ParamError):
        sd.SequentialReadingService(sd.MultiProcessingReadingService(2),
                                    sd.MultiThreadingReadingService(2))

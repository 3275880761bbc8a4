"""DistributedReadingService over torch.distributed (gloo, 2 ranks on
127.0.0.1, started here), alone and composed with 2 worker processes per rank.
All scenarios run in one launch of the ranks (starting them costs seconds);
each rank writes what it saw and the assertions run here."""

from __future__ import annotations

import json
import random
import socket
import warnings
from itertools import islice

import pytest

import streamdag as sd
from tests.support.leaks import no_leaks  # noqa: F401 - fixture
from tests.support.rs_functions import fail_on_7, slow_start

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120), pytest.mark.usefixtures("no_leaks")]
WORLD = 2
N = 41  # 4 global workers: ranks get 21 and 20 elements
FILE_SIZES = [100, 200, 50, 300, 220]  # 870 samples; 4 global workers get 3 files and 2
STOPS = (3, 5, 6, 12, 24)  # the short rank's own 5 elements end at 5: the rest are repeats


def tag_random(x):
    return [x, random.random()]


def repeat_evens(x):
    """In process over 2 ranks: rank 0 (the even numbers) gets 25 elements, rank 1 gets 5."""
    return [x] * 5 if x % 2 == 0 else [x]


def _pipeline(n=N):
    return sd.IterableWrapper(range(n)).shuffle(buffer_size=n).sharding_filter()


def _samples(datadir):
    """One sample per line of 5 uneven jsonl files, split by file."""
    return (
        sd.FileLister(datadir, masks="*.jsonl")
        .shuffle()
        .sharding_filter()
        .open_files()
        .parse_jsonl()
    )


def _services(even=True, sync_every=1, workers=2, **mp_kwargs):
    dist = sd.DistributedReadingService(even_batches=even, sync_every=sync_every)
    if workers == 0:
        return dist
    return sd.SequentialReadingService(dist, sd.MultiProcessingReadingService(workers, **mp_kwargs))


def _run(dp, service, seed=None, stop=None):
    with sd.DataLoader2(dp, reading_service=service, seed=seed) as loader:
        items = list(islice(loader, stop)) if stop is not None else list(loader)
        return items, loader.state_dict()


def _resumed(dp, services, seed, stop):
    """The first ``stop`` elements, and the rest from a new loader given the
    state saved there (through JSON)."""
    prefix, state = _run(dp, services(), seed=seed, stop=stop)
    with sd.DataLoader2(dp, reading_service=services()) as loader:
        loader.load_state_dict(json.loads(json.dumps(state)))
        return prefix, list(loader)


def _epochs(dp, service, epochs=2):
    """Each epoch's elements with the UnevenShardsWarnings it raised, and the
    counts of every rank's statistics (a collective)."""
    runs = []
    with sd.DataLoader2(dp, reading_service=service, seed=5, stats=True) as loader:
        for _ in range(epochs):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                items = list(loader)
            runs.append(
                [
                    items,
                    [
                        str(w.message)
                        for w in caught
                        if issubclass(w.category, sd.UnevenShardsWarning)
                    ],
                ]
            )
        stats = loader.stats(all_ranks=True)
    return {"epochs": runs, "stats": [stats.even_batches_dropped, stats.even_batches_repeated]}


def _even_batches_scenarios(out, datadir):
    out["drop"] = _epochs(_samples(datadir), _services())
    out["pad"] = _epochs(_samples(datadir).batch(16), _services("pad", sync_every=3))
    full = out["pad"]["epochs"][0][0]
    stop = len(full) - 3  # both ranks yield as many batches: the short one is repeating
    prefix, rest = _resumed(
        _samples(datadir).batch(16), lambda: _services("pad", sync_every=3), seed=5, stop=stop
    )
    out["pad_resume"] = [stop, prefix, rest]
    cycled = sd.IterableWrapper(range(10)).sharding_filter().flatmap(repeat_evens)
    for sync_every in (1, 2):

        def services(sync_every=sync_every):
            return _services("pad", sync_every=sync_every, workers=0)

        full, _ = _run(cycled, services(), seed=0)
        out[f"pad_cycle_{sync_every}"] = [
            full,
            [[stop, *_resumed(cycled, services, 0, stop)] for stop in STOPS],
        ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        endless = sd.IterableWrapper(range(1)).sharding_filter().cycle()  # rank 1's is empty
        items, _ = _run(endless, _services(workers=0), seed=0)
    out["endless"] = [
        items,
        [str(w.message) for w in caught if issubclass(w.category, sd.UnevenShardsWarning)],
    ]
    try:
        _run(sd.IterableWrapper(range(1)).sharding_filter(), _services("pad", workers=0), seed=0)
    except Exception as exc:  # noqa: BLE001 - recorded for the assertions
        out["pad_empty"] = f"{type(exc).__name__}: {exc}"


def _rank_main(rank, port, outdir, datadir):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
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
    with sd.DataLoader2(
        _pipeline(), reading_service=_services(even=False), seed=1, stats=True
    ) as loader:
        list(loader)
        stats = loader.stats(all_ranks=True)
        shard = next(n for n in stats.nodes if n.op == "sharding_filter")
        out["stats"] = [
            stats.nodes[0].elements_out,
            stats.nodes[0].copies,
            shard.elements_out,
            stats.processes,
        ]
    try:
        _run(sd.IterableWrapper(range(40)).sharding_filter().map(fail_on_7), _services(), seed=0)
    except Exception as exc:  # noqa: BLE001 - recorded for the assertions
        out["error"] = f"{type(exc).__name__}: {exc}"
    _even_batches_scenarios(out, datadir)
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
    datadir = tmp_path_factory.mktemp("jsonl")
    start = 0
    for i, size in enumerate(FILE_SIZES):
        lines = "".join(f"{n}\n" for n in range(start, start + size))
        (datadir / f"part-{i}.jsonl").write_text(lines)
        start += size
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp.start_processes(
        _rank_main,
        args=(port, str(outdir), str(datadir)),
        nprocs=WORLD,
        join=True,
        start_method="spawn",
    )
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


def test_drop_counts_and_warns_exactly_what_it_drops(ranks):
    """Uneven files: the longer rank drops its surplus, says how much, and
    statistics count it; nothing else is lost or duplicated."""
    total, lost_in_all = sum(FILE_SIZES), 0
    for epoch in range(2):
        (got0, warned0), (got1, warned1) = (r["drop"]["epochs"][epoch] for r in ranks)
        assert len(got0) == len(got1)
        assert not set(got0) & set(got1) and len(set(got0 + got1)) == len(got0 + got1)
        lost = total - len(got0) - len(got1)
        assert lost > 0  # the split is uneven whatever the file order
        warned = warned0 + warned1
        assert len(warned) == 1 and f"dropped {lost} elements" in warned[0]
        assert f"epoch {epoch}" in warned[0] and "even_batches='pad'" in warned[0]
        lost_in_all += lost
    assert ranks[0]["drop"]["stats"] == ranks[1]["drop"]["stats"] == [lost_in_all, 0]


def test_drop_does_not_read_an_endless_rest_to_count_it(ranks):
    """Rank 0 cycles its one element forever, rank 1 has none: the epoch is
    empty everywhere and rank 0 says it dropped at least 1, without hanging."""
    assert ranks[0]["endless"][0] == ranks[1]["endless"][0] == []
    assert ranks[1]["endless"][1] == []
    [warned] = ranks[0]["endless"][1]
    assert "rank 0 dropped at least 1 element (" in warned and "cycle()" in warned


def test_pad_yields_every_sample_and_equal_batch_counts(ranks):
    total, repeats = sum(FILE_SIZES), 0
    for epoch in range(2):
        (got0, warned0), (got1, warned1) = (r["pad"]["epochs"][epoch] for r in ranks)
        assert len(got0) == len(got1)
        samples = [x for batch in got0 + got1 for x in batch]
        assert sorted(set(samples)) == list(range(total))
        own = [{tuple(b) for b in got} for got in (got0, got1)]
        assert not own[0] & own[1]  # each rank repeats its own batches only
        repeats += len(got0) + len(got1) - len(own[0]) - len(own[1])
        assert warned0 == warned1 == []
    assert repeats > 0
    assert ranks[0]["pad"]["stats"] == ranks[1]["pad"]["stats"] == [0, repeats]


def test_pad_resumes_on_every_rank_in_the_repeats(ranks):
    for r in ranks:
        stop, prefix, rest = r["pad_resume"]
        full = r["pad"]["epochs"][0][0]
        assert prefix == full[:stop] and prefix + rest == full
    own = [len({tuple(b) for b in r["pad"]["epochs"][0][0]}) for r in ranks]
    assert min(own) < ranks[0]["pad_resume"][0]  # the short rank stopped in its repeats


@pytest.mark.parametrize("sync_every", [1, 2])
def test_pad_cycles_a_short_rank_and_resumes_anywhere(ranks, sync_every):
    """Rank 1 has 5 elements, rank 0 25: rank 1 yields its own 5 five times."""
    fulls = [r[f"pad_cycle_{sync_every}"][0] for r in ranks]
    assert fulls[0] == [x for x in range(0, 10, 2) for _ in range(5)]
    assert fulls[1] == [1, 3, 5, 7, 9] * 5
    for r, full in zip(ranks, fulls, strict=True):
        for stop, prefix, rest in r[f"pad_cycle_{sync_every}"][1]:
            assert prefix == full[:stop] and prefix + rest == full, f"stop {stop}"


def test_pad_fails_on_every_rank_when_a_rank_has_nothing_to_repeat(ranks):
    """One element over 2 ranks: rank 1 has none of its own to repeat."""
    assert (
        ranks[0]["pad_empty"].startswith("RuntimeError") and "another rank" in ranks[0]["pad_empty"]
    )
    assert ranks[1]["pad_empty"].startswith("RuntimeError")
    assert "rank 1" in ranks[1]["pad_empty"] and "nothing to repeat" in ranks[1]["pad_empty"]


def test_even_batches_takes_drop_pad_or_false():
    for mode in (True, False, "drop", "pad"):
        sd.DistributedReadingService(even_batches=mode)
    with pytest.raises(sd.ParamError, match="even_batches"):
        sd.DistributedReadingService(even_batches="repeat")


def test_needs_an_initialized_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        sd.DataLoader2(_pipeline(), reading_service=sd.DistributedReadingService())


def test_sequential_accepts_one_distributed_and_one_executor():
    with pytest.raises(sd.ParamError):
        sd.SequentialReadingService(
            sd.MultiProcessingReadingService(2), sd.MultiThreadingReadingService(2)
        )

"""Elastic resume: a mid-epoch state loads into another number of workers
and the rest of the epoch yields every remaining sample exactly once. With
virtual workers fixed, each virtual worker's stream (and so the in-order
global order) does not depend on how many workers run them."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import streamdag as sd
from streamdag.testing import assert_resumes, run_epoch
from streamdag.testing.loaders import plain, saved, take
from tests.support.readers import samples_tar
from tests.support.rs_functions import fail_on_7, square

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

MP, MT = sd.MultiProcessingReadingService, sd.MultiThreadingReadingService
TAR_SHARDS, SAMPLES_PER_TAR, JSONL_FILES, LINES_PER_FILE, READER_COUNT = 7, 5, 5, 4, 23


@sd.reader("test_elastic.numbers", shardable=True)
def numbers(ctx: sd.ReaderContext, count: int) -> Iterator[int]:
    """A reader without random access that takes its own share."""
    yield from range(ctx.shard_index, count, ctx.num_shards)


def tar_sample(sample: dict) -> tuple[str, str]:
    return ("tar", sample[".txt"])


def json_sample(row: dict) -> tuple[str, int]:
    return ("json", row["i"])


def reader_sample(n: int) -> tuple[str, int]:
    return ("reader", n)


def first_of(pair: tuple) -> object:
    return pair[0]


def with_worker(x: int) -> tuple[int, int, int]:
    info = sd.get_worker_info()
    return (x, info.worker_id, info.num_workers)


def with_global_random(x: int) -> tuple[int, float, float, float]:
    return (x, random.random(), float(np.random.rand()), float(torch.rand(1)))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_data(tmp_path_factory.mktemp("elastic"))


def write_data(root: Path) -> Path:
    """7 tar shards of 5 text samples and 5 jsonl files of 4 rows under ``root``."""
    (root / "tar").mkdir()
    (root / "jsonl").mkdir()
    for shard in range(TAR_SHARDS):
        samples_tar(root / "tar" / f"{shard:03d}.tar", SAMPLES_PER_TAR, shard * SAMPLES_PER_TAR)
    for f in range(JSONL_FILES):
        rows = (json.dumps({"i": f * LINES_PER_FILE + i}) for i in range(LINES_PER_FILE))
        (root / "jsonl" / f"{f:03d}.jsonl").write_text("\n".join(rows) + "\n")
    return root


def tar_branch(root: Path) -> sd.DataPipe:
    return (
        sd.FileLister(str(root / "tar"), "*.tar")
        .shuffle()
        .sharding_filter()
        .open_files("b")
        .load_from_tar()
        .webdataset()
        .decode()
        .map(tar_sample)
    )


def jsonl_branch(root: Path) -> sd.DataPipe:
    lister = sd.FileLister(str(root / "jsonl"), "*.jsonl").sharding_filter()
    return lister.open_files().parse_jsonl().map(json_sample)


def reader_branch(root: Path) -> sd.DataPipe:
    return numbers(count=READER_COUNT).map(reader_sample)


SOURCES = {
    "tar": tar_branch,
    "jsonl": jsonl_branch,
    "reader": reader_branch,
    "mux": lambda root: tar_branch(root).mux_longest(jsonl_branch(root), reader_branch(root)),
}
STEPS = st.lists(st.sampled_from(["shuffle", "forkzip", "prefetch"]), max_size=3)


def build(root: Path, source: str, steps: list[str], size: int, batch: int) -> sd.DataPipe:
    dp = SOURCES[source](root)
    for step in steps:
        if step == "shuffle":
            dp = dp.shuffle(buffer_size=size)
        elif step == "forkzip":
            a, b = dp.fork(2, buffer_size=size + 8)
            dp = a.zip(b).map(first_of)
        else:
            dp = dp.prefetch(size)
    return dp.batch(batch) if batch > 1 else dp


def flat(elements: list) -> list:
    """The samples of an epoch, batches opened, in a canonical order."""
    out = []
    for element in plain(elements):
        out.extend(element if isinstance(element, list) else [element])
    return sorted(out)


@settings(max_examples=60, deadline=None)
@given(
    source=st.sampled_from(sorted(SOURCES)),
    steps=STEPS,
    size=st.integers(1, 9),
    batch=st.integers(1, 4),
    workers=st.integers(1, 4),
    resume_workers=st.integers(1, 4),
    extra_virtual=st.sampled_from([None, 0, 1, 3]),
    stop_frac=st.floats(0, 1),
    seed=st.integers(0, 2**31),
)
def test_resumed_on_any_number_of_workers_yields_the_rest_of_the_epoch_once(
    data, source, steps, size, batch, workers, resume_workers, extra_virtual, stop_frac, seed
):
    """Stopped under W workers (V virtual, or today's format without V),
    resumed under W': prefix + rest is the uninterrupted run under W, in
    order, and holds each sample of one epoch exactly once."""
    dp = build(data, source, steps, size, batch)
    virtual = None if extra_virtual is None else workers + extra_virtual
    full = run_epoch(dp, seed, reading_service=partial(MT, workers, virtual_workers=virtual))
    stop = int(stop_frac * len(full))
    with sd.DataLoader2(dp, MT(workers, virtual_workers=virtual), seed=seed) as first:
        prefix = take(iter(first), stop)
        state = saved(first.state_dict())
    with sd.DataLoader2(dp, MT(resume_workers), seed=seed) as second:
        second.load_state_dict(state)
        rest = list(second)
    if stop == 0:  # nothing was taken: the epoch starts afresh under W'
        full = run_epoch(dp, seed, reading_service=partial(MT, resume_workers))
    assert plain(prefix + rest) == plain(full)
    assert flat(prefix + rest) == flat(run_epoch(dp, seed))


@pytest.mark.parametrize(("workers", "resume_workers"), [(2, 3), (4, 1), (3, 2)])
def test_processes_resume_on_another_number_of_workers(data, workers, resume_workers):
    """The same in worker processes, over the mux of all three readers."""
    dp = build(data, "mux", ["shuffle", "forkzip"], 5, 3)
    service = partial(MP, workers, virtual_workers=4)
    full = run_epoch(dp, 3, reading_service=service)
    with sd.DataLoader2(dp, service(), seed=3) as first:
        prefix = take(iter(first), len(full) // 2)
        state = saved(first.state_dict())
    with sd.DataLoader2(dp, MP(resume_workers), seed=3) as second:
        second.load_state_dict(state)
        rest = list(second)
    assert plain(prefix + rest) == plain(full)
    assert flat(full) == flat(run_epoch(dp, 3))


@pytest.mark.parametrize("service", [MT, MP], ids=["threads", "processes"])
def test_virtual_streams_do_not_depend_on_the_number_of_workers(data, service):
    """With V fixed, each sample comes from the same virtual worker, in the
    same place of the in-order stream, whatever the number of workers."""
    dp = build(data, "tar", ["shuffle"], 4, 1).map(with_worker)
    runs = [
        run_epoch(dp, 5, reading_service=partial(service, w, virtual_workers=6)) for w in (1, 4)
    ]
    assert runs[0] == runs[1]
    assert {(v, n) for _, v, n in runs[0]} == {(v, 6) for v in range(6)}


def test_global_rngs_are_per_virtual_worker_in_processes():
    """A map drawing from the global RNGs draws the same numbers whichever
    worker process runs its virtual worker (they switch between chunks)."""
    dp = sd.IterableWrapper(range(3000)).sharding_filter().map(with_global_random)
    runs = [run_epoch(dp, 1, reading_service=partial(MP, w, virtual_workers=4)) for w in (1, 2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("before", "after"),
    [(partial(MP, 2), partial(MP, 3)), (partial(MT, 2), partial(MT, 3, virtual_workers=6))],
    ids=["processes", "threads-queued-next-epoch"],
)
def test_old_format_state_resumes_elastically_and_next_epoch_uses_the_new_count(
    data, before, after
):
    """A state saved without virtual workers (one per worker, the format of
    earlier releases) finishes its epoch on another number of workers; the
    next epoch is the new service's own (threads queue it behind the resumed
    one, with the new virtual workers)."""
    dp = build(data, "tar", ["shuffle"], 6, 2)
    full = run_epoch(dp, 9, reading_service=before)
    with sd.DataLoader2(dp, before(), seed=9) as first:
        prefix = take(iter(first), 4)
        state = saved(first.state_dict())
    with sd.DataLoader2(dp, after(), seed=9) as second:
        second.load_state_dict(state)
        rest = list(second)
        following = list(second)
    assert plain(prefix + rest) == plain(full)
    assert plain(following) == plain(run_epoch(dp, 9, epoch=1, reading_service=after))


def test_an_error_in_one_virtual_worker_names_its_node():
    """An element error in a worker that runs several virtual workers ends
    the epoch with the error, naming the node, instead of hanging."""
    dp = sd.IterableWrapper(range(40)).sharding_filter().map(fail_on_7, name="boom")
    with (
        sd.DataLoader2(dp, MP(2, virtual_workers=5), seed=0) as loader,
        pytest.raises(sd.WorkerError, match=r"worker 0 \(virtual worker 2 of 5, .*'boom'"),
    ):
        list(loader)


@pytest.mark.filterwarnings("ignore:.*without a sharding_filter")
def test_virtual_workers_need_a_sharded_graph_and_at_least_the_workers():
    """Bad settings are refused when the loader starts, saying why."""
    with pytest.raises(sd.ParamError, match="virtual_workers must be an int >= 3"):
        MP(3, virtual_workers=2)
    with pytest.raises(sd.ParamError, match="num_workers >= 1"):
        MT(0, virtual_workers=2)
    dp = sd.IterableWrapper(range(10)).map(square)
    with pytest.raises(sd.ParamError, match="needs a sharding_filter"):  # noqa: PT012
        with sd.DataLoader2(dp, MT(2, virtual_workers=4)) as loader:
            list(loader)


def test_a_state_of_the_main_process_does_not_load_into_workers():
    """num_workers=0 keeps its own state format: a clear error, not a guess."""
    dp = sd.IterableWrapper(range(40)).sharding_filter().map(square)
    with sd.DataLoader2(dp, MT(0), seed=0) as first:
        take(iter(first), 3)
        state = saved(first.state_dict())
    with sd.DataLoader2(dp, MT(2), seed=0) as second:
        second.load_state_dict(state)
        with pytest.raises(sd.ResumeError, match="num_workers=0.*set_epoch"):
            list(second)


@pytest.mark.parametrize(
    "service",
    [partial(MP, 2, persistent_workers=True, virtual_workers=5), partial(MT, 2, virtual_workers=5)],
    ids=["processes", "threads"],
)
def test_several_virtual_workers_per_worker_resume_exactly_in_every_phase(service):
    """The four-phase resume check, with the next epoch queued behind the
    current one (persistent workers) and a cycle in the main process."""
    dp = (
        sd.IterableWrapper(range(30))
        .shuffle(buffer_size=4)
        .sharding_filter()
        .map(square)
        .shuffle(buffer_size=3)
        .main_process()
        .cycle(2)
    )
    full = assert_resumes(dp, stops=[0, 7, 29, 30, 41, 60], seed=1, reading_service=service)
    assert sorted(full[:30]) == sorted(full[30:]) == [i * i for i in range(30)]


def test_out_of_order_resume_on_another_number_of_workers_yields_each_sample_once(data):
    """in_order=False: the order varies, each remaining sample still comes once."""
    dp = build(data, "tar", ["shuffle"], 5, 2)
    with sd.DataLoader2(dp, MP(2, in_order=False, virtual_workers=4), seed=2) as first:
        prefix = take(iter(first), 5)
        state = saved(first.state_dict())
    with sd.DataLoader2(dp, MP(3, in_order=False), seed=2) as second:
        second.load_state_dict(state)
        rest = list(second)
    assert flat(prefix + rest) == flat(run_epoch(dp, 2))


@pytest.mark.parametrize("service", [MP, MT], ids=["processes", "threads"])
def test_statistics_count_every_virtual_worker(service):
    """Each of 4 virtual workers (2 per worker) reads the whole source and
    keeps its shard: the source reports 4 x 50 read, the map 50 in all."""
    dp = sd.IterableWrapper(range(50)).sharding_filter().map(square, name="sq")
    with sd.DataLoader2(dp, service(2, virtual_workers=4), seed=0, stats=True) as loader:
        assert sorted(loader) == [i * i for i in range(50)]
        stats = loader.stats()
    assert stats.nodes[0].elements_out == 200
    assert (stats.node("sq").elements_in, stats.node("sq").elements_out) == (50, 50)


@pytest.mark.filterwarnings("ignore:.*without a sharding_filter")
def test_a_partly_unsharded_graph_resumes_only_on_the_same_number_of_workers():
    """One source that every worker reads in full: another number of workers
    would change the epoch, so the resume refuses and says which way out."""
    sharded = sd.IterableWrapper(range(20)).sharding_filter()
    dp = sharded.mux(sd.IterableWrapper(range(100, 110)))
    with sd.DataLoader2(dp, MT(2), seed=0) as first:
        take(iter(first), 3)
        state = saved(first.state_dict())
    with sd.DataLoader2(dp, MT(3), seed=0) as second:
        second.load_state_dict(state)
        with pytest.raises(sd.ResumeError, match="without a sharding_filter.*set_epoch"):
            list(second)


def _rank_main(rank: int, port: int, outdir: str) -> None:
    """One of 2 gloo ranks: an epoch under 2 workers x 4 virtual workers with
    equal batch counts, and the same epoch stopped after 4 batches and
    resumed under 3 workers (each rank loads its own state)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    dp = sd.IterableWrapper(range(83)).shuffle().sharding_filter().shuffle(buffer_size=5).batch(2)

    def service(workers: int, virtual: int | None = None) -> sd.ReadingService:
        dist_service = sd.DistributedReadingService(sync_every=3)
        return sd.SequentialReadingService(dist_service, MP(workers, virtual_workers=virtual))

    with sd.DataLoader2(dp, service(2, 4), seed=7) as loader:
        full = list(loader)
    with sd.DataLoader2(dp, service(2, 4), seed=7) as first:
        prefix = take(iter(first), 4)
        state = saved(first.state_dict())
    with sd.DataLoader2(dp, service(3)) as second:
        second.load_state_dict(state)
        rest = list(second)
    dist.destroy_process_group()
    Path(outdir, f"rank{rank}.json").write_text(json.dumps([full, prefix, rest]))


@pytest.mark.timeout(180)
def test_each_rank_resumes_on_another_number_of_workers(tmp_path):
    """Under torch.distributed (2 gloo ranks), the same world size: each
    rank's rest of the epoch after the resume on 3 workers is its
    uninterrupted run's, and the ranks still yield equal batch counts."""
    import socket

    import torch.multiprocessing as tmp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp.start_processes(
        _rank_main, args=(port, str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    runs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for full, prefix, rest in runs:
        assert prefix + rest == full
    assert len(runs[0][0]) == len(runs[1][0])
    assert len({x for full, _, _ in runs for batch in full for x in batch}) == sum(
        len(batch) for full, _, _ in runs for batch in full
    )

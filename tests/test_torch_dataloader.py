"""torch's own ``torch.utils.data.DataLoader`` over a DataPipe, as torchdata
users ran it: sharding over its workers (and gloo ranks), seeds from its base
seed, ``shuffle=`` on/off, persistent workers, ``len()``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from math import ceil

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

import streamdag as sd
from streamdag.datapipes.torch_dataset import NO_SHUFFLE_WARNING
from tests.support.leaks import no_leaks  # noqa: F401 - fixture
from tests.test_graph_io_fns import double

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_leaks")]
N = 23  # not a multiple of 2 or 3 workers: shards of unequal size
WORLD = 2


def with_worker(x: int) -> tuple[int, int]:
    """The element and the id of the DataLoader worker that made it."""
    info = get_worker_info()
    return (-1 if info is None else info.id, x)


def set_tag(worker_id: int) -> None:
    global TAG
    TAG = f"init{worker_id}"


TAG = "main"


def tagged(x: int) -> tuple[str, int]:
    return (TAG, x)


def _pipe(n: int = N) -> sd.DataPipe[int]:
    return sd.IterableWrapper(range(n)).shuffle(buffer_size=n).sharding_filter().map(double)


def _flat(batches) -> list[int]:
    return [int(x) for batch in batches for x in batch]


def _epoch(dp, **kwargs) -> list[int]:
    """One epoch, element by element (workers' elements interleave one by one)."""
    return [int(x) for x in DataLoader(dp, batch_size=None, **kwargs)]


def test_a_datapipe_is_an_iterable_dataset_even_built_before_torch_is_imported() -> None:
    code = (
        "import sys, streamdag as sd\n"
        "dp = sd.IterableWrapper(range(5)).sharding_filter()\n"
        "assert 'torch' not in sys.modules\n"
        "from torch.utils.data import DataLoader, IterableDataset, IterDataPipe\n"
        "assert isinstance(dp, IterableDataset) and isinstance(dp, IterDataPipe)\n"
        "print(list(DataLoader(dp, batch_size=None, num_workers=2)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 1, 2, 3, 4]"


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_every_element_exactly_once_per_epoch(workers: int) -> None:
    loader = DataLoader(_pipe(), batch_size=4, num_workers=workers)
    epochs = [_flat(loader) for _ in range(2)]
    for epoch in epochs:
        assert sorted(epoch) == [2 * i for i in range(N)]
    assert epochs[0] != epochs[1]  # a new seed each epoch


@pytest.mark.parametrize("workers", [0, 2])
def test_torch_manual_seed_reproduces_the_epoch(workers: int) -> None:
    runs = {}
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        runs.setdefault(seed, []).append(_epoch(_pipe(), num_workers=workers))
    assert runs[1][0] == runs[1][1]
    assert runs[1][0] != runs[2][0]


def test_sharding_filter_after_a_file_list_splits_the_files(tmp_path) -> None:
    for f in range(5):
        (tmp_path / f"part-{f}.txt").write_text("".join(f"{f}-{i}\n" for i in range(3)))
    dp = (
        sd.FileLister(str(tmp_path), masks="*.txt")
        .sharding_filter()
        .open_files()
        .readlines(return_path=False)
        .map(with_worker)
    )
    seen = list(DataLoader(dp, batch_size=None, num_workers=2))
    assert sorted(line for _, line in seen) == sorted(
        f"{f}-{i}" for f in range(5) for i in range(3)
    )
    worker_of_file = {line.split("-")[0]: set() for _, line in seen}
    for worker, line in seen:
        worker_of_file[line.split("-")[0]].add(worker)
    assert all(len(w) == 1 for w in worker_of_file.values())  # each file read by one worker
    assert set().union(*worker_of_file.values()) == {0, 1}


@pytest.mark.parametrize("workers", [0, 2])
def test_shuffle_false_turns_every_shuffle_off(workers: int) -> None:
    dp = _pipe()
    assert _epoch(dp, num_workers=workers, shuffle=False) == [2 * i for i in range(N)]


def test_shuffle_true_turns_on_a_shuffle_that_was_set_off() -> None:
    dp = sd.IterableWrapper(range(N)).shuffle().set_shuffle(False).sharding_filter()
    assert _epoch(dp) == list(range(N))  # without shuffle=: the pipe's own setting
    shuffled = _epoch(dp, num_workers=2, shuffle=True)
    assert sorted(shuffled) == list(range(N)) and shuffled != list(range(N))


def test_shuffle_true_without_a_shuffle_adds_one_with_torchdatas_warning() -> None:
    dp = sd.IterableWrapper(range(N))
    with pytest.warns(UserWarning, match="does not contain a `Shuffler`") as caught:
        loader = DataLoader(dp, batch_size=None, shuffle=True)
    assert str(caught[0].message) == NO_SHUFFLE_WARNING
    epoch = list(loader)
    assert sorted(epoch) == list(range(N)) and epoch != list(range(N))


def test_persistent_workers_yield_each_element_once_per_epoch_with_new_seeds() -> None:
    torch.manual_seed(3)
    loader = DataLoader(_pipe(), batch_size=4, num_workers=2, persistent_workers=True)
    epochs = [_flat(loader) for _ in range(3)]
    assert all(sorted(e) == [2 * i for i in range(N)] for e in epochs)
    assert len({tuple(e) for e in epochs}) == 3
    torch.manual_seed(3)
    again = DataLoader(_pipe(), batch_size=4, num_workers=2, persistent_workers=True)
    assert [_flat(again) for _ in range(3)] == epochs


def test_len_is_the_pipes_total_length() -> None:
    assert len(DataLoader(_pipe(), batch_size=None, num_workers=2)) == N
    assert len(DataLoader(_pipe(), batch_size=4, num_workers=2)) == ceil(N / 4)
    assert len(DataLoader(_pipe().batch(5), batch_size=None)) == ceil(N / 5)
    unknown = DataLoader(_pipe().filter(bool), batch_size=None)
    with pytest.raises(TypeError, match="doesn't have valid length"):
        len(unknown)
    set_length = DataLoader(_pipe().filter(bool).set_length(N - 1), batch_size=None)
    assert len(set_length) == N - 1


def test_a_pipe_that_batches_itself_runs_with_batch_size_none() -> None:
    dp = sd.IterableWrapper(range(10)).sharding_filter().batch(4).collate()
    batches = list(DataLoader(dp, batch_size=None, num_workers=2))
    assert [b.tolist() for b in batches] == [[0, 2, 4, 6], [1, 3, 5, 7], [8], [9]]


def test_dict_elements_go_through_torchs_default_collate() -> None:
    dp = sd.IterableWrapper([{"x": i, "name": f"s{i}"} for i in range(4)])
    batches = list(DataLoader(dp, batch_size=2))
    assert [b["x"].tolist() for b in batches] == [[0, 1], [2, 3]]
    assert [b["name"] for b in batches] == [["s0", "s1"], ["s2", "s3"]]


def test_worker_init_fn_runs_in_each_worker_before_the_pipe() -> None:
    dp = sd.IterableWrapper(range(6)).sharding_filter().map(tagged)
    got = list(DataLoader(dp, batch_size=None, num_workers=2, worker_init_fn=set_tag))
    assert sorted(got) == sorted([f"init{x % 2}", x] for x in range(6))  # tuples: lists


@pytest.mark.slow
def test_spawned_workers_get_the_pipe_and_its_shuffle_setting() -> None:
    loader = DataLoader(
        _pipe(), batch_size=None, num_workers=2, shuffle=False, multiprocessing_context="spawn"
    )
    assert [int(x) for x in loader] == [2 * i for i in range(N)]


def test_a_plain_iterable_dataset_over_a_pipe_no_longer_duplicates() -> None:
    """The adapter users wrote before: each worker now iterates its shard."""

    class Adapter(IterableDataset):
        def __iter__(self):
            return iter(_pipe())

    assert sorted(_flat(DataLoader(Adapter(), batch_size=4, num_workers=2))) == [
        2 * i for i in range(N)
    ]


def test_a_plain_iterable_dataset_ignores_what_torch_set_for_another_loader() -> None:
    dp = _pipe()
    list(DataLoader(dp, batch_size=None, shuffle=False))  # 0 workers: one copy of one

    class Adapter(IterableDataset):
        def __iter__(self):
            return iter(dp)

    got = _flat(DataLoader(Adapter(), batch_size=4, num_workers=2))
    assert sorted(got) == [2 * i for i in range(N)] and got != sorted(got)


def test_direct_iteration_is_unchanged_after_a_loader_ran() -> None:
    dp = _pipe()
    list(DataLoader(dp, batch_size=None, num_workers=2, shuffle=False))
    assert len({tuple(dp) for _ in range(3)}) == 3  # shuffled, with fresh random seeds
    assert all(sorted(dp) == [2 * i for i in range(N)] for _ in range(2))


# -- two gloo ranks x two workers ---------------------------------------------
def _rank_main(rank: int, port: int, outdir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    torch.manual_seed(rank)  # different on each rank: rank 0's shared seed is broadcast
    loader = DataLoader(_pipe().map(with_worker), batch_size=None, num_workers=2)
    out = [list(loader) for _ in range(2)]
    dist.destroy_process_group()
    with open(f"{outdir}/rank{rank}.json", "w") as f:
        json.dump(out, f)


@pytest.mark.slow
def test_two_ranks_with_two_workers_each_see_every_element_once(tmp_path) -> None:
    import torch.multiprocessing as tmp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp.start_processes(
        _rank_main, args=(port, str(tmp_path)), nprocs=WORLD, join=True, start_method="spawn"
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for epoch in range(2):
        seen = [x for rank in ranks for _, x in rank[epoch]]
        assert sorted(seen) == [2 * i for i in range(N)]
        assert all({w for w, _ in rank[epoch]} == {0, 1} for rank in ranks)
    assert [x for _, x in ranks[0][0]] != [x for _, x in ranks[0][1]]

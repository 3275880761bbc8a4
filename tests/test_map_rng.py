"""map(fn, rng=True): each element's draws come from a generator seeded by
(base seed, epoch, node, position), so augmentations are the same on every
service, through the decode-late rewrite and across a resume; and worker
processes save the global RNGs' states so a map drawing from torch's global
RNG resumes exactly."""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import pytest
import torch

import streamdag as sd
from streamdag.core.node import walk
from streamdag.core.plan import execution_plan
from streamdag.reading_service.worker import CHUNK_ITEMS
from streamdag.testing import (
    SERVICES,
    assert_resumes,
    assert_round_trips,
    run_epoch,
    run_epochs,
)
from tests import test_graph_io_fns as fns
from tests.support.readers import jpeg_bytes, write_tar
from tests.support.services import SERVICE_PARAMS

THREADS = sd.MultiThreadingReadingService
PROCESSES = sd.MultiProcessingReadingService


def sharded(n: int = 40) -> sd.DataPipe:
    """Split before the map: each worker numbers its own share."""
    return sd.IterableWrapper(range(n)).sharding_filter().map(fns.jitter, rng=True)


def draws(pipe: sd.DataPipe, seed: int = 5, service=None) -> list:
    return run_epoch(pipe, seed=seed, reading_service=service)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_same_draws_on_every_service_for_a_worker_count():
    """In process is one worker; threads and processes agree for 1 and 2 workers."""
    one = draws(sharded())
    assert draws(sharded(), service=partial(THREADS, 1)) == one
    assert draws(sharded(), service=partial(PROCESSES, 1)) == one
    two = draws(sharded(), service=partial(THREADS, 2))
    assert draws(sharded(), service=partial(PROCESSES, 2)) == two
    assert sorted(x for x, _ in two) == list(range(40))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_map_before_the_split_draws_the_same_whatever_the_workers():
    """Upstream of sharding_filter every worker numbers the whole stream alike."""
    pipe = sd.IterableWrapper(range(30)).map(fns.jitter, rng=True).sharding_filter()
    alone = sorted(draws(pipe))
    assert sorted(draws(pipe, service=partial(THREADS, 3))) == alone
    assert sorted(draws(pipe, service=partial(PROCESSES, 2))) == alone


def test_seeds_epochs_and_nodes_draw_differently():
    pipe = sharded()
    first, second = run_epochs(pipe, 2, 5, None)
    assert [x for x, _ in first] == [x for x, _ in second] == list(range(40))
    assert [d for _, d in first] != [d for _, d in second]
    assert draws(pipe, seed=6) != first
    assert draws(pipe, seed=5) == first
    twice = sd.IterableWrapper(range(10)).map(fns.jitter, rng=True).map(fns.jitter, rng=True)
    out = draws(twice)
    assert [x for (x, _), _ in out] == list(range(10))
    assert [d for (_, d), _ in out] != [d for _, d in out]


def test_draws_do_not_depend_on_the_global_rngs():
    pipe = sharded(10)
    random.seed(1)
    np.random.seed(1)
    first = draws(pipe)
    random.seed(2)
    np.random.seed(2)
    assert draws(pipe) == first


def test_columns_get_the_generator_after_them():
    pipe = sd.IterableWrapper([(i, "x") for i in range(5)]).map(
        fns.jitter, input_col=0, output_col=-1, rng=True
    )
    out = draws(pipe)
    assert [row[:2] for row in out] == [(i, "x") for i in range(5)]
    assert all(isinstance(row[2], tuple) and row[2][0] == row[0] for row in out)


def test_a_function_without_an_rng_parameter_is_named():
    pipe = sd.IterableWrapper(range(3)).map(fns.double, rng=True, name="aug")
    with pytest.raises(
        sd.StreamdagError, match=r"map node 'aug': rng=True calls fn\(element, rng\)"
    ):
        draws(pipe)


def test_the_graph_saves_and_loads_with_rng():
    pipe = sharded(12)
    assert [n.params.get("rng") for n in sd.Graph(pipe) if n.op == "map"] == [True]
    assert_round_trips(pipe, ["tests.test_graph_io_fns"], seed=3)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", SERVICE_PARAMS)
def test_resumes_at_random_stops(service):
    rnd = random.Random(0)
    stops = [0, *rnd.sample(range(1, 40), 3), 40]
    assert_resumes(sharded(), stops, seed=2, reading_service=SERVICES[service])


# -- the decode-late rewrite ---------------------------------------------------
def augment(sample: dict, rng: np.random.Generator) -> tuple:
    """A random crop and flip of the decoded image, from the element's generator."""
    image = sample["jpg"]
    top, left = rng.integers(0, 5), rng.integers(0, 5)
    crop = image[top : top + 8, left : left + 8]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return crop.tolist(), int(sample["cls"])


def image_pipe(path: str, decode_late: bool = True) -> sd.DataPipe:
    return (
        sd.IterableWrapper([path])
        .open_files(mode="b")
        .load_from_tar()
        .webdataset(keys="webdataset")
        .sharding_filter()
        .decode(name="dec")
        .map(augment, rng=True, name="aug")
        .shuffle(buffer_size=12, initial=4, decode_late=decode_late, name="shuf")
    )


@pytest.fixture
def shard(tmp_path) -> str:
    members = []
    for i in range(30):
        members += [(f"{i:06d}.jpg", jpeg_bytes(16, 12, seed=i)), (f"{i:06d}.cls", b"%d" % i)]
    return str(write_tar(tmp_path / "shard.tar", members))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", SERVICE_PARAMS)
def test_decode_late_moves_the_map_and_draws_the_same(shard, service):
    """The moved map numbers elements as they entered the shuffle."""
    ops = [n.name or n.op for n in walk(execution_plan(image_pipe(shard).node))]
    assert ops[-3:] == ["shuf", "dec", "aug"]
    late = run_epochs(image_pipe(shard), 2, 4, SERVICES[service])
    assert late == run_epochs(image_pipe(shard, decode_late=False), 2, 4, SERVICES[service])
    assert sorted(label for _, label in late[0]) == list(range(30))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", SERVICE_PARAMS)
def test_decode_late_resumes_at_random_stops(shard, service):
    rnd = random.Random(1)
    stops = [0, *rnd.sample(range(1, 30), 3), 30]
    assert_resumes(image_pipe(shard), stops, seed=7, reading_service=SERVICES[service])


# -- global RNGs in worker processes -----------------------------------------------
def global_jitter(x: int) -> tuple[int, int, int, float]:
    """A map drawing from torch's, numpy's and Python's global RNGs (torch and
    numpy imported before the workers seed them)."""
    return x, int(torch.randint(1 << 30, (1,))), int(np.random.randint(1 << 30)), random.random()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_torch_global_rng_map_resumes_in_processes():
    """Each worker's random, numpy and torch states are in its resume state:
    stops past a worker's first chunk (at most ``CHUNK_ITEMS`` elements)
    resume from a chunk's state, not from the seeded start."""
    count = 3 * CHUNK_ITEMS
    pipe = sd.IterableWrapper(range(count)).sharding_filter().map(global_jitter)
    rnd = random.Random(2)
    stops = [rnd.randrange(1, count), *(rnd.randrange(2 * CHUNK_ITEMS + 2, count) for _ in "ab")]
    full = assert_resumes(pipe, stops, seed=3, reading_service=partial(PROCESSES, 2))
    assert all(len({row[i] for row in full}) == count for i in (1, 2))

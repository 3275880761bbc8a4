"""RNG states in resume states: a global RNG nothing drew from is a marker,
one that moved and the nodes' own RNGs are compact text, every state format
holds them, states of earlier releases still restore, and a W2-like graph's
state per virtual worker stays under 16 KB in worker processes."""

from __future__ import annotations

import io
import json
import pickle
import random
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import torch

import streamdag as sd
from streamdag.core.rng_state import decode_random_state
from streamdag.core.seeds import global_rng_states, seed_global_rngs, set_global_rng_states
from streamdag.testing import assert_resumes
from streamdag.testing.loaders import saved, take
from tests.support.readers import samples_tar

SEED = 123_456_789_012


@pytest.fixture(autouse=True)
def keep_global_rngs() -> Iterator[None]:
    """These tests seed and move the process's global RNGs: put them back."""
    before = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    random.setstate(before[0])
    np.random.set_state(before[1])
    torch.set_rng_state(before[2])


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def through_torch_save(state: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


FORMATS: dict[str, Callable[[Any], Any]] = {
    "json": lambda s: json.loads(json.dumps(s)),
    "msgpack": saved,
    "pickle": lambda s: pickle.loads(pickle.dumps(s)),
    "torch.save": through_torch_save,
}


def test_untouched_global_rngs_are_a_marker_that_restores_the_seeded_rngs():
    """RNGs as seeding left them are saved as None beside the seed: a few
    bytes, and restoring them gives the seeded RNGs' draws."""
    seed_global_rngs(SEED)
    states = global_rng_states(SEED)
    assert states == {"seed": SEED, "random": None, "numpy": None, "torch": None}
    assert len(json.dumps(states)) < 80
    expected = draws()
    draws()  # moved on
    set_global_rng_states(saved(states))
    assert draws() == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_moved_global_rngs_are_compact_text_and_resume_the_same_draws(fmt: str):
    """RNGs that moved are saved as base64 text (not int lists or hex):
    through every state format the next draws are those of the
    uninterrupted run."""
    seed_global_rngs(SEED)
    draws()
    states = FORMATS[fmt](global_rng_states(SEED))
    assert isinstance(states["random"][1], str) and isinstance(states["numpy"][1], str)
    assert isinstance(states["torch"][0], str)
    assert len(json.dumps(states)) < 14_000  # int lists and hex text: 31 KB
    expected = [draws() for _ in range(3)]
    seed_global_rngs(SEED + 1)
    set_global_rng_states(states)
    assert [draws() for _ in range(3)] == expected


def test_global_rng_states_saved_by_earlier_releases_restore():
    """The old form (no seed; an int list, hex text) still loads."""
    seed_global_rngs(SEED)
    draws()
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    old = {
        "random": [version, list(internal), gauss],
        "numpy": [name, keys.tobytes().hex(), pos, has_gauss, cached],
        "torch": [torch.get_rng_state().numpy().tobytes().hex()],
    }
    expected = draws()
    seed_global_rngs(SEED + 1)
    set_global_rng_states(saved(old))
    assert draws() == expected


def python_random(x: int) -> tuple[int, float]:
    """Draws from Python's global RNG only (numpy's and torch's stay seeded)."""
    return x, random.random()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_worker_drawing_from_python_random_resumes_with_the_others_as_markers():
    count = 2500  # past a worker's first chunk
    dp = sd.IterableWrapper(range(count)).sharding_filter().map(python_random)
    service = partial(sd.MultiProcessingReadingService, 2)
    assert_resumes(dp, [1, 1500, count - 3], seed=5, reading_service=service)
    with sd.DataLoader2(dp, reading_service=service(), seed=5) as loader:
        take(iter(loader), 2100)
        workers = loader.state_dict()["graph"]["graph"]["workers"]
    for worker in workers:
        rngs = worker["state"]["rngs"]
        assert isinstance(rngs["random"][1], str)
        assert rngs.get("numpy") is None and rngs.get("torch") is None


def as_int_lists(state: Any) -> Any:
    """``state`` with its nodes' RNG states in the form earlier releases saved."""
    if isinstance(state, dict):
        return {
            k: (list(decode_random_state(v)) if k == "rng" else as_int_lists(v))
            for k, v in state.items()
        }
    if isinstance(state, list):
        return [as_int_lists(v) for v in state]
    return state


def below(x: int) -> list[int]:
    return list(range(x % 4))


RANDOM_NODES = {
    "shuffle": lambda: sd.IterableWrapper(range(60)).shuffle(buffer_size=9),
    "mux": lambda: sd.SampleMultiplexer(
        {sd.IterableWrapper(range(30)): 0.3, sd.IterableWrapper(range(100, 130)): 0.7}
    ),
    "random_split": lambda: sd.IterableWrapper(range(60)).random_split(
        {"a": 40, "b": 20}, seed=3, target="a"
    ),
    "shuffled_flatmap": lambda: sd.IterableWrapper(range(60)).shuffled_flatmap(
        below, buffer_size=4
    ),
}


@pytest.mark.parametrize("node", RANDOM_NODES)
def test_node_rng_states_saved_as_int_lists_still_restore(node: str):
    dp = RANDOM_NODES[node]()
    with sd.DataLoader2(dp, seed=4) as loader:
        full = list(loader)
    with sd.DataLoader2(dp, seed=4) as loader:
        head = take(iter(loader), 17)
        state = loader.state_dict()
    assert '"rng": [3, "' in json.dumps(state)  # base64 text now
    with sd.DataLoader2(dp, seed=4) as loader:
        loader.load_state_dict(saved(as_int_lists(state)))
        assert head + list(loader) == full


def txt(sample: dict) -> str:
    return sample[".txt"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_w2_like_state_per_virtual_worker_in_processes_is_under_16_kb(tmp_path: Path):
    """W2's shape (shuffled shards, webdataset samples, a 1000-sample shuffle,
    batches) stopped mid-epoch with its buffers full: each virtual worker's
    state, its global RNGs' included, is under 16 KB in every format."""
    for shard in range(4):
        samples_tar(tmp_path / f"{shard}.tar", 1500, shard * 1500)
    dp = (
        sd.FileLister(str(tmp_path), masks="*.tar")
        .shuffle()
        .sharding_filter()
        .open_files(mode="rb")
        .load_from_tar()
        .webdataset()
        .map(txt)
        .shuffle(buffer_size=1000)
        .batch(64)
    )
    with sd.DataLoader2(dp, sd.MultiProcessingReadingService(2), seed=0) as loader:
        take(iter(loader), 44)  # 1400 samples of each worker's 3000
        workers = loader.state_dict()["graph"]["graph"]["workers"]
    assert len(workers) == 2
    for worker in workers:
        assert len(worker["state"]["graph"]["seqs"]) > 900  # a full buffer's positions
        rngs = worker["state"]["rngs"]
        assert [rngs[k] for k in ("random", "numpy", "torch")] == [None] * 3
        sizes = [len(pickle.dumps(worker)), len(msgpack.packb(worker)), len(json.dumps(worker))]
        assert max(sizes) < 16 * 1024, sizes

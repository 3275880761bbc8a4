"""Batches collated in a torch DataLoader worker are made in shared memory,
where torch's pickler would otherwise copy them into a new segment; they
arrive in the main process equal to the batches made in process."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import pytest
import torch
from torch.utils.data import DataLoader

import streamdag as sd
from tests.support.leaks import no_leaks  # noqa: F401 - fixture

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_leaks")]
N = 12


def image(i: int) -> tuple[torch.Tensor, int]:
    """A 3x4x5 uint8 image of values from ``i``, and its label."""
    return torch.arange(60, dtype=torch.uint8).reshape(3, 4, 5) + i, i


def stack_pairs(samples: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A user's collate function: images stacked, labels as int64."""
    images = torch.stack([s[0] for s in samples])
    return images, torch.tensor([s[1] for s in samples], dtype=torch.int64)


def stack_mixed(samples: Sequence[tuple[torch.Tensor, int]]) -> torch.Tensor:
    """torch.stack promotes mixed dtypes (float32 and uint8 -> float32)."""
    first, *rest = (s[0] for s in samples)
    return torch.stack([first.float(), *rest], dim=-1)


def ragged(i: int) -> list[int]:
    return list(range(i % 3 + 1))


def sharedness(batch: tuple[torch.Tensor, ...]) -> tuple:
    """The batch, and whether each tensor of it is in shared memory where it
    was made (a node after the collate: in the worker, before torch sends it)."""
    return (*batch, tuple(t.is_shared() for t in batch))


def _sharded(n: int = N) -> sd.DataPipe:
    return sd.IterableWrapper(range(n)).sharding_filter()


@pytest.mark.parametrize("fn", [stack_pairs, None], ids=["user_fn", "default_collate"])
def test_collated_batches_are_made_in_shared_memory_and_arrive_equal(fn) -> None:
    dp = _sharded().map(image).batch(3).collate(fn).map(sharedness)
    loaded = list(DataLoader(dp, batch_size=None, num_workers=2))
    assert [list(shared) for *_, shared in loaded] == [[True, False]] * 4  # labels: tiny
    assert sorted(int(i) for _, labels, _ in loaded for i in labels) == list(range(N))
    for images, labels, _ in loaded:
        want = torch.stack([image(int(i))[0] for i in labels])
        assert images.dtype == torch.uint8 and images.shape == (3, 3, 4, 5)
        assert torch.equal(images, want)
        assert labels.dtype == torch.int64


def test_outside_a_torch_worker_nothing_is_shared() -> None:
    batches = list(_sharded().map(image).batch(3).collate(stack_pairs).map(sharedness))
    assert [shared for *_, shared in batches] == [(False, False)] * 4


def test_a_stack_of_mixed_dtypes_still_promotes_as_torch_does() -> None:
    dp = _sharded(4).map(image).batch(2).collate(stack_mixed)
    loaded = list(DataLoader(dp, batch_size=None, num_workers=2))
    for batch, first in zip(loaded, (0, 1), strict=True):
        want = stack_mixed([image(first), image(first + 2)])
        assert batch.dtype == torch.float32 and torch.equal(batch, want)


def test_pad_collate_pads_in_shared_memory_in_a_torch_worker() -> None:
    dp = _sharded(6).map(ragged).batch(3).pad_collate(padding_value=-1).map(sharedness)
    loaded = list(DataLoader(dp, batch_size=None, num_workers=2))
    assert [shared[0] for *_, shared in loaded] == [True, True]
    padded = [b[0].tolist() for b in loaded]
    assert padded == [[[0, -1, -1], [0, 1, 2], [0, 1, -1]], [[0, 1, -1], [0, -1, -1], [0, 1, 2]]]


def failing(samples: Sequence[int]) -> None:
    raise ValueError("no batch today")


def test_an_error_in_the_collate_function_still_names_the_node_and_batch() -> None:
    dp = _sharded(4).batch(2).collate(failing, name="stack")
    loader = iter(DataLoader(dp, batch_size=None, num_workers=1))
    with pytest.raises(sd.NodeError) as caught:
        next(loader)
    message = str(caught.value)
    del caught, loader  # the traceback holds the loader (in cycles): its worker
    gc.collect()  # stops once it is collected
    assert (
        "collate node 'stack' raised ValueError: no batch today (on a list of 2: 0, 1)" in message
    )

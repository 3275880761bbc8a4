"""torchdata 0.9 and streamdag group the same elements the same way
(groupby, bucketbatch, max_token_bucketize): the same output, in the same
order, where torchdata's is deterministic; the same batches where torchdata
shuffles them (streamdag draws the order from the loader's seed)."""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("torchdata.datapipes.iter")

from torchdata.datapipes.iter import IterableWrapper as TDIterableWrapper  # noqa: E402

import streamdag as sd  # noqa: E402
from streamdag.datapipes import iter as sd_iter  # noqa: E402

FILES = ["a.png", "b.png", "a.json", "b.json", "a.jpg", "c.json", "d.txt", "b.jpg"]
WORDS = ["1", "11", "1", "1111", "111", "1", "11", "11", "111", "11111", "1111"]
NUMBERS = random.Random(7).sample(range(1000), 200)


def stem(path: str) -> str:
    return os.path.basename(path).split(".")[0]


def mod7(x: int) -> int:
    return x % 7


def digits(x: int) -> int:
    return len(str(x))


def ascending(bucket: list[int]) -> list[int]:
    return sorted(bucket)


def plain(out: Any) -> Any:
    """torchdata's DataChunks (and keep_key pairs) as plain lists and tuples."""
    if isinstance(out, tuple):
        return tuple(plain(x) for x in out)
    return list(out) if isinstance(out, list) else out


def run_both(build: Callable[[Any], Any], data: list[Any]) -> tuple[list, list]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = [plain(x) for x in build(TDIterableWrapper(data))]
    ours = [plain(x) for x in build(sd.IterableWrapper(data))]
    return theirs, ours


EXACT = {
    "groupby": (FILES, lambda dp: dp.groupby(stem)),
    "groupby_keep_key": (FILES, lambda dp: dp.groupby(stem, keep_key=True)),
    "groupby_group_size": (FILES, lambda dp: dp.groupby(stem, group_size=2)),
    "groupby_full_buffer": (
        FILES[:6],
        lambda dp: dp.groupby(stem, buffer_size=3, group_size=3, guaranteed_group_size=2),
    ),
    "groupby_drop_remaining": (
        NUMBERS,
        lambda dp: dp.groupby(
            mod7, keep_key=True, buffer_size=10, group_size=4, drop_remaining=True
        ),
    ),
    "groupby_no_guarantee": (NUMBERS, lambda dp: dp.groupby(mod7, buffer_size=9)),
    "max_token_bucketize": (WORDS, lambda dp: dp.max_token_bucketize(5)),
    "max_token_bucketize_small_buffer": (
        WORDS,
        lambda dp: dp.max_token_bucketize(max_token_count=4, buffer_size=4),
    ),
    "max_token_bucketize_padding": (
        WORDS,
        lambda dp: dp.max_token_bucketize(6, min_len=2, max_len=4, include_padding=True),
    ),
    "max_token_bucketize_len_fn": (
        NUMBERS,
        lambda dp: dp.max_token_bucketize(7, len_fn=digits, buffer_size=13),
    ),
    # one bucket, sorted: its batches are shuffled within a pool of one batch
    "bucketbatch_sorted": (
        NUMBERS,
        lambda dp: dp.bucketbatch(5, batch_num=4, sort_key=ascending),
    ),
}


def test_groupby_full_buffer_fails_alike() -> None:
    """A full buffer whose biggest group is below guaranteed_group_size
    (without drop_remaining) is an error under both."""
    with pytest.raises(RuntimeError, match="Failed to group items"):
        run_both(lambda dp: dp.groupby(stem, buffer_size=3, group_size=3), FILES)
    with pytest.raises(RuntimeError, match="groupby: the buffer is full"):
        list(sd.IterableWrapper(FILES).groupby(stem, buffer_size=3, group_size=3))


@pytest.mark.parametrize("case", sorted(EXACT))
def test_same_output(case: str) -> None:
    data, build = EXACT[case]
    theirs, ours = run_both(build, data)
    assert ours == theirs


RANDOM = {
    "bucketbatch": lambda dp: dp.bucketbatch(8),
    "bucketbatch_buffer_shuffle": lambda dp: dp.bucketbatch(
        6, batch_num=4, bucket_num=3, use_in_batch_shuffle=False
    ),
}
SORTED = {
    "bucketbatch_sorted_buffer_shuffle": lambda dp: dp.bucketbatch(
        5, drop_last=True, batch_num=6, sort_key=ascending, use_in_batch_shuffle=False
    ),
}


@pytest.mark.parametrize("case", sorted(RANDOM))
def test_bucketbatch_same_elements(case: str) -> None:
    """Pools are shuffled: the same batch sizes and elements, any order."""
    theirs, ours = run_both(RANDOM[case], NUMBERS)
    assert sorted(map(len, ours)) == sorted(map(len, theirs))
    assert sorted(x for b in ours for x in b) == sorted(x for b in theirs for x in b)


@pytest.mark.parametrize("case", sorted(SORTED))
def test_bucketbatch_sorted_same_batches(case: str) -> None:
    """With a sort_key, each batch is the same as torchdata's; the buffer
    shuffle of the batches orders them."""
    theirs, ours = run_both(SORTED[case], NUMBERS)
    assert sorted(ours) == sorted(theirs)


def test_bucketbatch_drop_last() -> None:
    """drop_last drops the same number of elements (which ones depends on the shuffle)."""
    theirs, ours = run_both(lambda dp: dp.bucketbatch(7, drop_last=True, batch_num=5), NUMBERS)
    assert [len(b) for b in ours] == [len(b) for b in theirs] == [7] * (len(NUMBERS) // 7)
    assert len({x for b in ours for x in b}) == 7 * (len(NUMBERS) // 7)


def test_class_style_names() -> None:
    data = list(range(30))
    assert list(sd_iter.Grouper(sd.IterableWrapper(data), mod7, group_size=3)) == list(
        sd.IterableWrapper(data).groupby(mod7, group_size=3)
    )
    assert list(sd_iter.MaxTokenBucketizer(sd.IterableWrapper(WORDS), 5)) == list(
        sd.IterableWrapper(WORDS).max_token_bucketize(5)
    )
    pipe = sd_iter.BucketBatcher(sd.IterableWrapper(data), 4, sort_key=ascending)
    assert sorted(x for b in pipe for x in b) == data

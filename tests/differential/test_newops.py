"""torchdata 0.9 and streamdag give the same elements, in the same order, for
the transform names torchdata had and streamdag adds (enumerate, slice,
zip_with_iter, random_split, len(), map-style pipes, ...): each pipeline is
one function of the library's IterableWrapper (and SequenceWrapper), run
under both."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import pytest

pytest.importorskip("torchdata.datapipes.iter")

from torchdata.datapipes.iter import IterableWrapper as TDIterableWrapper  # noqa: E402
from torchdata.datapipes.map import SequenceWrapper as TDSequenceWrapper  # noqa: E402

import streamdag as sd  # noqa: E402
from streamdag.datapipes.map import SequenceWrapper  # noqa: E402

TD = (TDIterableWrapper, TDSequenceWrapper)
SD = (sd.IterableWrapper, SequenceWrapper)


def merge(item: Any, ref: Any) -> Any:
    return item[0], item[1] + ref[1] if isinstance(ref, tuple) else item[1] + ref


def space_join(lines: list[str]) -> str:
    return " ".join(lines)


def square_pair(x: int) -> tuple[int, int]:
    return x, x * x


def add_one(x: int) -> int:
    return x + 1


ROWS = [(i, i + 10, (i, -i), [i + 20, i + 30]) for i in range(5)]
DICTS = [{"a": i, "b": {"c": i * 2, "d": i * 3}, "e": [i]} for i in range(4)]
LINES = [
    ("f1", "L1"),
    ("f1", "L2"),
    ("f1", ""),
    ("f1", ""),
    ("f1", "L3"),
    ("f2", "x"),
    ("f2", ""),
    ("f3", ""),
    ("f3", "y"),
    ("f3", "z"),
]

# name -> pipeline built from (IterableWrapper, SequenceWrapper): one output or a list
PIPES: dict[str, Callable[[type, type], Any]] = {
    "enumerate": lambda W, S: W("abcde").enumerate(),
    "enumerate-start": lambda W, S: W("abcde").enumerate(starting_index=7),
    "add_index": lambda W, S: W([{"a": i} for i in range(5)]).add_index(),
    "add_index-name": lambda W, S: W([{"a": i, "order": 9} for i in range(3)]).add_index("order"),
    "slice-start": lambda W, S: W(ROWS).slice(1),
    "slice-stop-step": lambda W, S: W(ROWS).slice(0, 4, 2),
    "slice-negative": lambda W, S: W(ROWS).slice(-2),
    "slice-list": lambda W, S: W(ROWS).slice([0, 2]),
    "slice-lists": lambda W, S: W([list(r) for r in ROWS]).slice(1, 3),
    "slice-dict-key": lambda W, S: W(DICTS).slice("a"),
    "slice-dict-keys": lambda W, S: W(DICTS).slice(["a", "e"]),
    "drop-one": lambda W, S: W(ROWS).drop(1),
    "drop-list": lambda W, S: W([list(r) for r in ROWS]).drop([0, 2]),
    "drop-dict": lambda W, S: W(DICTS).drop(["a", "e"]),
    "flatten-all": lambda W, S: W(ROWS).flatten(),
    "flatten-one": lambda W, S: W(ROWS).flatten(2),
    "flatten-list": lambda W, S: W([list(r) for r in ROWS]).flatten([2, 3]),
    "flatten-zero-is-all": lambda W, S: W(ROWS).flatten(0),
    "flatten-dict": lambda W, S: W(DICTS).flatten(),
    "flatten-dict-key": lambda W, S: W(DICTS).flatten("b"),
    "rows2columnar-dicts": lambda W, S: W(
        [[{"a": 1}, {"b": 2, "a": 1}], [{"a": 1, "b": 200}, {"b": 2, "c": 3, "a": 100}]]
    ).rows2columnar(),
    "rows2columnar-filter": lambda W, S: W(
        [[{"a": 1, "b": 5}, {"b": 2, "a": 1}], [{"a": 7, "b": 200}]]
    ).rows2columnar(["a"]),
    "rows2columnar-lists": lambda W, S: (
        W(range(10)).batch(4).batch(2).map(list).rows2columnar(["1st", "2nd", "3rd", "4th"])
    ),
    "lines_to_paragraphs": lambda W, S: W(LINES).lines_to_paragraphs(),
    "lines_to_paragraphs-joiner": lambda W, S: W(LINES).lines_to_paragraphs(joiner=space_join),
    "repeat": lambda W, S: W(range(4)).repeat(3),
    "zip_longest": lambda W, S: W(range(3)).zip_longest(W(range(10, 15)), W(range(20, 24))),
    "zip_longest-fill": lambda W, S: W(range(5)).zip_longest(W("ab"), fill_value=-1),
    "zip_with_iter": lambda W, S: W([("a", 1), ("b", 2), ("c", 3)]).zip_with_iter(
        W([("c", 300), ("a", 100), ("b", 200)]), key_fn=itemgetter(0)
    ),
    "zip_with_iter-merge": lambda W, S: W([("a", 1), ("b", 2), ("c", 3)]).zip_with_iter(
        ref_datapipe=W([("c", 300), ("a", 100), ("b", 200), ("d", 4)]),
        key_fn=itemgetter(0),
        keep_key=True,
        merge_fn=merge,
        buffer_size=2,
    ),
    "zip_with_iter-ref_key_fn": lambda W, S: W(range(20)).zip_with_iter(
        W([(i % 7, i) for i in range(6, -1, -1)] + [(7 + i, i) for i in range(13)]),
        key_fn=lambda x: x,
        ref_key_fn=itemgetter(0),
        buffer_size=None,
    ),
    "zip_with_map": lambda W, S: W([("a", 1), ("b", 2), ("c", 3)]).zip_with_map(
        map_datapipe=S({"a": 100, "b": 200, "c": 300, "d": 400}),
        key_fn=itemgetter(0),
        merge_fn=merge,
    ),
    "zip_with_map-keep_key": lambda W, S: W(range(5)).zip_with_map(
        S(list("vwxyz")), key_fn=lambda x: 4 - x, keep_key=True
    ),
    "round_robin_demux": lambda W, S: W(range(11)).round_robin_demux(3),
    "round_robin_demux-one": lambda W, S: W(range(4)).round_robin_demux(1),
    "unzip": lambda W, S: W([(i, i + 10, i + 20) for i in range(4)]).unzip(3),
    "unzip-skip": lambda W, S: W([(i, i + 10, i + 20) for i in range(4)]).unzip(
        sequence_length=3, columns_to_skip=[1]
    ),
    "random_split": lambda W, S: W(range(10)).random_split(
        weights={"train": 0.5, "valid": 0.5}, seed=0
    ),
    "random_split-ints": lambda W, S: W(range(50)).random_split(
        {"a": 20, "b": 25, "c": 5}, seed=12, total_length=50
    ),
    "random_split-target": lambda W, S: W(range(30)).random_split(
        {"a": 0.2, "b": 0.3, "c": 0.5}, 7, target="c"
    ),
    "random_split-str-seed": lambda W, S: (
        W(range(30))
        .filter(lambda x: x % 3 != 0)
        .random_split({0: 1, 1: 2}, seed="split", total_length=20)
    ),
    "set_length": lambda W, S: W(range(10)).filter(lambda x: x % 2 == 1).set_length(3),
    "header-after-repeat": lambda W, S: W(range(10)).repeat(2).header(7),
    "to_iter_datapipe": lambda W, S: S(list("abcdef")).to_iter_datapipe(),
    "to_iter_datapipe-indices": lambda W, S: S({"x": 1, "y": 2, "z": 3}).to_iter_datapipe(
        ["z", "x"]
    ),
    "map-batch": lambda W, S: S(range(10)).map(add_one).batch(3).to_iter_datapipe(),
    "map-batch-drop_last": lambda W, S: S(range(10)).batch(3, drop_last=True).to_iter_datapipe(),
    "map-zip-concat": lambda W, S: (
        S(range(4)).zip(S("abcdef")).concat(S([(9, "z")])).to_iter_datapipe()
    ),
    "to_map_datapipe": lambda W, S: (
        W(range(10)).to_map_datapipe(square_pair).map(add_one).to_iter_datapipe()
    ),
    "to_map_datapipe-pairs": lambda W, S: (
        W([("b", 1), ("a", 2), ("b", 3)]).to_map_datapipe().to_iter_datapipe(["a", "b"])
    ),
}


def _elements(pipe: Any) -> Any:
    if isinstance(pipe, list):
        return [list(p) for p in pipe]
    return list(pipe)


def _length(pipe: Any) -> Any:
    try:
        return [len(p) for p in pipe] if isinstance(pipe, list) else len(pipe)
    except TypeError:
        return TypeError


@pytest.mark.parametrize("case", sorted(PIPES))
def test_same_elements_in_the_same_order(case: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _elements(PIPES[case](*SD)) == _elements(PIPES[case](*TD))


@pytest.mark.parametrize("case", sorted(PIPES))
def test_same_len(case: str) -> None:
    """len() is the same number, or a TypeError in both."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = _length(PIPES[case](*SD)), _length(PIPES[case](*TD))
    assert ours == theirs


LENGTHS: dict[str, Callable[[type], Any]] = {
    "wrapper": lambda W: W(range(7)),
    "wrapper-unsized": lambda W: W(iter_forever()),
    "map-shuffle": lambda W: W(range(7)).map(add_one).shuffle(),
    "filter": lambda W: W(range(7)).filter(bool),
    "batch": lambda W: W(range(7)).batch(3),
    "batch-drop_last": lambda W: W(range(7)).batch(3, drop_last=True),
    "header": lambda W: W(range(7)).header(3),
    "header-unknown": lambda W: W(range(7)).filter(bool).header(3),
    "cycle": lambda W: W(range(7)).cycle(2),
    "zip-concat": lambda W: W(range(7)).zip(W(range(3))).concat(W(range(2))),
    "mux": lambda W: W(range(7)).mux(W(range(3))),
    "unbatch": lambda W: W(range(7)).batch(2).unbatch(),
    "fork": lambda W: W(range(7)).fork(2)[1],
    "demux": lambda W: W(range(7)).demux(2, lambda x: x % 2)[0],
    "zip_longest": lambda W: W(range(7)).zip_longest(W(range(9))),
    "sharding_filter": lambda W: W(range(7)).sharding_filter(),
}


class iter_forever:  # noqa: N801 - a re-iterable without len()
    def __iter__(self) -> Any:
        return iter(range(3))


@pytest.mark.parametrize("case", sorted(LENGTHS))
def test_len_of_existing_ops(case: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _length(LENGTHS[case](sd.IterableWrapper)) == _length(
            LENGTHS[case](TDIterableWrapper)
        )


def test_in_batch_shuffle_keeps_each_batch() -> None:
    """Random orders differ between libraries; the batches hold the same elements."""
    ours = list(sd.IterableWrapper(range(20)).batch(6).in_batch_shuffle())
    theirs = list(TDIterableWrapper(range(20)).batch(6).in_batch_shuffle())
    assert [sorted(b) for b in ours] == [sorted(b) for b in theirs]
    assert len(sd.IterableWrapper(range(20)).batch(6).in_batch_shuffle()) == 4


def test_map_shuffle_is_a_permutation() -> None:
    ours = list(SequenceWrapper(range(20)).shuffle())
    assert sorted(ours) == sorted(TDSequenceWrapper(range(20)).shuffle()) == list(range(20))


def test_map_style_indexing() -> None:
    for W, S in (SD, TD):
        m = S(range(10)).map(add_one).batch(4)
        assert (len(m), m[2], m[0]) == (3, [9, 10], [1, 2, 3, 4])
        c = W(range(5)).to_map_datapipe(square_pair)
        assert (c[3], len(c)) == (9, 5)
        with pytest.raises(IndexError):
            c[11]


def test_fullsync_is_the_identity_in_one_process(tmp_path) -> None:
    """torchdata's FullSync needs an initialized process group; with one rank
    it passes elements through, as streamdag's does anywhere."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        theirs = list(TDIterableWrapper(range(6)).fullsync())
    finally:
        dist.destroy_process_group()
    assert list(sd.IterableWrapper(range(6)).fullsync(timeout=60)) == theirs
    assert len(sd.IterableWrapper(range(6)).fullsync()) == 6

"""The transforms of the torchdata drop-in, run under torchdata 0.9 and under
streamdag: the same elements in the same order (or the same error type)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

import streamdag as sd

with warnings.catch_warnings():  # torchdata 0.9 warns that its DataPipes are deprecated
    warnings.simplefilter("ignore")
    torchdata_iter = pytest.importorskip("torchdata.datapipes.iter")

TDIterableWrapper = torchdata_iter.IterableWrapper

Build = Callable[[Callable[[Any], Any]], Any]


def outcome(pipe: Any) -> tuple[str, Any]:
    """The elements, or the error's kind where the pipe fails."""
    try:
        return "ok", [plain(x) for x in pipe]
    except BufferError:
        return "error", BufferError
    except IndexError:
        return "error", IndexError
    except sd.NodeError as exc:  # streamdag names the node and chains the original
        return "error", type(exc.__cause__)


def plain(x: Any) -> Any:
    """Tensors as (dtype, values), torchdata's DataChunk as list: comparable."""
    if isinstance(x, torch.Tensor):
        return ("tensor", str(x.dtype), x.tolist())
    if isinstance(x, list):
        return [plain(v) for v in x]
    if isinstance(x, tuple):
        return tuple(plain(v) for v in x)
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    return x


def same(build: Build) -> list[Any]:
    """``build(wrapper)`` with torchdata's and streamdag's IterableWrapper:
    the same outcome; returns streamdag's elements."""
    expected = outcome(build(TDIterableWrapper))
    got = outcome(build(sd.IterableWrapper))
    assert got == expected
    return got[1]


def parity(x: int) -> int:
    return x % 2


def odd_or_none(x: int) -> int | None:
    return None if x % 3 == 0 else x % 2


NESTED = [[[0, 1], [2]], [[3, 4], [5]], [[6]], []]
RECORDS = [[(0, "a"), (1, "b")], [(2, "c")], [{"k": [1, 2]}, "str"]]


# -- unbatch ---------------------------------------------------------------
@pytest.mark.parametrize("level", [0, 1, 2, -1])
def test_unbatch_levels(level: int) -> None:
    same(lambda W: W(NESTED).unbatch(unbatch_level=level))


def test_unbatch_default_level_and_batch_round_trip() -> None:
    assert same(lambda W: W(range(7)).batch(3).unbatch()) == list(range(7))


@pytest.mark.parametrize("level", [1, -1])
def test_unbatch_keeps_tuples_dicts_and_strings_as_elements(level: int) -> None:
    assert same(lambda W: W(RECORDS).unbatch(level))[0] == (0, "a")


@pytest.mark.parametrize("data, level", [([(1, 2), (3, 4)], 1), ([[1, 2], [3]], 2), (NESTED, 3)])
def test_unbatch_past_the_depth_is_an_index_error(data: list, level: int) -> None:
    assert outcome(sd.IterableWrapper(data).unbatch(level))[1] is IndexError
    same(lambda W: W(data).unbatch(level))


def test_unbatch_level_below_minus_one_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        list(TDIterableWrapper(NESTED).unbatch(-2))
    with pytest.raises(ValueError, match="unbatch"):
        sd.IterableWrapper(NESTED).unbatch(-2)


# -- mux, mux_longest --------------------------------------------------------
@pytest.mark.parametrize("sizes", [(3, 5, 5), (5, 3), (4, 4), (5, 0, 2), (1, 7, 2)])
def test_mux_ends_with_the_last_complete_round(sizes: tuple[int, ...]) -> None:
    def build(W: Any) -> Any:
        first, *rest = [W(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)]
        return first.mux(*rest)

    assert len(same(build)) == len(sizes) * min(sizes)


@pytest.mark.parametrize("sizes", [(3, 5, 5), (5, 3), (4, 4), (5, 0, 2), (0, 0)])
def test_mux_longest_keeps_every_element(sizes: tuple[int, ...]) -> None:
    def build(W: Any) -> Any:
        first, *rest = [W(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)]
        return first.mux_longest(*rest)

    assert len(same(build)) == sum(sizes)


# -- fork, demux -------------------------------------------------------------
def test_fork_zip_and_concat() -> None:
    def zipped(W: Any) -> Any:
        a, b, c = W(range(20)).fork(3)
        return a.zip(b.map(parity), c)

    same(zipped)

    def sequential(W: Any) -> Any:
        a, b = W(range(20)).fork(2)
        return a.concat(b)

    same(sequential)


@pytest.mark.parametrize("size", [0, 4, 5, 6, -1])
def test_fork_buffer_overflow_is_a_buffer_error(size: int) -> None:
    """Read one output to the end before the other: it leads by 5."""

    def build(W: Any) -> Any:
        a, b = W(range(5)).fork(2, buffer_size=size)
        return a.concat(b)

    same(build)


def test_fork_unbounded_buffer_holds_past_the_default() -> None:
    def build(W: Any) -> Any:
        a, b = W(range(2500)).fork(num_instances=2, buffer_size=-1)
        return a.concat(b)

    with warnings.catch_warnings():  # torchdata warns about the unbounded buffer
        warnings.simplefilter("ignore")
        assert len(same(build)) == 5000


def test_fork_default_buffer_is_1000() -> None:
    def build(n: int) -> Build:
        def pipe(W: Any) -> Any:
            a, b = W(range(n)).fork(2)
            return a.concat(b)

        return pipe

    assert len(same(build(1000))) == 2000
    same(build(1001))


def test_fork_of_one_is_the_pipe_itself() -> None:
    td, pipe = TDIterableWrapper(range(3)), sd.IterableWrapper(range(3))
    assert td.fork(1) is td and pipe.fork(1) is pipe
    assert isinstance(td.fork(2), list) and isinstance(pipe.fork(2), list)
    same(lambda W: W(range(3)).fork(1).map(parity))


@pytest.mark.parametrize("how", ["shallow", "deep"])
def test_fork_copy(how: str) -> None:
    def build(W: Any) -> Any:
        a, b = W([[1, [2]], [3, [4]]]).fork(2, copy=how)
        return a.zip(b)

    same(build)
    pairs = list(build(sd.IterableWrapper))
    assert all(x is not y and (x[1] is y[1]) == (how == "shallow") for x, y in pairs)


def test_demux_routes_and_drops_none() -> None:
    def build(W: Any) -> Any:
        even, odd = W(range(20)).demux(2, parity)
        return even.concat(odd)

    same(build)

    def dropping(W: Any) -> Any:
        even, odd = W(range(20)).demux(num_instances=2, classifier_fn=odd_or_none, drop_none=True)
        return odd.zip(even)

    same(dropping)


@pytest.mark.parametrize("size", [0, 3, 4, 5, -1])
def test_demux_buffer_counts_every_waiting_element(size: int) -> None:
    """Output 0 is read first: the other two hold 2 + 2 elements meanwhile."""

    def build(W: Any) -> Any:
        a, b, c = W(range(6)).demux(3, lambda_free_mod3, buffer_size=size)
        return a.concat(b, c)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        same(build)


def lambda_free_mod3(x: int) -> int:
    return x % 3


def test_demux_classifier_out_of_range_is_a_value_error() -> None:
    def build(W: Any) -> Any:
        return W(range(4)).demux(2, lambda_free_mod3)[0]

    with pytest.raises(ValueError):
        list(build(TDIterableWrapper))
    assert outcome(build(sd.IterableWrapper))[1] is ValueError


# -- collate -----------------------------------------------------------------
SAMPLES = [{"x": [i, i + 1], "y": float(i), "t": (i, str(i))} for i in range(6)]


def total(batch: list[int]) -> int:
    return sum(batch)


def test_collate_default() -> None:
    same(lambda W: W(SAMPLES).batch(4).collate())
    same(lambda W: W([(i, float(i)) for i in range(5)]).batch(2).collate())


def test_collate_conversion_and_collate_fn() -> None:
    same(lambda W: W(range(7)).batch(3).collate(total))
    same(lambda W: W(range(7)).batch(3).collate(conversion=total))
    same(lambda W: W(range(7)).batch(3).collate(collate_fn=total))
    same(lambda W: W(range(7)).batch(3).collate(conversion=len, collate_fn=total))


# -- shuffle -----------------------------------------------------------------
def test_set_shuffle_false_keeps_the_order() -> None:
    assert same(lambda W: W(range(50)).shuffle().set_shuffle(False)) == list(range(50))
    # the tail of every torchtext dataset
    same(lambda W: W(range(50)).shuffle().set_shuffle(False).sharding_filter())
    same(lambda W: W([[1, 2], [3]]).shuffle(unbatch_level=1).set_shuffle(False))


def test_set_shuffle_true_shuffles_again() -> None:
    pipe = sd.IterableWrapper(range(50)).shuffle(buffer_size=100).set_shuffle(False)
    back = pipe.set_shuffle()
    got = sd.DataLoader2(back, seed=0)
    assert sorted(got) == list(range(50)) and list(got) != list(range(50))


def test_set_seed_fixes_the_order() -> None:
    td = TDIterableWrapper(range(50)).shuffle().set_seed(7)
    assert sorted(td) == list(range(50))
    pipe = sd.IterableWrapper(range(50)).shuffle().set_seed(7)
    assert sorted(pipe) == list(range(50))
    assert list(pipe) == list(pipe) != list(range(50))


# -- cycle -------------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 1, 3])
def test_cycle_repeats_concat_header_mux_and_cycle(count: int) -> None:
    same(lambda W: W(range(3)).concat(W(range(10, 12))).cycle(count))
    same(lambda W: W(range(5)).header(3).cycle(count))
    same(lambda W: W(range(3)).mux(W(range(10, 15))).cycle(count))
    same(lambda W: W(range(3)).mux_longest(W(range(10, 15))).cycle(count))
    same(lambda W: W(range(3)).cycle(2).cycle(count))
    same(lambda W: W(range(7)).batch(3).unbatch().cycle(count))


def test_endless_cycle_of_a_concat() -> None:
    same(lambda W: W(range(2)).concat(W("ab")).cycle().header(11))

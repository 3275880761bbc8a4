"""The torchdata transform names streamdag adds: bad input fails early with
an error naming the op, failures while running name the node and keep
torchdata's exception types as the cause, and the map-style pipes save."""

from __future__ import annotations

import pytest

import streamdag as sd
from streamdag.datapipes.map import SequenceWrapper
from streamdag.errors import NodeError, ParamError
from tests import test_graph_io_fns as fns


def src(n: int = 10) -> sd.DataPipe[int]:
    return sd.IterableWrapper(range(n))


@pytest.mark.parametrize(
    ("build", "error", "words"),
    [
        (lambda: src().repeat(1), ValueError, "repeat: the number of repetition must be > 1"),
        (lambda: src().round_robin_demux(0), ValueError, "round_robin_demux: num_instances"),
        (lambda: src().unzip(2, columns_to_skip=[0, 1]), RuntimeError, "filtered out"),
        (lambda: src().random_split({"a": 1}, seed=0, target="b"), KeyError, "target=b"),
        (lambda: src().filter(fns.is_even).random_split({"a": 1}, 0), TypeError, "total_length"),
        (lambda: src().random_split({"a": -1}, 0), ParamError, "random_split: weights"),
        (lambda: src().zip_with_iter([1, 2], key_fn=fns.identity), ParamError, "zip_with_iter"),
        (lambda: src().zip_with_iter(src(), key_fn=3), ParamError, "zip_with_iter: key_fn"),
        (
            lambda: src().zip_with_iter(src(), fns.identity, buffer_size=0),
            ParamError,
            "buffer_size must be None or a positive int",
        ),
        (lambda: src().zip_with_map(5, key_fn=fns.identity), ParamError, "zip_with_map"),
        (lambda: src().slice({"a": 1}), ParamError, "slice: index"),
        (lambda: src().drop({1}), ParamError, "drop: indices"),
        (lambda: src().rows2columnar("abc"), ParamError, "rows2columnar: column_names"),
        (lambda: src().set_length(-1), ParamError, "set_length: length"),
        (lambda: src().enumerate("1"), ParamError, "enumerate: starting_index"),
    ],
)
def test_bad_arguments_fail_when_the_pipe_is_built(build, error, words) -> None:
    with pytest.raises(error, match=words):
        build()


@pytest.mark.parametrize(
    ("build", "cause", "words"),
    [
        (lambda: src(3).add_index(), NotImplementedError, "only rows or batches of type dict"),
        (
            lambda: src(3).zip_with_map({0: "a"}, key_fn=fns.identity),
            KeyError,
            "key_fn maps 1 to 1, which is not a valid key",
        ),
        (
            lambda: src(3).zip_with_iter(src(2), key_fn=fns.identity),
            BufferError,
            "No matching key can be found",
        ),
        (
            lambda: src(3).zip_with_iter(sd.IterableWrapper([1, 1, 0]), key_fn=fns.identity),
            ValueError,
            "Duplicate key",
        ),
        (lambda: sd.DataPipe.zip(*src(3).unzip(2)), TypeError, "not subscriptable"),
    ],
)
def test_failures_while_running_name_the_node(build, cause, words) -> None:
    pipe = build()
    with pytest.raises(NodeError) as info:
        list(pipe)
    assert isinstance(info.value.__cause__, cause)
    assert words in str(info.value.__cause__)
    assert info.value.op in {n.op for n in sd.Graph(pipe)}


def test_len_is_a_type_error_where_unknown_and_set_length_sets_it() -> None:
    unknown = src().filter(fns.is_even)
    with pytest.raises(TypeError, match="filter"):
        len(unknown)
    assert bool(unknown)  # truthy all the same
    assert list(unknown) == [0, 2, 4, 6, 8]  # list() does not trip over len()
    assert len(unknown.set_length(5).enumerate()) == 5
    assert [len(p) for p in src(11).round_robin_demux(3)] == [4, 4, 3]
    assert [len(p) for p in src(11).random_split({"a": 6, "b": 5}, seed=1)] == [6, 5]


def test_unlimited_buffer_and_overflow() -> None:
    a, b = src(3000).round_robin_demux(2, buffer_size=-1)
    assert list(a) == list(range(0, 3000, 2)) and list(b) == list(range(1, 3000, 2))
    first, second = src(30).map(fns.pair).unzip(2, buffer_size=5)
    with pytest.raises(BufferError, match="buffer_size=5"):  # as torchdata's fork
        list(first.concat(second))


def test_zip_with_iter_drops_the_oldest_beyond_buffer_size() -> None:
    """As torchdata: the buffer holds buffer_size + 1, then drops in FIFO order, with a warning."""
    ref = sd.IterableWrapper([4, 3, 2, 1, 0])
    pipe = sd.IterableWrapper([0, 4]).zip_with_iter(ref, key_fn=fns.identity, buffer_size=2)
    with (
        pytest.warns(UserWarning, match="Buffer reaches the upper limit"),
        pytest.raises(NodeError) as info,
    ):
        list(pipe)
    assert isinstance(info.value.__cause__, BufferError)


def test_in_batch_shuffle_is_seeded_per_epoch() -> None:
    pipe = src(40).batch(8).in_batch_shuffle()
    with sd.DataLoader2(pipe, seed=3) as a, sd.DataLoader2(pipe, seed=3) as b:
        first, again = [list(a) for _ in range(2)], [list(b) for _ in range(2)]
    assert first == again and first[0] != first[1]
    assert [sorted(x) for x in first[0]] == [list(range(i, i + 8)) for i in range(0, 40, 8)]


def test_map_style_pipes_over_plain_data_save_and_load(tmp_path) -> None:
    """A SequenceWrapper's list or dict goes into the graph as data."""
    table = SequenceWrapper({"even": 0, "odd": 1})
    pipe = src(6).map(fns.parity).zip_with_map(["even", "odd"], key_fn=fns.identity)
    sd.save(SequenceWrapper(list("abc")).map(fns.double).to_iter_datapipe(), tmp_path / "m.json")
    loaded = sd.load(tmp_path / "m.json", trusted_modules=["tests.test_graph_io_fns"])
    assert list(loaded) == ["aa", "bb", "cc"]
    joined = src(4).zip_with_map(table, key_fn=fns.parity_name)
    sd.save(joined, tmp_path / "j.sdag")
    again = sd.load(tmp_path / "j.sdag", trusted_modules=["tests.test_graph_io_fns"])
    assert list(again) == list(joined) == [(0, 0), (1, 1), (2, 0), (3, 1)]
    assert list(pipe) == [(0, "even"), (1, "odd")] * 3


def test_sequence_wrapper_copies_unless_told_not_to() -> None:
    data = [[1], [2]]
    copied, shared = SequenceWrapper(data), SequenceWrapper(data, deepcopy=False)
    data[0].append(9)
    assert copied[0] == [1] and shared[0] == [1, 9]

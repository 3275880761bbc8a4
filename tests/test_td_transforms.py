"""The transforms changed for the torchdata drop-in: clear errors for bad
input, and exact resume of the new params under every service."""

from __future__ import annotations

import pytest

import streamdag as sd
from streamdag.testing import SERVICES, assert_resumes
from tests import test_graph_io_fns as fns
from tests.support.services import SERVICE_PARAMS


def src(n: int = 12) -> sd.DataPipe[int]:
    return sd.IterableWrapper(range(n))


# -- bad input -------------------------------------------------------------
def test_unbatch_level_is_checked_at_construction() -> None:
    with pytest.raises(sd.ParamError, match="unbatch: unbatch_level must be an int >= -1"):
        src().batch(2).unbatch(-2)


def test_unbatching_a_tuple_names_the_node_and_the_element() -> None:
    pipe = sd.IterableWrapper([[(1, 2)], (3, 4)]).unbatch(name="flat")
    with pytest.raises(
        sd.NodeError,
        match=r"unbatch node 'flat'.*unbatch_level 1 exceeds "
        r"the depth of the data: found tuple \(3, 4\)",
    ) as err:
        list(pipe)
    assert isinstance(err.value.__cause__, IndexError)


@pytest.mark.parametrize("size", [-2, 1.5, None])
def test_fork_and_demux_buffer_size_is_checked(size: object) -> None:
    with pytest.raises(sd.ParamError, match="fork: buffer_size must be an int"):
        src().fork(2, buffer_size=size)  # type: ignore[arg-type]
    with pytest.raises(sd.ParamError, match="demux: buffer_size must be an int"):
        src().demux(2, fns.parity, buffer_size=size)  # type: ignore[arg-type]


def test_fork_copy_is_checked() -> None:
    with pytest.raises(sd.ParamError, match="fork: copy must be one of None, 'shallow', 'deep'"):
        src().fork(2, copy="full")  # type: ignore[arg-type]


def test_buffer_overflow_is_a_buffer_error_naming_the_node() -> None:
    a, b = src(10).fork(2, buffer_size=3, name="split")
    with pytest.raises(
        sd.BufferOverflowError,
        match=r"fork node 'split': output 1 fell more "
        r"than buffer_size=3",
    ) as err:
        list(a.concat(b))
    assert isinstance(err.value, BufferError) and isinstance(err.value, sd.StreamdagError)


def test_collate_refuses_dataframe_conversions() -> None:
    with pytest.raises(sd.ParamError, match="collate: a dict of per-column conversions"):
        src().batch(2).collate({"x": len})


def test_collate_checks_its_function() -> None:
    with pytest.raises(sd.ParamError, match="collate: fn must be callable"):
        src().batch(2).collate(collate_fn=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("method, arg", [("set_shuffle", False), ("set_seed", 3)])
def test_set_shuffle_and_set_seed_need_a_shuffle(method: str, arg: object) -> None:
    with pytest.raises(sd.ParamError, match=f"{method}: applies to a shuffle pipe, got map node"):
        getattr(src().shuffle().map(fns.double), method)(arg)


def test_set_seed_checks_the_seed() -> None:
    with pytest.raises(sd.ParamError, match="shuffle: seed must be an int"):
        src().shuffle().set_seed("7")  # type: ignore[arg-type]


# -- behaviour ---------------------------------------------------------------
def test_set_shuffle_returns_a_new_pipe_and_keeps_the_name() -> None:
    shuffled = src().shuffle(buffer_size=5, name="shuf")
    plain = shuffled.set_shuffle(False)
    assert plain.node.name == "shuf" and plain.node.params["buffer_size"] == 5
    assert shuffled.node.params["enabled"] and not plain.node.params["enabled"]
    assert list(plain) == list(range(12))


def test_set_seed_ignores_the_loader_seed_and_varies_by_epoch() -> None:
    pipe = src(40).shuffle().set_seed(5)
    one, two = sd.DataLoader2(pipe, seed=1), sd.DataLoader2(pipe, seed=2)
    first = list(one)
    assert first == list(two) and sorted(first) == list(range(40))
    assert list(one) != first  # the next epoch draws another order


def test_set_shuffle_and_set_seed_survive_save_and_load(tmp_path) -> None:
    pipe = src().shuffle().set_seed(4).set_shuffle(False)
    sd.save(pipe, tmp_path / "g.json")
    loaded = sd.load(tmp_path / "g.json")
    assert dict(loaded.node.params) == dict(pipe.node.params)
    assert list(loaded) == list(range(12))


def test_nested_cycles_repeat() -> None:
    assert list(src(2).cycle(2).cycle(3)) == [0, 1] * 6


# -- exact resume of what the drop-in added ------------------------------------
RESUMES = {
    "set_shuffle_false": lambda: src(20).shuffle(buffer_size=4).set_shuffle(False).map(fns.double),
    "set_seed": lambda: src(30).shuffle(buffer_size=7).set_seed(11),
    "shuffle_unbatch_level": lambda: src(20).batch(3).shuffle(buffer_size=5, unbatch_level=1),
    "unbatch_all_levels": lambda: src(20).batch(2).batch(3).unbatch(-1),
    "mux_partial_round": lambda: src(7).mux(src(3).map(fns.double), src(5)),
    "mux_after_demux": lambda: mux_of_demux(),
    "mux_many_rounds": lambda: src(80).mux(src(75)),
    "concat_cycle": lambda: src(3).concat(src(2), src(4)).cycle(2),
    "header_cycle": lambda: src(6).header(4).cycle(3),
    "nested_cycle": lambda: src(3).cycle(2).cycle(2),
    "mux_cycle": lambda: src(4).mux(src(3)).cycle(2),
    "unbounded_fork": lambda: unbounded_fork(),
}


def mux_of_demux() -> sd.DataPipe[int]:
    even, odd = src(40).demux(2, fns.parity, buffer_size=2)
    return even.mux(odd)


def unbounded_fork() -> sd.DataPipe[int]:
    a, b = src(30).fork(2, buffer_size=-1)
    return a.concat(b)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("service", SERVICE_PARAMS)
@pytest.mark.parametrize("case", sorted(RESUMES))
def test_resumes_exactly(case: str, service: str) -> None:
    assert assert_resumes(RESUMES[case](), reading_service=SERVICES[service])


def test_mux_many_rounds_resumes_at_every_stop() -> None:
    """Past several checkpoints of the inputs (every 32 rounds)."""
    assert_resumes(src(80).mux(src(75)), stops=list(range(0, 151, 7)))

"""Errors name their node and keep the original traceback; abandoned
iterations leak no threads."""

from __future__ import annotations

import gc
import threading
import traceback
from itertools import islice

import pytest

import streamdag as sd


def explode_on_three(x):
    if x == 3:
        raise ValueError(f"bad sample {x}")
    return x


def test_user_function_error_names_op_node_and_keeps_traceback():
    dp = sd.IterableWrapper(range(5)).map(explode_on_three, name="check").batch(2)
    with pytest.raises(sd.NodeError) as info:
        list(dp)
    err = info.value
    assert "map node 'check' raised ValueError: bad sample 3" in str(err)
    assert (err.op, err.name) == ("map", "check")
    assert isinstance(err.__cause__, ValueError)
    frames = traceback.extract_tb(err.__cause__.__traceback__)
    assert frames[-1].name == "explode_on_three"


def test_error_in_builtin_function_is_attributed():
    dp = sd.IterableWrapper(["1", "x"]).map(int, name="parse")
    with pytest.raises(sd.NodeError, match="map node 'parse' raised ValueError"):
        list(dp)


def test_error_is_attributed_to_the_right_one_of_several_nodes():
    dp = (sd.IterableWrapper(range(5)).map(abs, name="first").filter(bool, name="keep")
          .map(explode_on_three, name="second"))
    with pytest.raises(sd.NodeError, match="map node 'second'"):
        list(dp)


def test_error_in_prefetch_thread_reaches_consumer_with_node():
    dp = sd.IterableWrapper(range(5)).map(explode_on_three, name="late").prefetch(2)
    with pytest.raises(sd.NodeError, match="map node 'late' raised ValueError"):
        list(dp)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("streamdag-prefetch")]


def test_abandoned_prefetch_iteration_leaks_no_thread():
    dp = sd.IterableWrapper(range(10_000)).prefetch(4).map(abs).prefetch(2)
    it = iter(dp)
    assert list(islice(it, 3)) == [0, 1, 2]
    assert prefetch_threads()
    del it
    gc.collect()
    assert prefetch_threads() == []


def test_new_epoch_tears_down_previous_threads():
    loader = sd.DataLoader2(sd.IterableWrapper(range(1000)).prefetch(3))
    first = iter(loader)
    next(first)
    second = iter(loader)
    assert list(second) == list(range(1000))
    assert prefetch_threads() == [] or all(not t.is_alive() for t in prefetch_threads())
    loader.shutdown()
    loader.shutdown()  # idempotent
    del first
    gc.collect()
    assert prefetch_threads() == []


def test_restarting_iteration_after_error_works():
    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("transient")
        return x

    loader = sd.DataLoader2(sd.IterableWrapper(range(4)).map(flaky), seed=0)
    with pytest.raises(sd.NodeError):
        list(loader)
    assert list(loader) == [0, 1, 2, 3]


def test_load_state_dict_rejects_foreign_data():
    loader = sd.DataLoader2(sd.IterableWrapper(range(3)))
    with pytest.raises(sd.ResumeError, match="not a DataLoader2 state dict"):
        loader.load_state_dict({"epoch": 1})
    with pytest.raises(sd.ResumeError, match="version 99 is not supported"):
        loader.load_state_dict({"format": "streamdag-loader-state", "version": 99})

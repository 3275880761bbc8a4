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
    dp = (
        sd.IterableWrapper(range(5))
        .map(abs, name="first")
        .filter(bool, name="keep")
        .map(explode_on_three, name="second")
    )
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


def samples_of(url, classes):
    """webdataset-style samples, as ``webdataset()`` makes them from a shard."""
    return [{"__key__": f"{i:06d}", "__url__": url, "cls": c} for i, c in enumerate(classes)]


def check_class(sample):
    if not isinstance(sample["cls"], int):
        raise ValueError(f"bad class {sample['cls']!r}")
    return sample


def test_map_error_names_the_sample_key_and_its_archive():
    dp = sd.IterableWrapper(samples_of("/data/shard-3.tar", [0, 1, "x", 3])).map(
        check_class, name="check"
    )
    with pytest.raises(sd.NodeError) as info:
        list(dp)
    assert str(info.value) == (
        "map node 'check' raised ValueError: bad class 'x' "
        "(on sample '000002' of '/data/shard-3.tar')"
    )


def test_error_names_the_path_of_a_path_and_data_pair():
    dp = sd.IterableWrapper([("/data/a.txt", "1"), ("/data/b.txt", "x")]).map(
        lambda pair: int(pair[1]), name="parse"
    )
    with pytest.raises(
        sd.NodeError,
        match=r"map node 'parse' raised ValueError: .* "
        r"\(on element \('/data/b.txt', \.\.\.\)\)$",
    ):
        list(dp)


def test_default_collate_error_names_the_collate_node_and_the_batch():
    dp = sd.IterableWrapper([[1, 2], [1, 2, 3]]).batch(2).collate(name="coll")
    with pytest.raises(sd.NodeError) as info:
        list(dp)
    err = info.value
    assert (err.op, err.name) == ("collate", "coll")
    assert str(err) == (
        "collate node 'coll' raised RuntimeError: each element in list of "
        "batch should be of equal size (on a list of 2: [1, 2], [1, 2, 3])"
    )
    assert isinstance(err.__cause__, RuntimeError)


def test_collate_error_names_the_samples_of_the_batch():
    rows = samples_of("/data/shard-0.tar", [[0], [1], [2, 2], [3]])
    dp = sd.IterableWrapper(rows).batch(4).collate(name="coll")
    with pytest.raises(sd.NodeError) as info:
        list(dp)
    assert str(info.value).endswith(
        "(on a list of 4: sample '000000' of '/data/shard-0.tar', sample '000001' of "
        "'/data/shard-0.tar', sample '000002' of '/data/shard-0.tar', ...)"
    )


def add(a, b):
    return a + b


@pytest.mark.parametrize("tail", ["none", "batch", "map_prefetch"])
def test_function_called_with_the_wrong_arguments_names_its_node(tail):
    """The call itself fails, so no frame of the function is on the traceback."""
    dp = sd.IterableWrapper(range(3)).map(lambda a, b: a + b, name="pair")
    dp = {"none": dp, "batch": dp.batch(2), "map_prefetch": dp.map(abs).prefetch(2)}[tail]
    with pytest.raises(sd.NodeError) as info:
        list(dp)
    assert (info.value.op, info.value.name) == ("map", "pair")
    assert str(info.value) == (
        "map node 'pair' raised TypeError: test_function_called_with_"
        "the_wrong_arguments_names_its_node.<locals>.<lambda>() missing 1 "
        "required positional argument: 'b' (on element 0)"
    )


def test_filter_and_column_functions_with_the_wrong_arguments_name_their_node():
    with pytest.raises(sd.NodeError, match=r"^filter node 'keep' raised TypeError: .*takes 0 "):
        list(sd.IterableWrapper(range(3)).filter(lambda: True, name="keep").batch(2))
    dp = sd.IterableWrapper([(1, 2, 3)]).map(add, input_col=[0, 1, 2], name="cols").batch(2)
    with pytest.raises(
        sd.NodeError,
        match=r"^map node 'cols' raised TypeError: add\(\) takes 2 "
        r"positional arguments but 3 were given",
    ):
        list(dp)

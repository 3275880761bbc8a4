"""Saving and loading graphs: every op round-trips in both encodings, the
loaded pipeline yields the original's elements, and function references,
tagged values and names survive."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

import streamdag as sd
from streamdag.core.ops import TRANSFORMS
from streamdag.datapipes.iter import Sampler as sampler
from streamdag.graph_io import FunctionRef, dumps, loads_node
from streamdag.testing import assert_round_trips
from tests import test_graph_io_fns as fns

TRUST = ["tests.test_graph_io_fns"]


def src(n: int = 12, name: str | None = None) -> sd.DataPipe[int]:
    return sd.IterableWrapper(range(n), name=name)


def _fork_zip() -> sd.DataPipe[Any]:
    a, b = src().fork(2, buffer_size=20, name="f")
    return a.map(fns.double).zip(b)


def _demux_concat() -> sd.DataPipe[Any]:
    even, odd = src().demux(2, fns.parity, buffer_size=20, name="d")
    return even.concat(odd)


# One pipeline per built-in op (the op named is in it, with non-default params).
PIPELINES: dict[str, Callable[[], sd.DataPipe[Any]]] = {
    "iterable_wrapper": lambda: sd.IterableWrapper([(1, "a"), (2, "b"), {"k": [1.5, None]}]),
    "map": lambda: src().map(fns.double).map(fns.jitter, rng=True),
    "filter": lambda: src().filter(fns.is_even),
    "flatmap": lambda: src().flatmap(fns.pair),
    "batch": lambda: src().batch(5, drop_last=True),
    "unbatch": lambda: src().batch(3).batch(2).unbatch(unbatch_level=2),
    "collate": lambda: src().batch(4).collate(),
    "shuffle": lambda: src(30).shuffle(buffer_size=7),
    "sharding_filter": lambda: src().shuffle(4).sharding_filter().map(fns.double),
    "header": lambda: src().header(5),
    "cycle": lambda: src(4).concat(src(3)).shuffle(buffer_size=3).cycle(3),
    "zip": lambda: src().zip(src(5)),
    "concat": lambda: src(3).concat(src(4), src(2)),
    "mux": lambda: src(6).mux(src(9).map(fns.double)),
    "fork": _fork_zip,
    "branch": _fork_zip,
    "demux": _demux_concat,
    "sample_multiplexer": lambda: sd.SampleMultiplexer(
        {src(10): 0.3, src(20).map(fns.double): 0.7}
    ),
    "prefetch": lambda: src().prefetch(3),
    "pin_memory": lambda: src().pin_memory("cuda:0", fns.with_device, buffer_size=3),
    "to_device": lambda: src().batch(3).collate().to_device("cpu", buffer_size=3),
    "in_memory_cache": lambda: src().in_memory_cache(max_items=100),
    # torchdata's remaining transform names
    "enumerate": lambda: src().enumerate(5),
    "add_index": lambda: src().map(fns.as_row).add_index("i"),
    "in_batch_shuffle": lambda: src(30).batch(4).in_batch_shuffle(),
    "slice": lambda: src().map(fns.pair).slice(1),
    "drop": lambda: src().map(fns.pair).drop(0),
    "flatten": lambda: src().map(fns.pair).batch(2).flatten(),
    "rows2columnar": lambda: src().map(fns.pair).batch(5).rows2columnar(["a", "b"]),
    "lines_to_paragraphs": lambda: src(40).map(fns.file_line).lines_to_paragraphs(),
    "repeat": lambda: src(8).repeat(3),
    "zip_longest": lambda: src(5).zip_longest(src(9), fill_value=-1),
    "zip_with_iter": lambda: src(30).zip_with_iter(
        src(30).shuffle(6), key_fn=fns.identity, buffer_size=40
    ),
    "zip_with_map": lambda: src().zip_with_map(["even", "odd"], key_fn=fns.parity),
    "round_robin_demux": lambda: sd.DataPipe.zip(*src(13).round_robin_demux(3)),
    "unzip": lambda: sd.DataPipe.zip(*src().map(fns.pair).unzip(2)),
    "random_split": lambda: src(30).random_split({"a": 20, "b": 10}, seed=3, target="b"),
    "fullsync": lambda: src().fullsync(),
    "set_length": lambda: src().filter(fns.is_even).set_length(6),
    "mux_longest": lambda: src(3).mux_longest(src(7).map(fns.double), src(5)),
    # grouping (torchdata's Grouper and MaxTokenBucketizer)
    "groupby": lambda: src(30).groupby(
        fns.mod3, keep_key=True, buffer_size=5, group_size=3, guaranteed_group_size=1
    ),
    "max_token_bucketize": lambda: src(40).max_token_bucketize(
        8, len_fn=fns.size_of, max_len=4, buffer_size=6
    ),
    # text and LLM: packing and padding
    "pack": lambda: sd.IterableWrapper(fns.TOKEN_DOCS).pack(
        8, strategy="bfd", buffer_size=5, eos_id=1
    ),
    "pad_collate": lambda: (
        sd.IterableWrapper(fns.TOKEN_DOCS)
        .batch(3)
        .pad_collate(padding_value=-1, pad_to_multiple_of=4)
    ),
    # torchdata's function-applying names
    "map_batches": lambda: src(20).map(fns.pair).map_batches(fns.with_size, 3, input_col=1),
    "threadpool_map": lambda: (
        src(20)
        .map(fns.pair)
        .threadpool_map(fns.double, input_col=0, output_col=-1, scheduled_tasks=4, max_workers=2)
    ),
    "shuffled_flatmap": lambda: src(30).shuffled_flatmap(fns.below, buffer_size=3),
    "shard_expand": lambda: sd.IterableWrapper(
        ["s-{00..03}.tar", "t{1..2}-{8..10}"]
    ).shard_expand(),
    "async_map_batches": lambda: (
        src(20)
        .map(fns.pair)
        .async_map_batches(fns.later_double, 3, input_col=1, output_col=-1, max_concurrency=2)
    ),
    "sampler": lambda: sampler(src(10), fns.random_sampler, sampler_kwargs={"num_samples": 7}),
}


def test_every_builtin_op_has_a_pipeline() -> None:
    """The table above covers every transform op, but those whose example
    needs files (tokenize: a tokenizer file), which test_graph_io_ops.OPS has."""
    from tests.test_graph_io_ops import OPS  # it imports this module

    builtin = {spec.name for spec in TRANSFORMS}
    covered = set(PIPELINES) | set(OPS)
    assert builtin <= covered, sorted(builtin - covered)


@pytest.mark.parametrize("op", sorted(PIPELINES))
def test_every_op_round_trips(op: str) -> None:
    """Both encodings give back the same document and the same elements for a seed."""
    pipe = PIPELINES[op]()
    assert any(n.op == op for n in sd.Graph(pipe))
    assert_round_trips(pipe, TRUST, seed=3)


def test_loaded_graph_keeps_ids_names_and_structure(tmp_path) -> None:
    """Ids, names, params and the sharing of fork hubs are as saved."""
    pipe = _fork_zip()
    path = tmp_path / "g.sdag"
    sd.save(pipe, path)
    loaded = sd.load(path, trusted_modules=TRUST)
    before, after = sd.Graph(pipe), sd.Graph(loaded)
    assert [(n.id, n.op, n.name, [i.id for i in n.inputs]) for n in before] == [
        (n.id, n.op, n.name, [i.id for i in n.inputs]) for n in after
    ]
    assert after.find(name="f.0").inputs[0] is after.find(name="f.1").inputs[0]
    assert after.find(op="map").params["fn"] is fns.double


@pytest.mark.parametrize("suffix", [".sdag", ".json"])
def test_save_load_files_and_multiple_epochs(tmp_path, suffix: str) -> None:
    """sd.save/sd.load through a real file give the same epochs for the same seed."""
    pipe = src(40).shuffle(8, name="shuf").map(functools.partial(fns.scale, factor=3))
    path = tmp_path / f"graph{suffix}"
    sd.save(pipe, path)
    loaded = sd.load(path, trusted_modules=TRUST)
    with sd.DataLoader2(pipe, seed=11) as a, sd.DataLoader2(loaded, seed=11) as b:
        assert [list(a) for _ in range(2)] == [list(b) for _ in range(2)]
    if suffix == ".json":
        assert json.loads(path.read_text())["format"] == "streamdag-graph"
    else:
        assert msgpack.unpackb(path.read_bytes())["version"] == 1


def test_reading_services_agree_after_round_trip() -> None:
    """Through the multiprocess service too, when it exists."""
    service = getattr(sd, "MultiProcessingReadingService", None)
    if service is None:
        pytest.skip("sd.MultiProcessingReadingService is not built yet")
    pipe = src(20).shuffle(5).sharding_filter().map(fns.double)
    assert_round_trips(
        pipe, TRUST, seed=5, epochs=1, reading_service=lambda: service(num_workers=2)
    )


def test_json_file_is_the_documented_layout() -> None:
    """The JSON text is exactly the format of DESIGN.md, readable by any JSON tool."""
    a = sd.IterableWrapper([1, 2], name="src")
    pipe = sd.DataPipe(
        sd.Node("batch", {"batch_size": 2, "drop_last": False}, (a.node,), id="b1", name="batches")
    )
    doc = json.loads(dumps(pipe, "json"))
    assert doc == {
        "format": "streamdag-graph",
        "version": 1,
        "nodes": [
            {
                "id": a.node.id,
                "op": "iterable_wrapper",
                "params": {"iterable": [1, 2], "deepcopy": True},
                "inputs": [],
                "name": "src",
            },
            {
                "id": "b1",
                "op": "batch",
                "params": {"batch_size": 2, "drop_last": False},
                "inputs": [a.node.id],
                "name": "batches",
            },
        ],
        "output": "b1",
    }


# -- values -------------------------------------------------------------------

VALUES = [
    None,
    True,
    0,
    -(2**63),
    2**64 - 1,
    1.5,
    "text",
    "",
    [1, [2, [3]]],
    (1, (2, "x")),
    (),
    {"a": 1, "b": [None]},
    {1: "one", (2, 3): "pair", "s": "str"},
    {},
    b"\x00\xff",
    range(3, 20, 4),
    range(0),
    {"ref": "os:system"},
    {"tuple": [1]},
]


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_param_values_round_trip_exactly(fmt: str, value: Any) -> None:
    """Tuples stay tuples, dict keys keep their types, and a user's dict that looks
    like a function reference stays a dict."""
    node = loads_node(dumps(sd.IterableWrapper([value]), fmt))
    got = node.params["iterable"][0]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_non_finite_floats_round_trip(fmt: str) -> None:
    """nan and infinities are tagged (JSON has no literal for them)."""
    got = loads_node(dumps(sd.IterableWrapper([math.inf, -math.inf, math.nan]), fmt))
    values = got.params["iterable"]
    assert values[:2] == [math.inf, -math.inf] and math.isnan(values[2])
    if fmt == "json":
        assert b'{"float": "inf"}' in dumps(sd.IterableWrapper([math.inf]), fmt)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ({1, 2}, "builtins.set"),
        (object(), "builtins.object"),
        (iter(()), "builtins.tuple_iterator"),
        (1j, "builtins.complex"),
    ],
)
def test_iterable_wrapper_refuses_unsavable_data_naming_the_node(value: Any, kind: str) -> None:
    """A source whose data cannot be written says which node and where."""
    pipe = sd.IterableWrapper([0, value], name="raw")
    with pytest.raises(sd.GraphFormatError) as err:
        dumps(pipe)
    assert str(err.value) == (
        f"cannot save iterable_wrapper node 'raw': params.iterable[1]: a value of type {kind} "
        "cannot be saved; params hold None, bool, int, float, str, bytes, list, tuple, dict, "
        "range and functions"
    )


def test_iterable_wrapper_over_other_iterables_is_refused() -> None:
    """A re-iterable object other than list/tuple/range is not data."""

    class Numbers:
        def __iter__(self):
            return iter(range(3))

    with pytest.raises(
        sd.GraphFormatError,
        match=r"cannot save iterable_wrapper node "
        r"'nums': params\.iterable: a value of type .*Numbers cannot be saved",
    ):
        dumps(sd.IterableWrapper(Numbers(), name="nums"))


def test_too_large_integer_is_refused() -> None:
    with pytest.raises(
        sd.GraphFormatError,
        match=r"params.iterable\[0\]: integer "
        r"18446744073709551616 does not fit in 64 bits",
    ):
        dumps(sd.IterableWrapper([2**64], name="big"))


# -- function references -------------------------------------------------------


def _id(value: object, width: int) -> str:
    """A test id without memory addresses: the same in every process."""
    if isinstance(value, functools.partial):
        return f"partial({_id(value.func, width)})"[:width]
    if callable(value):
        return getattr(value, "__qualname__", type(value).__qualname__)[:width]
    return str(value)[:width]


FUNCTIONS = [
    (fns.double, "tests.test_graph_io_fns:double", None),
    (fns.Ops.negate, "tests.test_graph_io_fns:Ops.negate", None),
    (fns.Ops.tag, "tests.test_graph_io_fns:Ops.tag", None),
    (fns.Ops, "tests.test_graph_io_fns:Ops", None),
    (len, "builtins:len", None),
    (str.upper, "builtins:str.upper", None),
    (fns.triple, "test_graph_io.triple", None),
    (fns.tokenize, "test_graph_io.tokenize", None),
    (functools.partial(fns.add, 10), "tests.test_graph_io_fns:add", {"args": [10]}),
    (
        functools.partial(fns.scale, factor=2, offset=(1,)),
        "tests.test_graph_io_fns:scale",
        {"kwargs": {"factor": 2, "offset": {"tuple": [1]}}},
    ),
    (
        functools.partial(fns.apply, functools.partial(fns.add, 1)),
        "tests.test_graph_io_fns:apply",
        {"args": [{"ref": "tests.test_graph_io_fns:add", "args": [1]}]},
    ),
    (functools.partial(fns.triple), "test_graph_io.triple", None),
]


@pytest.mark.parametrize(("fn", "ref", "extra"), FUNCTIONS, ids=lambda v: _id(v, 40))
def test_functions_are_saved_by_reference(fn: Any, ref: str, extra: dict | None) -> None:
    """Module functions, class attributes, allowed builtins, registered names
    and partials over them are written as references and load back."""
    doc = json.loads(dumps(src(4).map(fn), "json"))
    assert doc["nodes"][1]["params"]["fn"] == {"ref": ref, **(extra or {})}
    loaded = loads_node(dumps(src(4).map(fn), "json"), TRUST)
    got = loaded.params["fn"]
    if isinstance(fn, functools.partial) and (fn.args or fn.keywords):
        assert got.func is fn.func
    else:
        base = fn.func if isinstance(fn, functools.partial) else fn
        assert got is base or got == base


def test_registered_functions_record_where_they_come_from() -> None:
    """A graph using a registered function says which module registered it."""
    doc = json.loads(dumps(src(3).map(fns.triple).map(fns.double), "json"))
    assert doc["requires"] == {"functions": {"test_graph_io.triple": "tests.test_graph_io_fns"}}


def test_registered_function_loads_without_trusting_its_module() -> None:
    """A registered name is looked up, not imported."""
    node = loads_node(dumps(src(3).map(fns.triple)))
    assert node.params["fn"] is fns.triple
    assert list(sd.DataPipe(node)) == [0, 3, 6]


def test_register_function_rejects_bad_names_and_conflicts() -> None:
    with pytest.raises(ValueError, match="without ':'"):
        sd.register_function("a:b")
    with pytest.raises(ValueError, match="already registered"):
        sd.register_function("test_graph_io.triple", fns.double)
    assert sd.register_function("test_graph_io.triple", fns.triple) is fns.triple


def _closure_maker() -> Callable[[int], int]:
    k = 3
    return lambda x: x + k


def _local() -> Callable[[int], int]:
    def inner(x: int) -> int:
        return x

    return inner


REFUSED = [
    (lambda x: x, "is a lambda, which cannot be saved"),
    (_closure_maker(), "is a lambda, which cannot be saved"),
    (_local(), "is a local function or closure, which cannot be saved"),
    (fns.Ops().bound, "cannot be found again as 'tests.test_graph_io_fns:Ops.bound'"),
    (
        fns.Tokenizer("-"),
        "a callable Tokenizer object has no import path; register it with "
        "sd.register_function('name', obj)",
    ),
]


@pytest.mark.parametrize(("fn", "why"), REFUSED, ids=lambda v: _id(v, 30))
def test_unsavable_functions_are_refused_naming_the_node(fn: Any, why: str) -> None:
    """The error names the node and the param and says what to write instead."""
    with pytest.raises(sd.GraphFormatError) as err:
        dumps(src(2).map(fn, name="tok"))
    message = str(err.value)
    assert message.startswith("cannot save map node 'tok': params.fn: ")
    assert why in message
    if "lambda" in why or "local" in why:
        assert message.endswith(
            "define it with `def` at module level (saved as "
            "'module:qualname'), or register it with "
            "@sd.register_function('name')"
        )


def test_functions_from_main_are_refused() -> None:
    fn = _local()
    fn.__module__, fn.__qualname__ = "__main__", "inner"
    with pytest.raises(
        sd.GraphFormatError,
        match=r"inner is defined in __main__ \(the script "
        r"being run\), which another process cannot import",
    ):
        dumps(src(2).map(fn))


def test_user_ops_serialize_by_name_and_record_their_module() -> None:
    """A custom op is saved by its registered name with the module it comes from."""
    pipe = fns.repeat_each(src(3), 2, name="rep")
    doc = json.loads(dumps(pipe, "json"))
    assert doc["nodes"][1]["op"] == "test_graph_io.repeat_each"
    assert doc["requires"] == {"ops": {"test_graph_io.repeat_each": "tests.test_graph_io_fns"}}
    assert_round_trips(pipe)
    assert list(pipe) == [0, 0, 1, 1, 2, 2]


def test_unresolved_functions_load_as_names_and_save_unchanged() -> None:
    """resolve_functions=False imports nothing and writes the same references back."""
    pipe = src(3).map(functools.partial(fns.scale, factor=2), name="m")
    data = dumps(pipe, "json")
    node = loads_node(data, resolve_functions=False)
    fn = node.params["fn"]
    assert fn == FunctionRef("tests.test_graph_io_fns:scale", (), {"factor": 2})
    assert str(fn) == "partial(tests.test_graph_io_fns:scale, factor=2)"
    assert dumps(sd.DataPipe(node), "json") == data
    with pytest.raises(
        sd.NodeError,
        match=r"map node 'm' raised RuntimeError: function "
        r"'tests.test_graph_io_fns:scale' was loaded without resolving it",
    ):
        list(sd.DataPipe(node))

"""Loading untrusted files: every class of malformed input is a
GraphFormatError saying where and what was expected; references to code
outside streamdag and the trusted modules are refused before anything is
imported or called; fuzzed files raise nothing else and do not hang."""

from __future__ import annotations

import builtins
import copy
import functools
import json
import math
import os
import subprocess
import sys
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamdag as sd
from streamdag.cli import main
from streamdag.graph_io import codec, document, dumps, loads_node

TRUST = ["tests.test_graph_io_fns"]


def base_doc() -> dict[str, Any]:
    """src -> shuf -> m (map with a function reference) -> b."""
    src = sd.Node("iterable_wrapper", {"iterable": range(10)}, id="s", name="src")
    shuf = sd.Node("shuffle", {"buffer_size": 4}, (src,), id="sh", name="shuf")
    m = sd.Node("map", {"fn": len, "input_col": None, "output_col": None}, (shuf,), id="m")
    b = sd.Node("batch", {"batch_size": 3, "drop_last": False}, (m,), id="b", name="b")
    return json.loads(dumps(b, "json"))


def load_doc(doc: Any, fmt: str = "json", trusted: list[str] | None = None) -> sd.Node:
    data = json.dumps(doc).encode() if fmt == "json" else msgpack.packb(doc, use_bin_type=True)
    return loads_node(data, trusted or [], source="g")


def mutate(path: str, value: Any = None, delete: bool = False) -> dict[str, Any]:
    """The base document with the item at ``path`` (dotted, ints index lists)
    set to ``value`` or deleted."""
    doc = base_doc()
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target = doc
    for key in parents:
        target = target[key]
    if delete:
        del target[last]
    else:
        target[last] = value
    return doc


def test_base_document_loads() -> None:
    assert [n.id for n in sd.Graph(load_doc(base_doc()))] == ["s", "sh", "m", "b"]


# (document, exact message after "g: ")
MALFORMED: list[tuple[str, Any, str]] = [
    ("not a map", [1, 2], "document: expected a map, got a list"),
    ("wrong format", mutate("format", "other"), "format: expected 'streamdag-graph', got 'other'"),
    ("missing key", mutate("output", delete=True), "document: missing key 'output'"),
    (
        "unexpected key",
        mutate("extra", 1),
        "document: unexpected key 'extra'; expected format, version, nodes, output, requires",
    ),
    ("version type", mutate("version", "1"), "version: expected an int from 1, got '1'"),
    ("version zero", mutate("version", 0), "version: expected an int from 1, got 0"),
    (
        "future version",
        mutate("version", 7),
        "version: the file has format version 7, but this "
        "streamdag reads versions 1 to 1; upgrade streamdag to load it",
    ),
    ("nodes type", mutate("nodes", {}), "nodes: expected a list, got a map"),
    ("no nodes", mutate("nodes", []), "nodes: a graph needs at least one node"),
    ("node type", mutate("nodes.1", "x"), "nodes[1]: expected a map, got a string"),
    (
        "node key",
        mutate("nodes.1.kind", 1),
        "nodes[1]: unexpected key 'kind'; expected id, op, params, inputs, name",
    ),
    ("node missing op", mutate("nodes.1.op", delete=True), "nodes[1]: missing key 'op'"),
    ("id type", mutate("nodes.1.id", 5), "nodes[1].id: expected a string, got an int"),
    (
        "empty id",
        mutate("nodes.0.id", ""),
        "nodes[0].id: an id must be 1 to 256 characters, got ''",
    ),
    (
        "long id",
        mutate("nodes.0.id", "x" * 300),
        f"nodes[0].id: an id must be 1 to 256 characters, got {'x' * 300!r:.37}...",
    ),
    ("op type", mutate("nodes.1.op", None), "nodes[1].op: expected a string, got null"),
    ("params type", mutate("nodes.1.params", [4]), "nodes[1].params: expected a map, got a list"),
    (
        "inputs type",
        mutate("nodes.1.inputs", "s"),
        "nodes[1].inputs: expected a list, got a string",
    ),
    (
        "input type",
        mutate("nodes.1.inputs", [1]),
        "nodes[1].inputs[0]: expected a string, got an int",
    ),
    ("name type", mutate("nodes.1.name", 3), "nodes[1].name: expected a string, got an int"),
    ("output type", mutate("output", 3), "output: expected a string, got an int"),
    (
        "unknown op",
        mutate("nodes.1.op", "no_such_op"),
        "nodes[1].op: unknown op 'no_such_op'; "
        "import the module that registers it, or install the package that provides it through "
        "the 'streamdag.readers' entry point",
    ),
    ("duplicate id", mutate("nodes.2.id", "sh"), "nodes[2].id: duplicate id 'sh' (also nodes[1])"),
    (
        "dangling input",
        mutate("nodes.1.inputs", ["nope"]),
        "nodes[1].inputs[0]: no node has id 'nope'",
    ),
    ("dangling output", mutate("output", "nope"), "output: no node has id 'nope'"),
    ("self cycle", mutate("nodes.1.inputs", ["sh"]), "nodes[1]: cycle through ids sh -> sh"),
    ("cycle", mutate("nodes.0.inputs", ["m"]), "nodes[2]: cycle through ids m -> sh -> s -> m"),
    (
        "unused node",
        mutate("output", "m"),
        "nodes[3]: node 'b' is not an input of the output 'm'; remove it or connect it",
    ),
    (
        "bad param",
        mutate("nodes.1.params.buffer_size", -1),
        "nodes[1]: shuffle node 'shuf': shuffle: buffer_size must be an int >= 1, got -1",
    ),
    (
        "too few inputs",
        mutate("nodes.3.op", "zip"),
        "nodes[3]: zip node 'b': zip: expects 2 or more inputs, got 1",
    ),
    (
        "too many inputs",
        mutate("nodes.1.inputs", ["s", "s"]),
        "nodes[1]: shuffle node 'shuf': shuffle: expects 1 inputs, got 2",
    ),
    (
        "untagged map",
        mutate("nodes.1.params.buffer_size", {"n": 4}),
        "nodes[1].params."
        "buffer_size: a map here must have exactly one of the keys ref, tuple, dict, range, bytes, "
        "float (ref may add args, kwargs); got keys 'n'",
    ),
    (
        "two tags",
        mutate("nodes.0.params.iterable", {"tuple": [], "dict": {}}),
        "nodes[0].params."
        "iterable: a map here must have exactly one of the keys ref, tuple, dict, range, bytes, "
        "float (ref may add args, kwargs); got keys 'tuple', 'dict'",
    ),
    (
        "bad range",
        mutate("nodes.0.params.iterable", {"range": [0, 5, 0]}),
        "nodes[0].params."
        "iterable.range: expected [start, stop, step] of ints with step != 0, got [0, 5, 0]",
    ),
    (
        "bad tuple",
        mutate("nodes.0.params.iterable", {"tuple": 5}),
        "nodes[0].params.iterable.tuple: expected a list, got an int",
    ),
    (
        "bad bytes",
        mutate("nodes.0.params.iterable", {"bytes": "**"}),
        "nodes[0].params.iterable.bytes: expected base64 text, got '**'",
    ),
    (
        "bad float",
        mutate("nodes.0.params.iterable", {"float": "big"}),
        "nodes[0].params.iterable.float: expected 'nan', 'inf' or '-inf', got 'big'",
    ),
    (
        "float type",
        mutate("nodes.2.params.fn", {"float": []}),
        "nodes[2].params.fn.float: expected 'nan', 'inf' or '-inf', got []",
    ),
    (
        "bad pair",
        mutate("nodes.0.params.iterable", {"dict": [[1]]}),
        "nodes[0].params.iterable.dict[0]: expected a [key, value] pair, got [1]",
    ),
    (
        "unhashable key",
        mutate("nodes.0.params.iterable", {"dict": [[[1], 2]]}),
        "nodes[0].params.iterable.dict[0][0]: a dict key must be hashable, got a list",
    ),
    (
        "ref type",
        mutate("nodes.2.params.fn", {"ref": 3}),
        "nodes[2].params.fn.ref: expected a function name like 'module:qualname', got 3",
    ),
    (
        "ref syntax",
        mutate("nodes.2.params.fn", {"ref": "os.path:"}),
        "nodes[2].params.fn.ref: 'os.path:' is not of the form 'module:qualname'",
    ),
    (
        "ref args",
        mutate("nodes.2.params.fn", {"ref": "builtins:len", "args": {}}),
        "nodes[2].params.fn.args: expected a list, got a map",
    ),
    (
        "ref kwargs",
        mutate("nodes.2.params.fn", {"ref": "builtins:len", "kwargs": []}),
        "nodes[2].params.fn.kwargs: expected a map, got a list",
    ),
    (
        "not a graph function",
        mutate("nodes.2.params.fn", {"ref": "streamdag:no_such"}),
        "nodes[2].params.fn.ref: 'streamdag:no_such' is not one of streamdag's graph "
        "functions; a graph file may name only those (streamdag.graph_io.GRAPH_FUNCTIONS), "
        "registered functions, the safe builtins (streamdag.graph_io.SAFE_REFS) and functions "
        "of trusted_modules",
    ),
    (
        "not callable",
        mutate("nodes.2.params.fn", {"ref": "streamdag:__all__"}),
        "nodes[2].params.fn.ref: 'streamdag:__all__': dunder attributes are never followed",
    ),
    (
        "unregistered",
        mutate("nodes.2.params.fn", {"ref": "no.such.name"}),
        "nodes[2].params.fn."
        "ref: no function is registered as 'no.such.name'; import the module that registers it "
        "with @sd.register_function first",
    ),
    ("requires type", mutate("requires", {"ops": []}), "requires.ops: expected a map, got a list"),
    (
        "branch of non-hub",
        None,
        "nodes[1]: branch node 'br': input must be a fork or demux node, "
        "got iterable_wrapper node 'src'",
    ),
    (
        "branch index",
        None,
        "nodes[2]: branch node 'br': index 2 is out of range for fork node 'f' with 2 outputs",
    ),
    (
        "hub read directly",
        None,
        "nodes[2]: batch node 'b': reads fork node 'f' directly; a fork "
        "or demux output is read through its branch nodes",
    ),
]


def _hub_doc(case: str) -> dict[str, Any]:
    src = {"id": "s", "op": "iterable_wrapper", "params": {"iterable": [1]}, "name": "src"}
    fork = {
        "id": "f",
        "op": "fork",
        "params": {"num_instances": 2, "buffer_size": 4},
        "inputs": ["s"],
        "name": "f",
    }
    if case == "branch of non-hub":
        nodes = [
            src,
            {"id": "br", "op": "branch", "params": {"index": 0}, "inputs": ["s"], "name": "br"},
        ]
    elif case == "branch index":
        nodes = [
            src,
            fork,
            {"id": "br", "op": "branch", "params": {"index": 2}, "inputs": ["f"], "name": "br"},
        ]
    else:
        nodes = [
            src,
            fork,
            {"id": "b", "op": "batch", "params": {"batch_size": 2}, "inputs": ["f"], "name": "b"},
        ]
    return {"format": "streamdag-graph", "version": 1, "nodes": nodes, "output": nodes[-1]["id"]}


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize(("case", "doc", "message"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_documents_are_refused_precisely(
    fmt: str, case: str, doc: Any, message: str
) -> None:
    """Each class of malformed input names its place in the document and what
    was expected, in both encodings."""
    with pytest.raises(sd.GraphFormatError) as err:
        load_doc(doc if doc is not None else _hub_doc(case), fmt)
    assert str(err.value) == f"g: {message}"


BAD_BYTES = [
    ("empty", b"", "file is empty"),
    (
        "truncated msgpack",
        None,
        "not a streamdag graph (msgpack decoding failed: ValueError: "
        "Unpack failed: incomplete input)",
    ),
    (
        "trailing data",
        None,
        "not a streamdag graph (msgpack decoding failed: ExtraData: "
        "unpack(b) received extra data.)",
    ),
    (
        "truncated json",
        b'{"format": "streamdag-graph", "vers',
        "invalid JSON at line 1 column 31: Unterminated string starting at",
    ),
    (
        "json duplicate key",
        b'{"format": 1, "format": 2}',
        "invalid JSON: duplicate key 'format' in a JSON object",
    ),
    (
        "json NaN",
        b'{"format": NaN}',
        'invalid JSON: NaN is not allowed (write non-finite floats as {"float": "inf"})',
    ),
    ("json not utf-8", b'{"format": "\xff"}', "JSON text is not valid UTF-8 at byte 12"),
    (
        "json huge int",
        b'{"v": ' + b"9" * 5000 + b"}",
        "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion",
    ),
    ("json too deep", b'{"a":' + b"[" * 100_000, "JSON text is nested too deeply"),
    (
        "msgpack int key",
        msgpack.packb({1: 2}),
        "not a streamdag graph (msgpack decoding failed: "
        "ValueError: int is not allowed for map key when strict_map_key=True)",
    ),
    ("msgpack not a map", msgpack.packb(7), "document: expected a map, got an int"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_BYTES, ids=[c[0] for c in BAD_BYTES])
def test_bad_bytes_are_refused(case: str, data: bytes | None, message: str) -> None:
    """Truncated, trailing, non-UTF-8, too deep and unparseable input."""
    good = msgpack.packb(base_doc())
    data = {"truncated msgpack": good[:-5], "trailing data": good + b"\x00"}.get(case, data)
    with pytest.raises(sd.GraphFormatError) as err:
        loads_node(data, source="g")
    assert str(err.value).startswith(f"g: {message}")


def test_msgpack_extension_types_and_raw_bytes_are_refused() -> None:
    """Only the documented plain types: no ext types (never unpickled), no bin values."""
    for value, kind in ((msgpack.ExtType(1, b"x"), "a ExtType"), (b"raw", "raw bytes")):
        doc = base_doc()
        doc["nodes"][0]["params"]["iterable"] = [value]
        with pytest.raises(sd.GraphFormatError) as err:
            loads_node(msgpack.packb(doc, use_bin_type=True), source="g")
        assert str(err.value) == (
            f"g: nodes[0].params.iterable[0]: unexpected {kind}; expected "
            "null, a bool, number, string, list or a tagged map"
        )


def test_absurd_sizes_are_refused(monkeypatch) -> None:
    """Too many nodes, too large a file, too deep nesting."""
    monkeypatch.setattr(document, "MAX_NODES", 3)
    with pytest.raises(sd.GraphFormatError, match=r"^g: nodes: 4 nodes, more than the limit of 3$"):
        load_doc(base_doc())
    monkeypatch.setattr(codec, "MAX_FILE_BYTES", 100)
    with pytest.raises(
        sd.GraphFormatError,
        match=r"^g: file is \d+ bytes, more than the limit "
        r"of 100$",
    ):
        load_doc(base_doc())
    monkeypatch.undo()
    nested: Any = 1
    for _ in range(70):
        nested = [nested]
    with pytest.raises(
        sd.GraphFormatError,
        match=r"^g: nodes\[0\]\.params\.iterable(\[0\])+: "
        r"nested deeper than 64 levels$",
    ):
        load_doc(mutate("nodes.0.params.iterable", nested))
    with pytest.raises(sd.GraphFormatError, match="nested deeper than 64 levels"):
        dumps(sd.IterableWrapper(nested))


def chain_doc(n: int) -> dict[str, Any]:
    """A source and n - 1 header nodes in one chain, listed output first (the
    worst order for loading, which must put inputs first)."""
    nodes = [{"id": "n0", "op": "iterable_wrapper", "params": {"iterable": [1, 2]}}]
    nodes += [
        {"id": f"n{i}", "op": "header", "params": {"limit": 5}, "inputs": [f"n{i - 1}"]}
        for i in range(1, n)
    ]
    output = nodes[-1]["id"]
    return {"format": "streamdag-graph", "version": 1, "nodes": nodes[::-1], "output": output}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_longest_chain_loads_shows_and_validates(tmp_path, capsys) -> None:
    """A chain of the most nodes a file may hold (7 MB of JSON) loads, shows
    and validates: ordering the nodes is linear and nothing recurses per node."""
    n = document.MAX_NODES
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(chain_doc(n)))
    nodes = sd.Graph.load(path).nodes
    assert [node.id for node in nodes] == [f"n{i}" for i in range(n)]
    assert all(node.inputs == (before,) for before, node in zip(nodes, nodes[1:], strict=False))
    assert main(["show", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path}: {n} nodes, output 'n{n - 1}'"
    assert len(lines) == n + 2
    assert lines[2].split()[:3] == ["n0", "-", "iterable_wrapper"]
    assert lines[-1].split()[:4] == [f"n{n - 1}", "-", "header", f"n{n - 2}"]
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok ({n} nodes, output 'n{n - 1}')\n"


def test_third_party_validate_errors_become_format_errors() -> None:
    """An op whose validate raises something else than ParamError still gives a GraphFormatError."""
    import tests.test_graph_io_fns  # noqa: F401 - registers the op

    doc = mutate(
        "nodes.3",
        {
            "id": "c",
            "op": "test_graph_io.careless",
            "params": {"n": "x"},
            "inputs": ["m"],
            "name": "c",
        },
    )
    doc["output"] = "c"
    with pytest.raises(sd.GraphFormatError) as err:
        load_doc(doc)
    assert str(err.value) == (
        "g: nodes[3]: test_graph_io.careless node 'c': validate raised "
        'TypeError: can only concatenate str (not "int") to str'
    )
    assert isinstance(err.value.__cause__, TypeError)


def test_unknown_op_names_the_module_it_comes_from() -> None:
    """A custom op missing at load time says which module provides it."""
    doc = mutate("nodes.1.op", "their.op")
    doc["requires"] = {"ops": {"their.op": "theirpkg.readers"}}
    with pytest.raises(sd.GraphFormatError) as err:
        load_doc(doc)
    assert str(err.value) == (
        "g: nodes[1].op: unknown op 'their.op'; it comes from module "
        "'theirpkg.readers': import it before loading or pass "
        "trusted_modules=['theirpkg.readers']"
    )
    assert "theirpkg" not in sys.modules


def test_unregistered_function_names_the_module_that_registered_it() -> None:
    doc = mutate("nodes.2.params.fn", {"ref": "their.tokenize"})
    doc["requires"] = {"functions": {"their.tokenize": "theirpkg.text"}}
    with pytest.raises(sd.GraphFormatError) as err:
        load_doc(doc)
    assert str(err.value) == (
        "g: nodes[2].params.fn.ref: no function is registered as "
        "'their.tokenize'; it was registered by module 'theirpkg.text' when "
        "saved; import that module first or pass "
        "trusted_modules=['theirpkg.text']"
    )


# -- code references --------------------------------------------------------------


@pytest.fixture
def tripwires(monkeypatch) -> list[str]:
    """os.system, subprocess.run and builtins.eval replaced by recorders."""
    calls: list[str] = []
    for owner, name in ((os, "system"), (subprocess, "run"), (builtins, "eval")):
        monkeypatch.setattr(owner, name, lambda *a, _n=name, **k: calls.append(_n))
    return calls


@pytest.mark.parametrize(
    "ref",
    [
        "os:system",
        "subprocess:run",
        "builtins:eval",
        "posix:system",
        "builtins:exec",
        "importlib:import_module",
    ],
)
def test_dangerous_references_are_refused_without_calling(ref: str, tripwires: list[str]) -> None:
    """Nothing outside streamdag and trusted modules is imported or called."""
    module = ref.partition(":")[0]
    with pytest.raises(sd.GraphFormatError) as err:
        load_doc(mutate("nodes.2.params.fn", {"ref": ref, "args": ["echo pwned"]}))
    assert str(err.value) == (
        f"g: nodes[2].params.fn.ref: refusing to import module {module!r} for {ref!r}: loading "
        "imports only streamdag and trusted modules; if you trust this file and that module, "
        f"pass trusted_modules=[{module!r}]"
    )
    assert tripwires == []


def test_refused_module_is_not_imported() -> None:
    """A module not yet loaded stays unloaded."""
    for name in ("pty", "tabnanny"):
        assert name not in sys.modules
        with pytest.raises(sd.GraphFormatError, match="refusing to import module"):
            load_doc(mutate("nodes.2.params.fn", {"ref": f"{name}:spawn"}))
        assert name not in sys.modules


def test_trusted_module_is_imported_when_needed() -> None:
    """The caller's trust is what allows an import."""
    name = "colorsys"
    sys.modules.pop(name, None)
    doc = mutate("nodes.2.params.fn", {"ref": "colorsys:rgb_to_hsv"})
    with pytest.raises(sd.GraphFormatError, match="refusing to import module 'colorsys'"):
        load_doc(doc)
    assert name not in sys.modules
    fn = load_doc(doc, trusted=[name]).inputs[0].params["fn"]
    assert fn is sys.modules[name].rgb_to_hsv


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "streamdag:no_such",
            "'streamdag:no_such': module 'streamdag' has no callable 'no_such' "
            "(attribute paths may not pass through other modules)",
        ),
        (
            "streamdag.cli:sys.exit",
            "'streamdag.cli:sys.exit': module 'streamdag.cli' has no callable "
            "'sys.exit' (attribute paths may not pass through other modules)",
        ),
        (
            "streamdag.graph_io.functions:importlib.import_module",
            "'streamdag.graph_io.functions:"
            "importlib.import_module': module 'streamdag.graph_io.functions' has no callable "
            "'importlib.import_module' (attribute paths may not pass through other modules)",
        ),
        (
            "streamdag.transforms.iterable_wrapper:islice",
            "'streamdag.transforms.iterable_wrapper:"
            "islice' is defined in module 'itertools', which is not trusted; refer to it by its own "
            "module and trust that instead",
        ),
        (
            "streamdag:Node.__init__.__globals__",
            "'streamdag:Node.__init__.__globals__': dunder attributes are never followed",
        ),
        (
            "streamdag:DataPipe.map.__class__",
            "'streamdag:DataPipe.map.__class__': dunder attributes are never followed",
        ),
    ],
)
def test_trusted_modules_do_not_leak_other_code(ref: str, message: str, tripwires) -> None:
    """Attribute paths cannot reach another module, a dunder or a re-export
    (of a trusted module: here streamdag itself, which a file cannot name
    beyond its graph functions unless the caller trusts it)."""
    with pytest.raises(sd.GraphFormatError) as err:
        load_doc(mutate("nodes.2.params.fn", {"ref": ref}), trusted=["streamdag"])
    assert str(err.value) == f"g: nodes[2].params.fn.ref: {message}"
    assert tripwires == []


def test_trusted_module_that_fails_to_import_is_a_format_error() -> None:
    with pytest.raises(
        sd.GraphFormatError,
        match=r"importing trusted module 'no_such_mod_x' "
        r"failed: ModuleNotFoundError",
    ):
        load_doc(mutate("nodes.2.params.fn", {"ref": "no_such_mod_x:f"}), trusted=["no_such_mod_x"])


def test_trusted_modules_must_be_module_names() -> None:
    with pytest.raises(ValueError, match="is not a module name"):
        loads_node(b"{}", ["os; rm"])


def test_version_1_stays_loadable_and_upgrades_run_in_turn(monkeypatch) -> None:
    """A future version 2 reads version 1 files through the upgrade table."""
    version_1, version_3 = base_doc(), mutate("version", 3)
    monkeypatch.setattr(document, "FORMAT_VERSION", 2)
    seen = []

    def one_to_two(doc: dict[str, Any]) -> dict[str, Any]:
        seen.append(doc["version"])
        return {**doc, "version": 2}

    monkeypatch.setitem(document.UPGRADES, 1, one_to_two)
    assert load_doc(version_1).id == "b"
    assert seen == [1]
    with pytest.raises(sd.GraphFormatError, match="reads versions 1 to 2"):
        load_doc(version_3)


# -- fuzzing ---------------------------------------------------------------------


def _only_format_errors(data: bytes) -> None:
    try:
        loads_node(data, TRUST, source="fuzz")
    except sd.GraphFormatError:
        pass


FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def rich_doc() -> dict[str, Any]:
    """A fork, a zip, tagged values of every kind and a partial, for the fuzzers."""
    data = [(1, "a"), {"k": b"\x00", 2: [None]}, math.inf, range(3)]
    a, b = sd.IterableWrapper(data, name="src").fork(2, buffer_size=4, name="f")
    pipe = a.map(functools.partial(max, 0), input_col=0, output_col=1).zip(b).batch(2)
    return json.loads(dumps(pipe, "json"))


BASES = {"small": base_doc(), "rich": rich_doc()}
_VALID = {
    (base, fmt): dumps(load_doc(doc), fmt)
    for base, doc in BASES.items()
    for fmt in ("msgpack", "json")
}


@pytest.mark.timeout(60)
@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    """Random bytes: GraphFormatError or nothing."""
    _only_format_errors(data)


@pytest.mark.timeout(60)
@FUZZ
@given(st.sampled_from(sorted(_VALID)), st.data())
def test_fuzz_mutated_bytes(key: tuple[str, str], data: st.DataObject) -> None:
    """Valid files with bytes flipped, inserted, deleted or cut off."""
    blob = bytearray(_VALID[key])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(blob)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if action == "flip" and at < len(blob):
            blob[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del blob[at : at + data.draw(st.integers(1, 8))]
        else:
            del blob[at:]
    _only_format_errors(bytes(blob))


_JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "s",
            "sh",
            "m",
            "b",
            "os:system",
            "builtins:len",
            "ref",
            "tuple",
            "dict",
            "range",
            "fork",
            "branch",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "ref",
                    "args",
                    "kwargs",
                    "tuple",
                    "dict",
                    "range",
                    "bytes",
                    "float",
                    "id",
                    "op",
                    "params",
                    "inputs",
                    "name",
                    "x",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            out += _paths(sub, (*prefix, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out += _paths(sub, (*prefix, i))
    return out


@pytest.mark.slow
@pytest.mark.timeout(60)
@settings(FUZZ, max_examples=500)
@given(st.sampled_from(sorted(BASES)), st.sampled_from(["msgpack", "json"]), st.data())
def test_fuzz_mutated_documents(base: str, fmt: str, data: st.DataObject) -> None:
    """Valid documents with a random part replaced by random JSON-like data."""
    doc = copy.deepcopy(BASES[base])
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        replacement = data.draw(_JSONISH)
        if not path:
            doc = replacement
            continue
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = copy.deepcopy(replacement)
    try:
        blob = (
            msgpack.packb(doc, use_bin_type=True) if fmt == "msgpack" else json.dumps(doc).encode()
        )
    except (OverflowError, ValueError, TypeError):
        return  # not encodable (e.g. an int beyond 64 bits in msgpack)
    _only_format_errors(blob)

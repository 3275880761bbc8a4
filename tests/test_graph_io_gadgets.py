"""Hostile graph files: a corpus of gadgets, each of which would run code
(create a canary file or import a module) if a graph file could name any
function in streamdag, and the proof that ``sd.load``, ``streamdag run``
(in process and with two workers), ``show`` and ``validate`` run none of
them. Loading refuses each one with a GraphFormatError naming the node, the
param and the reference; ``show`` lists the file without resolving anything."""

from __future__ import annotations

import base64
import functools
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import streamdag as sd
from streamdag.cli import main
from streamdag.graph_io import GRAPH_FUNCTIONS, dumps, loads_node
from tests import test_graph_io_fns as fns

ROOT = Path(__file__).resolve().parent.parent
CANARY_MODULE = "streamdag_gadget_canary"
LOADS_NODE = "streamdag.graph_io.files:loads_node"
IMPORT = "streamdag.graph_io.functions:_import"
UNPICKLE = "streamdag.reading_service.transport:decode"


class Shell:
    """Unpickles as ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (self.command,)


def chain(*nodes: tuple[str, dict[str, Any]], requires: dict | None = None) -> dict[str, Any]:
    """A document: the nodes in a chain, ids n0, n1, ..., the last one the output."""
    entries = [
        {"id": f"n{i}", "op": op, "params": params, "inputs": [f"n{i - 1}"] if i else []}
        for i, (op, params) in enumerate(nodes)
    ]
    doc = {
        "format": "streamdag-graph",
        "version": 1,
        "nodes": entries,
        "output": f"n{len(nodes) - 1}",
    }
    return {**doc, "requires": requires} if requires else doc


def source(*items: Any) -> tuple[str, dict[str, Any]]:
    return "iterable_wrapper", {"iterable": list(items)}


def apply(fn: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "map", {"fn": fn, "input_col": None, "output_col": None}


def flatten() -> tuple[str, dict[str, Any]]:
    return "flatmap", {"fn": None}


def with_function(pipe: sd.DataPipe[Any], fn: dict[str, Any]) -> dict[str, Any]:
    """``pipe``'s document with every reference to ``builtins:len`` replaced by ``fn``."""

    def swap(value: Any) -> Any:
        if value == {"ref": "builtins:len"}:
            return fn
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    return swap(json.loads(dumps(pipe, "json")))


class Corpus:
    """The gadget files of one test, written under ``root``: each would touch
    ``canary`` (or import CANARY_MODULE, which touches it) if it ran."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.canary = root / "canary.json"
        self.inner = root / "inner.json"  # a second file an attacker ships alongside

    def write(self) -> Corpus:
        (self.root / f"{CANARY_MODULE}.py").write_text(f"open({str(self.canary)!r}, 'w').close()\n")
        self.inner.write_text(json.dumps(self.shell_graph()))
        return self

    def shell_graph(self) -> dict[str, Any]:
        return chain(source(f"touch {self.canary}"), apply({"ref": "posix:system"}))

    def gadgets(self) -> dict[str, tuple[dict[str, Any], str, str, list[str]]]:
        """name -> (document, place of the refused reference, the reference, trusted modules)."""
        inner = base64.b64encode(json.dumps(self.shell_graph()).encode()).decode()
        payload = b"\0" * 4 + pickle.dumps(Shell(f"touch {self.canary}"))
        pickled = base64.b64encode(payload)
        trust_posix = {"trusted_modules": ["posix"]}
        import_it = {"ref": IMPORT, "kwargs": {"where": "x"}}
        unpickle = {"ref": UNPICKLE, "kwargs": {"fds": [], "views": None}}
        fn = "nodes[1].params.fn"
        ints = sd.IterableWrapper([1, 2])
        return {
            # the three of the issue
            "loads_node widens its own trust": (
                chain(
                    source({"bytes": inner}),
                    apply({"ref": LOADS_NODE, "kwargs": trust_posix}),
                    apply({"ref": "streamdag:DataPipe"}),
                    flatten(),
                ),
                fn,
                LOADS_NODE,
                [],
            ),
            "transport decode unpickles": (
                chain(source({"bytes": pickled.decode()}), apply(unpickle)),
                fn,
                UNPICKLE,
                [],
            ),
            "_import imports any module": (
                chain(source(CANARY_MODULE), apply(import_it)),
                fn,
                IMPORT,
                [],
            ),
            # loading graphs, with trust the file chooses
            "sd.load": (
                chain(
                    source(str(self.inner)),
                    apply({"ref": "streamdag:load", "kwargs": trust_posix}),
                    flatten(),
                ),
                fn,
                "streamdag:load",
                [],
            ),
            "Graph.load": (
                chain(
                    source(str(self.inner)),
                    apply({"ref": "streamdag:Graph.load", "kwargs": trust_posix}),
                    apply({"ref": "streamdag:Graph.to_datapipe"}),
                    flatten(),
                ),
                fn,
                "streamdag:Graph.load",
                [],
            ),
            "the command line": (
                chain(
                    source(["run", str(self.inner), "--trust", "posix", "--no-progress"]),
                    apply({"ref": "streamdag.cli:main"}),
                ),
                fn,
                "streamdag.cli:main",
                [],
            ),
            "save writes files": (
                chain(source(1), apply({"ref": "streamdag:save", "kwargs": {"path": "x.json"}})),
                fn,
                "streamdag:save",
                [],
            ),
            # processes and programs
            "graphviz runner": (
                chain(source(1), apply({"ref": "streamdag.graph_io.render:render"})),
                fn,
                "streamdag.graph_io.render:render",
                [],
            ),
            "worker process pool": (
                chain(source(1), apply({"ref": "streamdag.reading_service.processes:ProcessPool"})),
                fn,
                "streamdag.reading_service.processes:ProcessPool",
                [],
            ),
            "multiprocessing context": (
                chain(
                    source("fork"),
                    apply({"ref": "streamdag.reading_service.processes:get_context"}),
                ),
                fn,
                "streamdag.reading_service.processes:get_context",
                [],
            ),
            "private exit": (
                chain(source(1), apply({"ref": "streamdag.reading_service.processes:_exit_now"})),
                fn,
                "streamdag.reading_service.processes:_exit_now",
                [],
            ),
            "reading service class": (
                chain(source(2), apply({"ref": "streamdag:MultiProcessingReadingService"})),
                fn,
                "streamdag:MultiProcessingReadingService",
                [],
            ),
            "unbound method": (
                chain(source(1), apply({"ref": "streamdag:DataPipe.map"})),
                fn,
                "streamdag:DataPipe.map",
                [],
            ),
            "module behind a graph function": (
                chain(source(1), apply({"ref": "streamdag.decoders.image:io.open"})),
                fn,
                "streamdag.decoders.image:io.open",
                [],
            ),
            "globals of a graph function": (
                chain(source(1), apply({"ref": "streamdag:decode_image.__globals__"})),
                fn,
                "streamdag:decode_image.__globals__",
                [],
            ),
            # builtins
            "open": (
                chain(source(str(self.canary)), apply({"ref": "builtins:open", "args": ["w"]})),
                fn,
                "builtins:open",
                [],
            ),
            "eval": (
                chain(
                    source(f"__import__('os').system('touch {self.canary}')"),
                    apply({"ref": "builtins:eval"}),
                ),
                fn,
                "builtins:eval",
                [],
            ),
            "exec": (
                chain(source("x = 1"), apply({"ref": "builtins:exec"})),
                fn,
                "builtins:exec",
                [],
            ),
            "getattr": (
                chain(source(1), apply({"ref": "builtins:getattr", "args": ["__class__"]})),
                fn,
                "builtins:getattr",
                [],
            ),
            "__import__": (
                chain(source(CANARY_MODULE), apply({"ref": "builtins:__import__"})),
                fn,
                "builtins:__import__",
                [],
            ),
            # gadgets inside other values and params
            "gadget as a partial's keyword": (
                chain(
                    source([CANARY_MODULE]),
                    apply({"ref": "builtins:sorted", "kwargs": {"key": import_it}}),
                ),
                f"{fn}.kwargs.key",
                IMPORT,
                [],
            ),
            "gadget as a partial's argument": (
                chain(source(1), apply({"ref": "builtins:max", "args": [import_it]})),
                f"{fn}.args[0]",
                IMPORT,
                [],
            ),
            "decode handler": (
                with_function(ints.decode(len), unpickle),
                "nodes[1].params.handlers[0]",
                UNPICKLE,
                [],
            ),
            "decode by extension": (
                with_function(
                    sd.IterableWrapper([{"x.bin": payload}]).decode(by_ext={"bin": len}), unpickle
                ),
                "nodes[1].params.by_ext.dict.bin",
                UNPICKLE,
                [],
            ),
            "demux classifier": (
                with_function(sd.DataPipe(ints.demux(2, len)[0].node), import_it),
                "nodes[1].params.classifier_fn",
                IMPORT,
                [],
            ),
            "collate function": (
                with_function(ints.batch(2).collate(len), unpickle),
                "nodes[2].params.fn",
                UNPICKLE,
                [],
            ),
            # names
            "registered name hinting at streamdag": (
                chain(
                    source(1),
                    apply({"ref": "loads_node"}),
                    requires={"functions": {"loads_node": "streamdag.graph_io.files"}},
                ),
                fn,
                "loads_node",
                [],
            ),
            "streamdag function re-exported by a trusted module": (
                chain(source(1), apply({"ref": "tests.test_graph_io_fns:check_int"})),
                fn,
                "tests.test_graph_io_fns:check_int",
                ["tests.test_graph_io_fns"],
            ),
        }


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Corpus:
    monkeypatch.syspath_prepend(str(tmp_path))  # CANARY_MODULE is importable
    return Corpus(tmp_path).write()


GADGETS = sorted(Corpus(Path("unused")).gadgets())


def write(corpus: Corpus, name: str) -> tuple[Path, str, list[str]]:
    """The gadget's file, the start of the error it must give and its --trust options."""
    doc, place, ref, trusted = corpus.gadgets()[name]
    path = corpus.root / "gadget.json"
    path.write_text(json.dumps(doc))
    return path, f"{path}: {place}.ref: ", [a for module in trusted for a in ("--trust", module)]


def assert_nothing_ran(corpus: Corpus) -> None:
    assert not corpus.canary.exists()
    assert CANARY_MODULE not in sys.modules


@pytest.mark.parametrize("name", GADGETS)
def test_gadget_is_refused_by_load_run_and_validate(
    name: str, corpus: Corpus, capsys: pytest.CaptureFixture[str]
) -> None:
    """Loading refuses the reference before anything is called, naming the
    node, param and reference; ``run`` (also with workers) and ``validate``
    fail with that message, ``show`` lists the file; nothing ran."""
    path, start, trust = write(corpus, name)
    ref = corpus.gadgets()[name][2]
    with pytest.raises(sd.GraphFormatError) as err:
        sd.load(path, trusted_modules=trust[1::2])
    message = str(err.value)
    assert message.startswith(start) and repr(ref) in message
    for verb in (
        ["validate"],
        ["run", "--no-progress"],
        ["run", "--workers", "2", "--no-progress"],
    ):
        assert main([verb[0], str(path), *trust, *verb[1:]]) == 1
        captured = capsys.readouterr()
        assert captured.err == f"streamdag {verb[0]}: error: {message}\n"
        assert captured.out == ""
    assert main(["show", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ")
    assert_nothing_ran(corpus)


@pytest.mark.timeout(120)
def test_gadget_is_refused_by_the_command(corpus: Corpus) -> None:
    """The command itself, in a fresh process, with two workers."""
    path, start, _ = write(corpus, "loads_node widens its own trust")
    result = subprocess.run(
        [sys.executable, "-m", "streamdag.cli", "run", str(path), "--workers", "2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(corpus.root)])},
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"streamdag run: error: {start}")
    assert_nothing_ran(corpus)


def test_refusal_message(corpus: Corpus) -> None:
    """Says what may be named instead."""
    path, start, _ = write(corpus, "transport decode unpickles")
    with pytest.raises(sd.GraphFormatError) as err:
        sd.load(path)
    assert str(err.value) == (
        f"{start}{UNPICKLE!r} is not one of streamdag's graph functions; a graph file "
        "may name only those (streamdag.graph_io.GRAPH_FUNCTIONS), registered functions, the "
        "safe builtins (streamdag.graph_io.SAFE_REFS) and functions of trusted_modules"
    )


def test_runtime_only_op_is_refused() -> None:
    """The main process's stand-in for the workers cannot be written in a file."""
    doc = chain(("_worker_stream", {"source": {"ref": "builtins:dict"}}))
    with pytest.raises(sd.GraphFormatError) as err:
        loads_node(json.dumps(doc).encode(), source="g")
    assert str(err.value) == (
        "g: nodes[0]: _worker_stream node n0: _worker_stream: this node is made by worker "
        "reading services while a graph runs and cannot be written in a graph"
    )


# -- what stays allowed ------------------------------------------------------------


def _resolve(ref: str, trusted: tuple[str, ...] = ()) -> Callable[..., Any]:
    doc = chain(source(1), apply({"ref": ref}))
    return loads_node(json.dumps(doc).encode(), trusted).params["fn"]


def test_graph_functions_load_under_their_public_names() -> None:
    """Every listed function loads, by its own name and by the names streamdag exports it under."""
    for ref in GRAPH_FUNCTIONS:
        module, _, qualname = ref.partition(":")
        assert _resolve(ref) is getattr(sys.modules[module], qualname)
    for ref in (
        "streamdag:decode_image",
        "streamdag.decoders:decode_image",
        "streamdag.decoders.image:decode_image",
    ):
        assert _resolve(ref) is sd.decode_image


def test_what_sd_save_writes_for_builtin_decoders_loads() -> None:
    """sd.image_handler's partial and the built-in decoders by extension round-trip."""
    from streamdag.decoders import builtin_decoders

    pipe = sd.IterableWrapper([1]).decode(
        sd.image_handler("l", size=8), by_ext={"cfg": builtin_decoders["json"]}
    )
    doc = json.loads(dumps(pipe, "json"))
    params = doc["nodes"][1]["params"]
    assert params["handlers"][0]["ref"] == "streamdag.decoders.image:decode_image_field"
    assert params["by_ext"] == {"dict": {"cfg": {"ref": "streamdag.decoders.handlers:json_value"}}}
    loaded = loads_node(dumps(pipe, "msgpack")).params
    assert loaded["handlers"][0].func is sd.image_handler().func
    assert loaded["by_ext"]["cfg"] is builtin_decoders["json"]


def test_trusting_streamdag_itself_allows_the_rest() -> None:
    """The caller's explicit widening, as for any module."""
    from streamdag.graph_io.files import loads_node as target

    assert _resolve(LOADS_NODE, ("streamdag",)) is target


def test_saving_a_streamdag_function_a_graph_cannot_name_is_refused() -> None:
    """A file that could not be loaded again is not written."""
    with pytest.raises(sd.GraphFormatError) as err:
        dumps(sd.IterableWrapper(["g.json"], name="src").map(sd.load, name="m"))
    assert str(err.value) == (
        "cannot save map node 'm': params.fn: 'streamdag.graph_io.files:load' is not one of "
        "streamdag's graph functions (streamdag.graph_io.GRAPH_FUNCTIONS), so the graph could "
        "not be loaded; use a function of your own module, or register one with "
        "@sd.register_function('name')"
    )


def test_registered_functions_stay_allowed() -> None:
    assert _resolve("test_graph_io.triple") is fns.triple


# -- what validate reports -----------------------------------------------------------


def test_validate_lists_every_function_running_may_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Functions in any param, inside partials' arguments, lists and dicts,
    by node and param; the command prints them after the summary."""
    from streamdag.decoders import builtin_decoders
    from streamdag.graph_io import FunctionUse, validate_file

    even, _ = sd.IterableWrapper([1, 2], name="src").demux(2, fns.parity, name="split")
    pipe = (
        even.map(functools.partial(fns.apply, fns.double), name="twice")
        .decode(sd.image_handler("l"), by_ext={"cfg": builtin_decoders["json"]}, name="dec")
        .collate(name="col")
    )
    path = tmp_path / "g.json"
    sd.save(pipe, path)
    uses = validate_file(path, ["tests.test_graph_io_fns"])
    assert [(u.node.name, u.param, u.ref) for u in uses] == [
        ("split", "classifier_fn", "tests.test_graph_io_fns:parity"),
        ("twice", "fn", "tests.test_graph_io_fns:apply"),
        ("twice", "fn.args[0]", "tests.test_graph_io_fns:double"),
        ("dec", "handlers[0]", "streamdag.decoders.image:decode_image_field"),
        ("dec", "by_ext.cfg", "streamdag.decoders.handlers:json_value"),
    ]
    assert all(isinstance(u, FunctionUse) for u in uses)
    assert main(["validate", str(path), "--trust", "tests.test_graph_io_fns"]) == 0
    assert capsys.readouterr().out == (
        f"{path}: ok (6 nodes, output 'col'); running it may call:\n"
        "  split.classifier_fn  tests.test_graph_io_fns:parity\n"
        "  twice.fn             tests.test_graph_io_fns:apply\n"
        "  twice.fn.args[0]     tests.test_graph_io_fns:double\n"
        "  dec.handlers[0]      streamdag.decoders.image:decode_image_field\n"
        "  dec.by_ext.cfg       streamdag.decoders.handlers:json_value\n"
    )


def test_graph_functions_never_start_ghostscript(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An EPS image is opened by Pillow through Ghostscript, a program; the
    image decoders open only the formats they document, so a graph (or a
    sample) holding EPS bytes fails to decode and nothing is started."""
    from PIL import EpsImagePlugin, UnidentifiedImageError

    started: list[Any] = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: started.append(a))
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\nshowpage\n"
    path = tmp_path / "g.json"
    path.write_text(
        json.dumps(
            chain(
                source({"bytes": base64.b64encode(eps).decode()}),
                apply({"ref": "streamdag:decode_image"}),
            )
        )
    )
    with pytest.raises(sd.NodeError) as err:
        list(sd.load(path))
    assert isinstance(err.value.__cause__, UnidentifiedImageError)
    with pytest.raises(UnidentifiedImageError):
        sd.image_handler()("x.jpg", eps)
    assert started == []

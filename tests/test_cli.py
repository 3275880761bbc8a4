"""The ``streamdag`` command end to end, in subprocesses: every verb, its
--help, its errors, and ``set`` followed by ``run``."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import streamdag as sd
from streamdag.cli import main
from tests import test_graph_io_fns as fns

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("streamdag")
VERBS = ["show", "validate", "set", "convert", "draw", "run"]


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, script: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the command (the console script, or ``python -m streamdag.cli``)."""
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "streamdag.cli"]
    base = {**os.environ, "PYTHONPATH": str(ROOT)} if not script else dict(os.environ)
    return subprocess.run(
        [*command, *args],
        cwd=cwd or ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(*args: str, **kwargs: Any) -> str:
    result = cli(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args: str, **kwargs: Any) -> str:
    """The one-line error of a failing command (exit status 1)."""
    result = cli(*args, **kwargs)
    assert result.returncode == 1, (result.stdout, result.stderr)
    return result.stderr.strip()


@pytest.fixture
def graph(tmp_path: Path) -> Path:
    """src -> shuf -> batch, with fixed ids, saved as JSON."""
    src = sd.Node("iterable_wrapper", {"iterable": range(10)}, id="s1", name="src")
    shuf = sd.Node("shuffle", {"buffer_size": 4}, (src,), id="s2", name="shuf")
    batch = sd.Node("batch", {"batch_size": 3, "drop_last": False}, (shuf,), id="b1", name="batch")
    path = tmp_path / "g.json"
    sd.save(batch, path)
    return path


def test_help_on_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    """In process (argparse exits after printing), to keep the suite fast."""
    for args in (["--help"], *([verb, "--help"] for verb in VERBS)):
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: streamdag {args[0] if len(args) > 1 else ''}".rstrip())
        assert all(verb in out for verb in VERBS) if len(args) == 1 else "FILE" in out


def test_console_script_is_installed(graph: Path) -> None:
    assert ok("validate", str(graph), script=True) == f"{graph}: ok (3 nodes, output 'batch')\n"


def test_show(graph: Path) -> None:
    assert ok("show", str(graph)) == (
        f"{graph}: 3 nodes, output 'batch'\n"
        "ID  NAME   OP                INPUTS  PARAMS\n"
        "s1  src    iterable_wrapper  -       iterable=range(0, 10)\n"
        "s2  shuf   shuffle           src     buffer_size=4\n"
        "b1  batch  batch             shuf    batch_size=3, drop_last=False\n"
    )


def test_set_then_run(graph: Path, tmp_path: Path) -> None:
    """Edit in place, then iterate: the edit shows in the shapes printed."""
    assert ok("set", str(graph), "batch.batch_size=4", "shuf.buffer_size=2") == f"wrote {graph}\n"
    params = {n["name"]: n["params"] for n in json.loads(graph.read_text())["nodes"]}
    assert params["batch"]["batch_size"] == 4 and params["shuf"]["buffer_size"] == 2
    out = ok("run", str(graph), "--seed", "7")
    lines = out.splitlines()
    assert lines[:2] == ["element 0: list[4] of int", "element 2: list[2] of int"]
    assert re.fullmatch(r"3 elements in \d+\.\d{3} s \([\d,]+\.\d elements/s\)", lines[2])
    assert len(lines) == 3
    limited = ok("run", str(graph), "--seed", "7", "--limit", "2").splitlines()
    assert limited[0] == "element 0: list[4] of int" and limited[1].startswith("2 elements in ")
    with sd.DataLoader2(sd.load(graph), seed=7) as loader:
        assert [len(b) for b in loader] == [4, 4, 2]


def test_set_to_output_file_with_typed_values(graph: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.sdag"
    ok(
        "set",
        str(graph),
        "batch.drop_last=true",
        'src.iterable={"range": [0, 8, 2]}',
        "-o",
        str(out),
    )
    loaded = sd.Graph.load(out)
    assert loaded.find(name="batch").params["drop_last"] is True
    assert loaded.find(name="src").params["iterable"] == range(0, 8, 2)
    assert json.loads(graph.read_text())["nodes"][2]["params"]["drop_last"] is False


def test_set_errors(graph: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In process: each bad assignment is one line on stderr and exit status 1."""
    prefix = "streamdag set: error: "

    def fails(*args: str) -> str:
        assert main(list(args)) == 1
        return capsys.readouterr().err.strip()

    assert fails("set", str(graph), "nope.batch_size=1") == (
        prefix + "no node 'nope' in this graph (nodes: batch, shuf, src)"
    )
    assert fails("set", str(graph), "batch.batch_size=0") == (
        prefix + "batch node 'batch': batch: batch_size must be an int >= 1, got 0"
    )
    assert fails("set", str(graph), "batch.size=2") == (
        prefix + "batch node 'batch' has no param 'size' (its params: batch_size, drop_last)"
    )
    assert fails("set", str(graph), "batch") == prefix + "'batch': expected NODE.PARAM=VALUE"
    assert fails("set", str(graph), 'batch.batch_size={"x": 1}') == (
        prefix + "batch.batch_size: a map here must have exactly one of the keys ref, tuple, "
        "dict, range, bytes, float (ref may add args, kwargs); got keys 'x'"
    )


def test_set_function_reference_without_importing_it(graph: Path, tmp_path: Path) -> None:
    """set writes a reference it does not resolve; run refuses it until trusted."""
    path = tmp_path / "m.json"
    sd.save(sd.IterableWrapper([1, 2], name="src").map(abs, name="fn"), path)
    ok("set", str(path), 'fn.fn={"ref": "tests.test_graph_io_fns:double"}')
    assert fails("run", str(path)) == (
        f"streamdag run: error: {path}: nodes[1].params.fn.ref: refusing to import module "
        "'tests.test_graph_io_fns' for 'tests.test_graph_io_fns:double': loading imports only "
        "streamdag and trusted modules; if you trust this file and that module, pass "
        "trusted_modules=['tests.test_graph_io_fns']"
    )
    out = ok("run", str(path), "--trust", "tests.test_graph_io_fns", script=True)
    assert out.startswith("element 0: int\n2 elements in ")


def test_validate(graph: Path, tmp_path: Path) -> None:
    assert ok("validate", str(graph)) == f"{graph}: ok (3 nodes, output 'batch')\n"
    bad = tmp_path / "bad.json"
    bad.write_text(graph.read_text().replace('"version": 1', '"version": 9'))
    assert fails("validate", str(bad)) == (
        f"streamdag validate: error: {bad}: version: the file has format version 9, but this "
        "streamdag reads versions 1 to 1; upgrade streamdag to load it"
    )
    assert fails("validate", str(tmp_path / "missing.json")).startswith(
        "streamdag validate: error: [Errno 2] No such file or directory"
    )


def test_convert_round_trip(graph: Path, tmp_path: Path) -> None:
    """JSON -> msgpack -> JSON gives the same text back."""
    packed, back = tmp_path / "g.sdag", tmp_path / "back.json"
    assert ok("convert", str(graph), str(packed)) == f"wrote {packed}\n"
    assert packed.read_bytes()[:1] != b"{"
    ok("convert", str(packed), str(back))
    assert back.read_text() == graph.read_text()
    assert fails("convert", str(graph), str(tmp_path / "g.yaml")) == (
        f"streamdag convert: error: {tmp_path / 'g.yaml'}: unknown graph file extension "
        "'.yaml'; use .sdag (msgpack) or .json (JSON text)"
    )


def test_draw_dot(graph: Path, tmp_path: Path) -> None:
    expected = (
        "digraph streamdag {\n  rankdir=TB;\n"
        '  node [shape=box, fontname="Helvetica", fontsize=10];\n'
        '  "s1" [label="src\\niterable_wrapper\\niterable=range(0, 10)"];\n'
        '  "s2" [label="shuf\\nshuffle\\nbuffer_size=4"];\n'
        '  "b1" [label="batch\\nbatch\\nbatch_size=3\\ndrop_last=False", peripheries=2];\n'
        '  "s1" -> "s2";\n  "s2" -> "b1";\n}\n'
    )
    assert ok("draw", str(graph)) == expected
    dot = tmp_path / "g.dot"
    ok("draw", str(graph), "-o", str(dot))
    assert dot.read_text() == expected


def test_draw_svg_needs_graphviz(graph: Path, tmp_path: Path) -> None:
    """Without `dot` on PATH the message says how to get it; with it, an SVG is written."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    svg = tmp_path / "g.svg"
    assert fails("draw", str(graph), "-o", str(svg), env={"PATH": str(empty)}) == (
        "streamdag draw: error: drawing .svg needs the graphviz 'dot' program, which is not on "
        "PATH; install graphviz (apt install graphviz, brew install graphviz or conda install "
        "graphviz), or write g.dot and render it elsewhere"
    )
    if shutil.which("dot") is None:
        pytest.skip("graphviz is not installed here")
    ok("draw", str(graph), "-o", str(svg))
    assert "<svg" in svg.read_text()


def test_custom_op_needs_its_module_trusted(tmp_path: Path) -> None:
    """A graph with a user op says which module provides it, and loads once trusted."""
    path = tmp_path / "custom.sdag"
    sd.save(fns.repeat_each(sd.IterableWrapper([1, 2], name="src"), 2, name="rep"), path)
    assert fails("show", str(path)) == (
        f"streamdag show: error: {path}: nodes[1].op: unknown op 'test_graph_io.repeat_each'; "
        "it comes from module 'tests.test_graph_io_fns': import it before loading or pass "
        "trusted_modules=['tests.test_graph_io_fns']"
    )
    out = ok("run", str(path), "--trust", "tests.test_graph_io_fns")
    assert out.startswith("element 0: int\n4 elements in ")


@pytest.mark.slow  # imports torch in a subprocess
def test_run_collated_tensors(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    sd.save(sd.IterableWrapper(range(10)).batch(4).collate(), path)
    lines = ok("run", str(path)).splitlines()
    assert lines[:2] == ["element 0: Tensor(4) int64", "element 2: Tensor(2) int64"]


def test_run_with_workers(tmp_path: Path) -> None:
    """Two workers split the elements after the sharding filter: 5 each, in batches of 3."""
    path = tmp_path / "sharded.sdag"
    sd.save(sd.IterableWrapper(range(10)).shuffle(4).sharding_filter().batch(3), path)
    if not hasattr(sd, "MultiProcessingReadingService"):
        assert fails("run", str(path), "--workers", "2") == (
            "streamdag run: error: --workers needs sd.MultiProcessingReadingService, which this "
            "streamdag does not have yet; run without --workers"
        )
        return
    lines = ok("run", str(path), "--workers", "2", "--seed", "1").splitlines()
    assert lines[0] == "element 0: list[3] of int"
    assert lines[-1].startswith("4 elements in ")


def test_edit_graph_example_runs(tmp_path: Path) -> None:
    """examples/edit_graph.py saves, edits, reloads and runs a pipeline."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "edit_graph.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "first batches: [[0, 4, 16, 36, 64, 100, 144, 196], "
        "[256, 324, 400, 484, 576, 676, 784, 900]]"
    )
    last_row = ok("show", str(tmp_path / "edited.sdag")).splitlines()[-1].split()
    assert last_row[1:] == ["batch", "batch", "even", "batch_size=8,", "drop_last=False"]


def test_run_reports_when_interrupted(tmp_path: Path) -> None:
    """Ctrl-C on an endless pipeline still prints the count and throughput (exit 130)."""
    path = tmp_path / "endless.json"
    sd.save(sd.IterableWrapper(range(5)).cycle(), path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamdag.cli", "run", str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "element 0: int\n"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert re.fullmatch(
        r"\d+ elements in \d+\.\d{3} s \([\d,]+\.\d elements/s\) \(interrupted\)\n", out
    )


def _profiled_graph(tmp_path: Path) -> Path:
    from tests.support.rs_functions import burn, square

    path = tmp_path / "p.json"
    dp = (
        sd.IterableWrapper(range(300))
        .map(square, name="cheap")
        .map(burn, name="heavy")
        .batch(10, name="batch")
    )
    sd.save(dp, path)
    return path


@pytest.mark.parametrize("workers", ["0", "2"])
def test_run_profile_prints_nodes_and_names_the_bottleneck(tmp_path: Path, workers: str) -> None:
    path = _profiled_graph(tmp_path)
    out = ok("run", str(path), "--profile", "--workers", workers, "--trust", "tests.support")
    table = out[out.index("node ") :].splitlines()
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in table[2:6])}
    copies = int(workers) or 1  # unsharded: every worker reads all 300
    assert rows["map 'cheap'"][:2] == [f"{300 * copies:,}"] * 2  # in, out
    assert rows["batch 'batch'"][:2] == [f"{300 * copies:,}", f"{30 * copies}"]
    assert "bottleneck: map 'heavy'" in out


def test_draw_profile_annotates_throughput_and_marks_the_bottleneck(tmp_path: Path) -> None:
    path = _profiled_graph(tmp_path)
    dot = ok("draw", str(path), "--profile", "--trust", "tests.support")
    heavy = next(line for line in dot.splitlines() if "heavy" in line)
    cheap = next(line for line in dot.splitlines() if "cheap" in line)
    assert re.search(r"\\n[\d,]+ el/s, \d+% time", heavy) and "color=red" in heavy
    assert "el/s" in cheap and "color=red" not in cheap

"""Misspelt params and op names, out-of-range JSON numbers and a UTF-8 BOM in
hand-edited graphs: each is refused with a message that says what to write
(or, for the BOM, accepted), never silently dropped or run with a default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import streamdag as sd
from streamdag.cli import main
from streamdag.graph_io import loads_node

SHUFFLE_PARAMS = "(its params: buffer_size, decode_late, enabled, initial, seed)"


def pipeline() -> sd.DataPipe[Any]:
    src = sd.IterableWrapper(range(10), name="src")
    return src.shuffle(4, name="shuf").batch(3, name="batch")


def edited(tmp_path: Path, change: Any, name: str = "g.json") -> Path:
    """The pipeline saved as JSON, with ``change(doc)`` applied as a person
    editing the file would."""
    path = tmp_path / name
    sd.save(pipeline(), path)
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))
    return path


def node_doc(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in doc["nodes"] if n["name"] == name)


def misspell_buffer_size(doc: dict[str, Any]) -> None:
    params = node_doc(doc, "shuf")["params"]
    params["buffer_sze"] = params.pop("buffer_size")


def test_misspelt_param_in_a_json_file_fails_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = edited(tmp_path, misspell_buffer_size)
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"streamdag validate: error: {path}: nodes[1]: shuffle node 'shuf': shuffle: unknown "
        f"param 'buffer_sze' {SHUFFLE_PARAMS}; did you mean 'buffer_size'?\n"
    )


def test_extra_misspelt_param_is_not_dropped_by_load(tmp_path: Path) -> None:
    """Next to the right key the typo used to vanish; now loading refuses it."""
    path = edited(tmp_path, lambda doc: node_doc(doc, "shuf")["params"].update(inital=5))
    with pytest.raises(sd.GraphFormatError) as err:
        sd.load(path)
    assert str(err.value) == (
        f"{path}: nodes[1]: shuffle node 'shuf': shuffle: unknown param 'inital' "
        f"{SHUFFLE_PARAMS}; did you mean 'initial'?"
    )


def test_a_hand_written_node_may_leave_out_params_with_defaults(tmp_path: Path) -> None:
    """Unknown keys are refused, missing optional ones still take their default."""
    path = edited(tmp_path, lambda doc: node_doc(doc, "shuf")["params"].pop("initial"))
    graph = sd.Graph.load(path)
    assert dict(graph.node("shuf").params) == {
        "buffer_size": 4,
        "decode_late": True,
        "enabled": True,
        "seed": None,
    }
    edited_graph = graph.set_param("shuf", "initial", 2)  # a declared param it did not have
    assert edited_graph.node("shuf").params["initial"] == 2


def test_insert_after_refuses_a_misspelt_param() -> None:
    graph = sd.Graph(pipeline())
    with pytest.raises(sd.ParamError) as err:
        graph.insert_after("shuf", "header", limt=7)
    assert str(err.value) == (
        "header: unknown param 'limt' (its params: limit); did you mean 'limit'?"
    )
    with pytest.raises(sd.ParamError) as err:
        graph.insert_after("shuf", "cycle", cout=2)  # count is optional: used to run forever
    assert str(err.value) == (
        "cycle: unknown param 'cout' (its params: count); did you mean 'count'?"
    )


def test_replace_refuses_a_misspelt_param() -> None:
    graph = sd.Graph(pipeline())
    with pytest.raises(sd.ParamError) as err:
        graph.replace("shuf", sd.Node("shuffle", {"buffer_size": 4, "inital": 3}))
    assert str(err.value) == (
        f"shuffle node 'shuf': shuffle: unknown param 'inital' {SHUFFLE_PARAMS}; "
        "did you mean 'initial'?"
    )


def test_set_param_suggests_the_closest_param() -> None:
    graph = sd.Graph(pipeline())
    with pytest.raises(sd.ParamError) as err:
        graph.set_param("shuf", "bufer_size", 10)
    assert str(err.value) == (
        f"shuffle node 'shuf' has no param 'bufer_size' {SHUFFLE_PARAMS}; "
        "did you mean 'buffer_size'?"
    )


def test_unknown_op_suggests_the_closest_op(tmp_path: Path) -> None:
    graph = sd.Graph(pipeline())
    with pytest.raises(sd.ParamError, match=r"^unknown op 'shufle' \(did you mean 'shuffle'\?\): "):
        graph.insert_after("shuf", "shufle", buffer_size=3)
    path = edited(tmp_path, lambda doc: node_doc(doc, "shuf").update(op="shufle"))
    with pytest.raises(sd.GraphFormatError) as err:
        sd.load(path)
    assert str(err.value) == (
        f"{path}: nodes[1].op: unknown op 'shufle' (did you mean 'shuffle'?); import the "
        "module that registers it, or install the package that provides it through the "
        "'streamdag.readers' entry point"
    )


@pytest.mark.parametrize("number", ["1e999", "-1e999"])
def test_json_number_out_of_float_range_is_refused(tmp_path: Path, number: str) -> None:
    """A literal that overflows to infinity is refused like NaN, not loaded as inf."""
    path = tmp_path / "g.json"
    sd.save(sd.IterableWrapper([1.5, 2.5], name="src"), path)
    path.write_text(path.read_text().replace("2.5", number))
    with pytest.raises(sd.GraphFormatError) as err:
        sd.load(path)
    assert str(err.value) == (
        f"{path}: invalid JSON: the number {number} is out of range for a float "
        '(write non-finite floats as {"float": "inf"})'
    )


def test_json_with_a_utf8_bom_is_read_as_json(tmp_path: Path) -> None:
    """Editors on Windows save a BOM; the file is still JSON, not msgpack."""
    path = tmp_path / "g.json"
    sd.save(pipeline(), path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    graph = sd.Graph.load(path)
    assert [n.name for n in graph] == ["src", "shuf", "batch"]
    with sd.DataLoader2(graph.to_datapipe(), seed=1) as loader:
        with sd.DataLoader2(pipeline(), seed=1) as expected:
            assert list(loader) == list(expected)
    with pytest.raises(sd.GraphFormatError) as err:
        loads_node(b'\xef\xbb\xbf{"format": ', source="g")
    assert str(err.value) == "g: invalid JSON at line 1 column 12: Expecting value"

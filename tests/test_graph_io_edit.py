"""sd.Graph: immutable editing. Every edit returns a new validated graph,
leaves the original untouched, keeps ids and names, and the edited graph
runs and round-trips."""

from __future__ import annotations

from typing import Any

import pytest

import streamdag as sd
from tests import test_graph_io_fns as fns


def pipeline() -> sd.DataPipe[Any]:
    src = sd.IterableWrapper(range(10), name="src")
    return src.shuffle(4, name="shuf").map(fns.double, name="dbl").batch(3, name="batch")


def run(graph: sd.Graph, seed: int = 0) -> list[Any]:
    with sd.DataLoader2(graph.to_datapipe(), seed=seed) as loader:
        return list(loader)


def shape(graph: sd.Graph) -> list[tuple[str, str | None, list[str | None]]]:
    return [(n.op, n.name, [i.name for i in n.inputs]) for n in graph]


def test_nodes_find_and_lookup() -> None:
    g = sd.Graph(pipeline())
    assert [n.op for n in g.nodes] == ["iterable_wrapper", "shuffle", "map", "batch"]
    assert g.find(name="shuf") is g.nodes[1] is g.node("shuf") is g.node(g.nodes[1].id)
    assert g.find(op="map").name == "dbl"
    assert g.find_all(op="nope") == []
    assert g.consumers("src") == [g.nodes[1]]
    assert len(g) == 4 and g.output is g.nodes[-1]
    with pytest.raises(
        LookupError,
        match=r"find\(op='zip'\): expected exactly one node, found "
        r"no node",
    ):
        g.find(op="zip")
    with pytest.raises(
        LookupError,
        match=r"no node 'nope' in this graph \(nodes: batch, dbl, "
        r"shuf, src\)",
    ):
        g.node("nope")


def test_set_param_returns_a_new_graph() -> None:
    g = sd.Graph(pipeline())
    g2 = g.set_param("batch", "batch_size", 5)
    assert g.find(name="batch").params["batch_size"] == 3
    assert g2.find(name="batch").params["batch_size"] == 5
    assert [n.id for n in g2] == [n.id for n in g]
    assert g2.nodes[:3] == g.nodes[:3]  # upstream nodes are shared, not copied
    assert run(g2, seed=1) == [[x for b in run(g, seed=1) for x in b][i : i + 5] for i in (0, 5)]


def test_set_param_is_validated_and_refuses_unknown_keys() -> None:
    g = sd.Graph(pipeline())
    with pytest.raises(
        sd.ParamError,
        match=r"shuffle node 'shuf': shuffle: buffer_size must be "
        r"an int >= 1, got 0",
    ):
        g.set_param("shuf", "buffer_size", 0)
    with pytest.raises(
        sd.ParamError,
        match=r"shuffle node 'shuf' has no param 'bufer_size' "
        r"\(its params: buffer_size, decode_late, enabled, initial, seed\)",
    ):
        g.set_param("shuf", "bufer_size", 10)


def test_set_param_to_a_function() -> None:
    g = sd.Graph(pipeline()).set_param("dbl", "fn", fns.Ops.negate)
    assert sorted(x for b in run(g) for x in b) == list(range(-9, 1))


def test_remove_splices_a_single_input_node() -> None:
    g = sd.Graph(pipeline()).remove("shuf")
    assert shape(g) == [
        ("iterable_wrapper", "src", []),
        ("map", "dbl", ["src"]),
        ("batch", "batch", ["dbl"]),
    ]
    assert run(g) == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]
    assert shape(sd.Graph(pipeline()).remove("batch"))[-1] == ("map", "dbl", ["shuf"])


def test_remove_refuses_ambiguous_nodes() -> None:
    zipped = sd.Graph(sd.IterableWrapper([1], name="a").zip(sd.IterableWrapper([2]), name="z"))
    with pytest.raises(
        sd.ParamError,
        match=r"cannot remove zip node 'z': it has 2 inputs, so its "
        r"consumers' new input is ambiguous; use replace\(\) instead",
    ):
        zipped.remove("z")
    with pytest.raises(
        sd.ParamError,
        match=r"cannot remove iterable_wrapper node 'a': it has no "
        r"input to give its consumers; use replace\(\) instead",
    ):
        zipped.remove("a")
    a, b = sd.IterableWrapper([1]).fork(2, name="f")
    forked = sd.Graph(a.zip(b))
    for name in ("f", "f.0"):
        with pytest.raises(sd.ParamError, match="is part of a fork or demux"):
            forked.remove(name)


def test_insert_after() -> None:
    g = sd.Graph(pipeline()).insert_after(
        "dbl", "filter", name="even4", fn=fns.is_even, input_col=None
    )
    assert shape(g)[2:] == [
        ("map", "dbl", ["shuf"]),
        ("filter", "even4", ["dbl"]),
        ("batch", "batch", ["even4"]),
    ]
    g_out = sd.Graph(pipeline()).insert_after("batch", "header", limit=2)
    assert g_out.output.op == "header" and len(run(g_out)) == 2
    with pytest.raises(sd.ParamError, match="header: limit must be an int >= 0"):
        sd.Graph(pipeline()).insert_after("batch", "header", limit=-1)
    with pytest.raises(sd.ParamError, match="unknown op 'nope'"):
        sd.Graph(pipeline()).insert_after("batch", "nope")


def test_replace_takes_inputs_and_name() -> None:
    g = sd.Graph(pipeline())
    g2 = g.replace("shuf", sd.Node("header", {"limit": 4}))
    assert shape(g2)[1] == ("header", "shuf", ["src"])
    assert run(g2) == [[0, 2, 4], [6]]
    g3 = g.replace("src", sd.IterableWrapper([5, 6], name="new_src"))
    assert shape(g3)[:2] == [("iterable_wrapper", "new_src", []), ("shuffle", "shuf", ["new_src"])]
    with pytest.raises(sd.ParamError, match="cycle through batch node 'batch'"):
        g.replace("dbl", sd.Node("map", {"fn": fns.double}, (g.find(name="batch"),)))


def test_graph_refuses_two_nodes_with_one_id() -> None:
    """A file could not tell them apart."""
    a = sd.Node("iterable_wrapper", {"iterable": [1]}, id="x", name="a")
    b = sd.Node("iterable_wrapper", {"iterable": [2]}, id="x", name="b")
    with pytest.raises(
        sd.ParamError,
        match=r"two different nodes share the id 'x' "
        r"\(iterable_wrapper node 'a' and iterable_wrapper node 'b'\)",
    ):
        sd.Graph(sd.Node("zip", {}, (a, b)))
    with pytest.raises(sd.ParamError, match="two different nodes share the id 'x'"):
        sd.save(sd.Node("zip", {}, (a, b)), "unused.json")


def test_fork_graphs_edit_and_keep_hubs_shared() -> None:
    a, b = sd.IterableWrapper(range(6), name="src").fork(2, name="f")
    g = sd.Graph(a.map(fns.double, name="m").zip(b, name="z")).set_param(
        "src", "iterable", range(3)
    )
    hub = g.find(name="f")
    assert g.find(name="f.0").inputs[0] is hub is g.find(name="f.1").inputs[0]
    assert run(g) == [(0, 0), (2, 1), (4, 2)]


def test_edited_graph_saves_and_loads(tmp_path) -> None:
    g = (
        sd.Graph(pipeline())
        .set_param("shuf", "buffer_size", 2)
        .insert_after("src", "header", limit=5, name="h")
    )
    path = tmp_path / "edited.json"
    g.save(path)
    loaded = sd.Graph.load(path, trusted_modules=["tests.test_graph_io_fns"])
    assert shape(loaded) == shape(g)
    assert run(loaded, seed=4) == run(g, seed=4)

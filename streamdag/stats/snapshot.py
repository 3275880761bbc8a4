"""What one process knows about its part of the pipeline, as plain data that
travels from workers to the main process (pickle) or between ranks."""

from __future__ import annotations

from collections.abc import Iterable
from time import perf_counter
from typing import Any

from ..core.node import Node, walk
from ..runtime.graph import RuntimeGraph
from .counts import element_counts
from .sampler import StackSampler


def snapshot(graphs: Iterable[RuntimeGraph], sampler: StackSampler | None) -> dict[str, Any]:
    """``{"nodes": {id: {"in", "out", counters..., "busy_s"}}, "cpu_s"}``;
    times only with a sampler (one per process: thread workers leave theirs
    to the main process's)."""
    nodes: dict[str, dict[str, Any]] = {}
    for graph in graphs:
        counters = {key: node.stats() for key, node in graph.nodes.items()}
        for key, (n_in, n_out) in element_counts(graph, counters).items():
            part = {"in": n_in, "out": n_out, **counters[key]}
            nodes[key] = _add(nodes[key], part) if key in nodes else part
    if sampler is None:
        return {"nodes": nodes}
    for key, seconds in list(sampler.busy.items()):
        nodes.setdefault(key, {})["busy_s"] = seconds
    return {"nodes": nodes, "wall_s": perf_counter() - sampler.started}


def _add(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """The counts of two copies of one node in one process (the virtual
    workers of a worker); an unknown count (None) stays unknown."""
    return {
        key: None if value is None or total.get(key) is None else total[key] + value
        for key, value in part.items()
    }


def by_position(snapshots: list[dict[str, Any]], output: Node) -> list[dict[str, Any]]:
    """Snapshots keyed by each node's position in ``output``'s graph instead of
    its id: ranks build the same pipeline, but with ids of their own."""
    position = {spec.id: str(i) for i, spec in enumerate(walk(output))}
    return [
        {**s, "nodes": {position[k]: v for k, v in s["nodes"].items() if k in position}}
        for s in snapshots
    ]


def by_id(snapshots: list[dict[str, Any]], output: Node) -> list[dict[str, Any]]:
    """The inverse of ``by_position`` for this rank's ``output``."""
    ids = {str(i): spec.id for i, spec in enumerate(walk(output))}
    return [
        {**s, "nodes": {ids[k]: v for k, v in s["nodes"].items() if k in ids}} for s in snapshots
    ]

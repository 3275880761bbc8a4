"""Elements in and out of every node without a counter per element.

A node reports what it knows for free (sources their C iterator positions,
Python-level nodes their own per-batch or per-file counters, see
``RuntimeNode.counted``); the rest follows from the edges: what a node takes
in is what its inputs passed on when it is their only consumer, and a
``passthrough`` node passes on what it takes in less what it skipped. A count
no equation reaches stays None (shown as "?"), e.g. between two filters."""

from __future__ import annotations

from ..runtime.graph import RuntimeGraph

Counts = tuple[int | None, int | None]


def element_counts(graph: RuntimeGraph, counters: dict[str, dict[str, int]]) -> dict[str, Counts]:
    """``{node id: (elements in, elements out)}`` for one process's graph;
    ``counters`` are the nodes' ``stats()`` (for ``skipped``)."""
    nodes = list(graph.nodes.values())
    ins: dict[str, int | None] = {}
    outs: dict[str, int | None] = {}
    consumers: dict[str, int] = {key: 0 for key in graph.nodes}
    for node in nodes:
        ins[node.spec.id], outs[node.spec.id] = node.counted()
        for source in node.inputs:
            consumers[source.spec.id] += 1
    last = graph.output.spec.id
    if outs[last] is None and graph.counting:
        outs[last] = graph.delivered
    changed = True
    while changed:
        changed = False
        for node in nodes:
            key = node.spec.id
            sources = [s.spec.id for s in node.inputs]
            if sources and all(consumers[s] == 1 for s in sources):
                passed = [outs[s] for s in sources]
                if ins[key] is None and None not in passed:
                    ins[key] = sum(passed)  # type: ignore[arg-type]
                    changed = True
                elif ins[key] is not None and len(sources) == 1 and outs[sources[0]] is None:
                    outs[sources[0]] = ins[key]
                    changed = True
            if node.passthrough:
                skipped = counters.get(key, {}).get("skipped", 0)
                if outs[key] is None and ins[key] is not None:
                    outs[key] = ins[key] - skipped  # type: ignore[operator]
                    changed = True
                elif ins[key] is None and outs[key] is not None:
                    ins[key] = outs[key] + skipped  # type: ignore[operator]
                    changed = True
    return {key: (ins[key], outs[key]) for key in graph.nodes}

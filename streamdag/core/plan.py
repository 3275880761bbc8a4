"""The execution plan: the graph as it runs, where that differs from the graph
as written only in memory and speed, never in the elements or their order.

A plan is the graph after a list of rules, each ``Rule.apply(output) ->
output``, each keeping node ids (statistics, errors and seeds name the nodes
of the graph as written); a new rewrite is one more rule. ``RULES`` are
applied to every graph that runs; a worker service applies the placement
rules (``placement.py``) to the graph it runs in the main process.

``DecodeLate``: a shuffle after a decode runs before it. A buffer of decoded
samples is large (a 224x224 RGB image is 150 KB, its JPEG about 20 KB), and
a buffer shuffle picks positions without looking at the elements, so a
shuffle moved above a chain of one-to-one nodes yields the same elements in
the same order, as long as those nodes compute each output from its element
alone. The rule crosses only nodes that provably do (the spec's
``elementwise``): a ``decode`` that raises on bad input, the built-in
reshaping ops, and a ``map`` declared ``pure=True`` or drawing from its
per-element generator (``rng=True``; the moved map's ``rng`` param is set
to the shuffle's id, and it numbers elements as they entered the shuffle,
so it draws what it would draw before it). A plain ``map(fn)`` may draw from
a global RNG or have side effects: the chain stops there. The buffer then
holds encoded samples, the decode runs as they leave it, the first batch
waits for one batch of decodes instead of a buffer's worth, and a resume
replays encoded samples. ``shuffle(decode_late=False)`` keeps the graph as
written.

Node ids are kept, so statistics, errors and seeds still name the nodes of
the graph as written; each node keeps its position in that graph too, which
its seeds derive from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from .node import Node, walk
from .registry import get_op


class Rule(Protocol):
    def apply(self, output: Node) -> Node:
        """``output``'s graph rewritten; node ids kept."""
        ...


class DecodeLate:
    """Every shuffle whose ``decode_late`` is on moved above the decode of the
    one-to-one chain feeding it."""

    def apply(self, output: Node) -> Node:
        specs = walk(output)
        consumers = Counter(i.id for spec in specs for i in spec.inputs)
        rebuilt: dict[str, Node] = {}
        for spec in specs:
            node = spec.evolve(inputs=tuple(rebuilt[i.id] for i in spec.inputs))
            if node.op == "shuffle" and _decodes_late(node):
                node = _decode_after(node, consumers)
            rebuilt[spec.id] = node
        return rebuilt[output.id]


RULES: tuple[Rule, ...] = (DecodeLate(),)


def apply_rules(output: Node, rules: Iterable[Rule]) -> Node:
    for rule in rules:
        output = rule.apply(output)
    return output


def execution_plan(output: Node) -> Node:
    """``output``'s graph as it runs: after every rule of ``RULES``."""
    return apply_rules(output, RULES)


def _decodes_late(shuffle: Node) -> bool:
    """Asked for, and the shuffle shuffles (a disabled one passes elements
    through: moving it gains nothing)."""
    spec = get_op("shuffle")
    return bool(spec.value(shuffle.params, "decode_late") and spec.value(shuffle.params, "enabled"))


def _decode_after(shuffle: Node, consumers: Counter[str]) -> Node:
    """The shuffle moved above the farthest decode of the one-to-one chain
    feeding it, that chain rebuilt on top of it; the shuffle itself if there
    is no decode to move above."""
    chain: list[Node] = []  # nearest the shuffle first
    node = shuffle.inputs[0]
    while consumers[node.id] == 1 and get_op(node.op).elementwise(node.params):
        chain.append(node)
        node = node.inputs[0]
    decodes = [i for i, n in enumerate(chain) if get_op(n.op).decodes]
    if not decodes:
        return shuffle
    crossed = chain[: decodes[-1] + 1]
    top = shuffle.evolve(inputs=crossed[-1].inputs)
    for node in reversed(crossed):
        if node.op == "map" and node.params.get("rng") is True:
            # numbers its elements as they entered the shuffle (transforms/map_rng.py)
            node = node.evolve(params={**node.params, "rng": shuffle.id})
        top = node.evolve(inputs=(top,))
    return top

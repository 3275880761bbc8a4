"""The execution plan: the graph as it runs, where that differs from the graph
as written only in memory and speed, never in the elements or their order.

One rewrite: a shuffle after a decode runs before it. A buffer of decoded
samples is large (a 224x224 RGB image is 150 KB, its JPEG about 20 KB), and
a buffer shuffle picks positions without looking at the elements, so a
shuffle moved above a chain of one-to-one nodes (``map``, a ``decode`` that
raises on bad input) yields the same elements in the same order, as long as
those nodes compute each output from its element alone. The buffer then
holds encoded samples, the decode runs as they leave it, the first batch
waits for one batch of decodes instead of a buffer's worth, and a resume
replays encoded samples. ``shuffle(decode_late=False)`` keeps the graph as
written (for maps with side effects, or that draw random numbers and must
draw them in input order).

Node ids are kept, so statistics, errors and seeds still name the nodes of
the graph as written; each node keeps its position in that graph too, which
its seeds derive from.
"""

from __future__ import annotations

from collections import Counter

from .node import Node, walk
from .registry import get_op


def execution_plan(output: Node) -> Node:
    """``output``'s graph with every movable shuffle moved above its decode."""
    specs = walk(output)
    consumers = Counter(i.id for spec in specs for i in spec.inputs)
    rebuilt: dict[str, Node] = {}
    for spec in specs:
        node = spec.evolve(inputs=tuple(rebuilt[i.id] for i in spec.inputs))
        if node.op == "shuffle" and node.params.get("decode_late", True):
            node = _decode_after(node, consumers)
        rebuilt[spec.id] = node
    return rebuilt[output.id]


def _decode_after(shuffle: Node, consumers: Counter[str]) -> Node:
    """The shuffle moved above the farthest decode of the one-to-one chain
    feeding it, that chain rebuilt on top of it; the shuffle itself if there
    is no decode to move above."""
    chain: list[Node] = []  # nearest the shuffle first
    node = shuffle.inputs[0]
    while consumers[node.id] == 1 and get_op(node.op).runtime.elementwise(node.params):
        chain.append(node)
        node = node.inputs[0]
    decodes = [i for i, n in enumerate(chain) if get_op(n.op).runtime.decodes]
    if not decodes:
        return shuffle
    crossed = chain[:decodes[-1] + 1]
    top = shuffle.evolve(inputs=crossed[-1].inputs)
    for node in reversed(crossed):
        top = node.evolve(inputs=(top,))
    return top

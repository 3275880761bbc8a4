"""Sharding points: the nodes that yield only this worker's share of their
input (``sharding_filter``, a shardable ``@sd.reader``), and the rule that a
path from a source to the output passes at most one of them.

A second sharding point on the same path splits the already split data
again: with n workers (ranks x workers per rank) each keeps 1/n² of it and
the rest is lost, without an error. torch's ``graph_settings.apply_sharding``
refuses the same ("sharding twice on a single pipeline"). Sharding points on
parallel branches that are joined later (zip, concat, mux) each split their
own input once: that is fine."""

from __future__ import annotations

from ..errors import ParamError
from .node import Node, walk
from .registry import get_op


def is_sharding_point(spec: Node) -> bool:
    """Does this node yield only this worker's share of its input?"""
    return get_op(spec.op).splits_data


def check_sharded_once(output: Node) -> None:
    """ParamError naming both nodes if a path from a source to ``output``
    passes two sharding points."""
    nearest: dict[str, Node | None] = {}  # the sharding point at or above each node
    for spec in walk(output):
        above = next((nearest[i.id] for i in spec.inputs if nearest[i.id] is not None), None)
        if is_sharding_point(spec):
            if above is not None:
                raise ParamError(_twice(above, spec))
            above = spec
        nearest[spec.id] = above


def _twice(first: Node, second: Node) -> str:
    filters = [n for n in (second, first) if n.op == "sharding_filter"]
    if len(filters) == 1:
        reader = first if filters[0] is second else second
        fix = f"remove the sharding_filter: {reader.op!r} yields each worker's share by itself"
    else:
        fix = (
            "remove one of them (usually the later one: splitting the shard files, not "
            "the samples, spares each worker reading what it would discard)"
        )
    return (
        f"sharding twice on one path: {second.label} would split again what "
        f"{first.label} has already split between the workers, so each of n workers "
        "(ranks x workers per rank) would keep 1/n² of the data and the rest would be "
        f"lost. Shard once on each path from a source to the output: {fix}"
    )

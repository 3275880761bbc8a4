"""Whether a node is well formed in its graph: its op is registered, it has
the right number of inputs, the op accepts its params, and fork/demux hubs
feed only their branch nodes. Used when loading and after every edit."""

from __future__ import annotations

from ..core.node import Node, walk
from ..core.registry import get_op
from ..errors import ParamError


def check_node(node: Node) -> None:
    """ParamError naming the node if it is not well formed."""
    try:
        opdef = get_op(node.op)
        if opdef.runtime_only:
            raise ParamError(
                f"{node.op}: this node is made by worker reading services while a "
                "graph runs and cannot be written in a graph"
            )
        opdef.check_inputs(len(node.inputs))
        opdef.complete(node.params)
    except ParamError as exc:
        raise ParamError(f"{node.label}: {exc}") from None
    for source in node.inputs:
        is_hub = get_op(source.op).hub
        if is_hub and node.op != "branch":
            raise ParamError(
                f"{node.label}: reads {source.label} directly; a fork or demux "
                "output is read through its branch nodes"
            )
        if node.op == "branch" and not is_hub:
            raise ParamError(
                f"{node.label}: input must be a fork or demux node, got {source.label}"
            )
        outputs = get_op(source.op).outputs(source.params) if is_hub else 0
        if node.op == "branch" and node.params["index"] >= outputs:
            raise ParamError(
                f"{node.label}: index {node.params['index']} is out of range for "
                f"{source.label} with {outputs} outputs"
            )


def check_graph(output: Node) -> list[Node]:
    """The graph's nodes, inputs first, each checked; ParamError on the first
    bad node or if two different nodes share an id (a file could not tell them
    apart)."""
    try:
        nodes = walk(output)
    except ValueError as exc:
        raise ParamError(str(exc)) from None
    by_id = {node.id: node for node in nodes}
    for node in nodes:
        for source in node.inputs:
            if by_id[source.id] is not source:
                raise ParamError(
                    f"two different nodes share the id {source.id!r} "
                    f"({by_id[source.id].label} and {source.label})"
                )
        check_node(node)
    return nodes

"""Where nodes run: the worker part of a graph and the main-process part.

By default the whole graph runs in the workers and the main process only
merges their streams. A ``main_process`` node (``dp.main_process()``) marks a
boundary: its input is the last node run in the workers; it and everything
downstream run in the main process over the merged stream (GPU decoding, which
must own the device, goes there). An op whose spec has ``placement="main"`` is
put in the main process the same way without a marker. The main part starts
at exactly one node, so join branches before the boundary.

Two rules of the plan (``plan.py``) build the main-process graph of a worker
service: ``MainProcessPart`` replaces the worker part by a ``_worker_stream``
source (its runtime pulls the merged stream from the service the runtime
graph is handed; its params say which node it stands for and the batch size
reaching it), and ``ReceiveAhead`` gives a main-process op whose spec sets
``receive_ahead = n`` the merged stream through a ``prefetch(n)`` thread, so
receiving and unpacking the workers' output overlaps with its own work (the
DALI decode, which waits on the GPU with the GIL released)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from ..errors import ParamError, ShardingWarning
from .node import Node, walk
from .registry import get_op
from .shard_points import is_sharding_point

MARKER_OP = "main_process"
STREAM_OP = "_worker_stream"
PREFETCH_OP = "prefetch"
#: a thread reading ahead, one for one: prefetch and the training-loop ops
AHEAD_OPS = (PREFETCH_OP, "pin_memory", "to_device")


def runs_in_main(node: Node) -> bool:
    return get_op(node.op).placement == "main"


def find_boundary(output: Node) -> Node | None:
    """The last node of the worker part, or None when there is no main part
    (then ``output`` itself is the last worker node)."""
    nodes = walk(output)
    main_ids: set[str] = set()
    for node in nodes:
        if runs_in_main(node) or any(i.id in main_ids for i in node.inputs):
            main_ids.add(node.id)
    starts = {
        i.id: i for node in nodes if runs_in_main(node) for i in node.inputs if i.id not in main_ids
    }
    if not starts:
        return None
    if len(starts) > 1:
        names = ", ".join(sorted(n.label for n in starts.values()))
        msg = (
            f"the main-process part must start at one point, but it takes the outputs of "
            f"{names}: join those branches (zip/concat/mux) and put one .main_process() "
            "after the join"
        )
        raise ParamError(msg)
    return next(iter(starts.values()))


@dataclass(frozen=True)
class MainProcessPart:
    """Rule: the graph run in the main process, ``boundary`` (the last worker
    node) and everything upstream of it replaced by one ``_worker_stream``
    source."""

    boundary: Node

    def apply(self, output: Node) -> Node:
        boundary = self.boundary
        worker_ids = {n.id for n in walk(boundary)}
        stream = Node(
            STREAM_OP,
            {"boundary": boundary.id, "batch_size": upstream_batch_size(boundary)},
            (),
            id=f"{STREAM_OP}-{boundary.id}",
            name="worker stream",
        )
        rebuilt: dict[str, Node] = {boundary.id: stream}
        for node in walk(output):
            if node.id in rebuilt or node.id in worker_ids:
                continue
            inputs = []
            for i in node.inputs:
                if i.id not in rebuilt:
                    msg = (
                        f"{i.label} is needed both in the workers (upstream of "
                        f"{boundary.label}) and in the main process (by {node.label}); "
                        "give the main process its own copy of that branch or move the "
                        ".main_process() boundary"
                    )
                    raise ParamError(msg)
                inputs.append(rebuilt[i.id])
            rebuilt[node.id] = node.evolve(inputs=tuple(inputs))
        return rebuilt[output.id]


@dataclass(frozen=True)
class ReceiveAhead:
    """Rule: a ``prefetch(n)`` after the ``_worker_stream`` source, n the
    largest ``receive_ahead`` of the main-process ops and ``at_least`` (the
    service's ``main_prefetch_cnt``); none if all are 0."""

    at_least: int = 0

    def apply(self, output: Node) -> Node:
        nodes = walk(output)
        ahead = max([self.at_least, *(get_op(n.op).receive_ahead for n in nodes)])
        stream = next((n for n in nodes if n.op == STREAM_OP), None)
        if not ahead or stream is None:
            return output
        boundary = stream.params["boundary"]
        prefetch = Node(
            PREFETCH_OP,
            {"buffer_size": ahead},
            (stream,),
            id=f"_receive_ahead-{boundary}",
            name="receive ahead",
        )
        rebuilt: dict[str, Node] = {stream.id: prefetch}
        for node in nodes:
            if node.id not in rebuilt:
                rebuilt[node.id] = node.evolve(
                    inputs=tuple(rebuilt.get(i.id, i) for i in node.inputs)
                )
        return rebuilt[output.id]


def has_sharding(output: Node) -> bool:
    return any(is_sharding_point(node) for node in walk(output))


def unsharded_sources(output: Node) -> list[Node]:
    """Sources with a path to ``output`` that passes no sharding node: each
    worker would yield all of their elements."""
    reach: dict[str, frozenset[str]] = {}
    by_id: dict[str, Node] = {}
    for node in walk(output):
        by_id[node.id] = node
        if is_sharding_point(node):
            reach[node.id] = frozenset()
        elif not node.inputs:
            reach[node.id] = frozenset({node.id})
        else:
            reach[node.id] = frozenset().union(*(reach[i.id] for i in node.inputs))
    return [by_id[i] for i in sorted(reach[output.id])]


def warn_if_unsharded(output: Node, total_workers: int, who: str) -> None:
    """One clear warning when several workers would yield duplicates."""
    if total_workers <= 1:
        return
    sources = unsharded_sources(output)
    if not sources:
        return
    names = ", ".join(n.label for n in sources)
    msg = (
        f"{who}: {total_workers} workers each run the pipeline, but the elements of "
        f"{names} reach the output without a sharding_filter, so every worker yields "
        "them (duplicates). Add .sharding_filter() after listing/shuffling the shard "
        "files (splitting files, not samples)."
    )
    warnings.warn(msg, ShardingWarning, stacklevel=4)


def upstream_batch_size(node: Node) -> int | None:
    """The size of the batches reaching the node fed by ``node``: the
    ``batch_size`` of the nearest ``batch`` upstream through one-to-one
    nodes (maps, collate, the worker boundary), or None if there is none."""
    while True:
        if node.op == "batch":
            return node.params["batch_size"]
        if node.op == STREAM_OP:
            return node.params["batch_size"]
        if len(node.inputs) == 1 and (
            node.op in AHEAD_OPS  # one for one, counts lag
            or get_op(node.op).passthrough
        ):
            node = node.inputs[0]
        else:
            return None

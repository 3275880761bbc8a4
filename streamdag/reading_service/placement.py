"""Where nodes run: the worker part of a graph and the main-process part.

By default the whole graph runs in the workers and the main process only
merges their streams. A ``main_process`` node (``dp.main_process()``) marks a
boundary: its input is the last node run in the workers; it and everything
downstream run in the main process over the merged stream (GPU decoding, which
must own the device, goes there). An op whose runtime class sets
``placement = "main"`` is put in the main process the same way without a
marker. The main part starts at exactly one node, so join branches before the
boundary.

A main-process op whose runtime class sets ``receive_ahead = n`` gets the
merged stream through a ``prefetch(n)`` thread (node "receive ahead"):
receiving and unpacking the workers' output then overlaps with its own work,
e.g. the DALI decode, which waits on the GPU with the GIL released.

In the main process the worker part is replaced by a ``_worker_stream``
source, a runtime-only node that pulls the merged stream from the reading
service and holds its resume state (each worker's state and the merge
position) as its own; its ``boundary`` param is the last worker node, for
main-process nodes that look upstream (``upstream_batch_size``)."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from ..datapipes.node import Node, walk
from ..datapipes.registry import get_op, register_op
from ..datapipes.runtime import ResumableNode, RuntimeNode, is_sharding_point
from ..errors import ParamError
from .errors import ShardingWarning

MARKER_OP = "main_process"
STREAM_OP = "_worker_stream"
PREFETCH_OP = "prefetch"


@register_op(MARKER_OP, params=())
class MainProcessNode(RuntimeNode):
    """Identity; worker services start the main-process part here."""

    passthrough = True

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        pass

    def iterator(self) -> Iterator[Any]:
        return self.inputs[0].iterator()


class StreamSource(Protocol):
    """What a worker service offers the ``_worker_stream`` node."""

    def open_stream(self, base_seed: int, epoch: int, fresh: bool,
                    restored: Any) -> Iterator[Any]: ...

    def stream_state(self) -> Any: ...


@register_op(STREAM_OP, inputs=0, params=("source", "boundary"))
class WorkerStreamNode(ResumableNode):
    """The merged output of the workers, as a source of the main-process graph.
    ``fresh`` tells the service whether this pass starts a new epoch (the
    workers reset their graphs) or re-reads within one (e.g. under cycle)."""

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        if not isinstance(params.get("source"), weakref.ref):  # a file cannot hold one
            raise ParamError(
                f"{STREAM_OP}: source must be a weak reference to a reading service; this node "
                "is made by worker reading services and cannot be written in a graph"
            )

    def setup(self) -> None:
        super().setup()
        self._fresh = True

    def reset(self) -> None:
        super().reset()
        self._fresh = True

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        fresh, self._fresh = self._fresh, False
        return self._source().open_stream(self.graph.base_seed, self.graph.epoch, fresh,
                                          restored)

    def live_state(self) -> Any:
        return self._source().stream_state()

    def _source(self) -> StreamSource:
        source = self.params["source"]()
        if source is None:
            raise RuntimeError("the reading service of this graph was garbage-collected")
        return source


def runs_in_main(node: Node) -> bool:
    return node.op == MARKER_OP or getattr(get_op(node.op).runtime, "placement", "") == "main"


def find_boundary(output: Node) -> Node | None:
    """The last node of the worker part, or None when there is no main part
    (then ``output`` itself is the last worker node)."""
    nodes = walk(output)
    main_ids: set[str] = set()
    for node in nodes:
        if runs_in_main(node) or any(i.id in main_ids for i in node.inputs):
            main_ids.add(node.id)
    starts = {i.id: i for node in nodes if runs_in_main(node)
              for i in node.inputs if i.id not in main_ids}
    if not starts:
        return None
    if len(starts) > 1:
        names = ", ".join(sorted(n.label for n in starts.values()))
        msg = (f"the main-process part must start at one point, but it takes the outputs of "
               f"{names}: join those branches (zip/concat/mux) and put one .main_process() "
               "after the join")
        raise ParamError(msg)
    return next(iter(starts.values()))


def main_spec(output: Node, boundary: Node, source: StreamSource) -> Node:
    """``output``'s graph with the worker part (``boundary`` and everything
    upstream of it) replaced by one ``_worker_stream`` source."""
    worker_ids = {n.id for n in walk(boundary)}
    stream = Node(STREAM_OP, {"source": weakref.ref(source), "boundary": boundary}, (),
                  id=f"{STREAM_OP}-{boundary.id}", name="worker stream")
    ahead = max((getattr(get_op(n.op).runtime, "receive_ahead", 0)
                 for n in walk(output) if n.id not in worker_ids), default=0)
    if ahead:
        stream = Node(PREFETCH_OP, {"buffer_size": ahead}, (stream,),
                      id=f"_receive_ahead-{boundary.id}", name="receive ahead")
    rebuilt: dict[str, Node] = {boundary.id: stream}
    for node in walk(output):
        if node.id in rebuilt:
            continue
        if node.id in worker_ids:
            continue
        inputs = []
        for i in node.inputs:
            if i.id not in rebuilt:
                msg = (f"{i.label} is needed both in the workers (upstream of "
                       f"{boundary.label}) and in the main process (by {node.label}); "
                       "give the main process its own copy of that branch or move the "
                       ".main_process() boundary")
                raise ParamError(msg)
            inputs.append(rebuilt[i.id])
        rebuilt[node.id] = node.evolve(inputs=tuple(inputs))
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
    msg = (f"{who}: {total_workers} workers each run the pipeline, but the elements of "
           f"{names} reach the output without a sharding_filter, so every worker yields "
           "them (duplicates). Add .sharding_filter() after listing/shuffling the shard "
           "files (splitting files, not samples).")
    warnings.warn(msg, ShardingWarning, stacklevel=4)


def upstream_batch_size(node: Node) -> int | None:
    """The size of the batches reaching the node fed by ``node``: the
    ``batch_size`` of the nearest ``batch`` upstream through one-to-one
    nodes (maps, collate, the worker boundary), or None if there is none."""
    while True:
        if node.op == "batch":
            return node.params["batch_size"]
        if node.op == STREAM_OP:
            node = node.params["boundary"]
        elif len(node.inputs) == 1 and (node.op == PREFETCH_OP  # one for one, counts lag
                                        or get_op(node.op).runtime.passthrough):
            node = node.inputs[0]
        else:
            return None

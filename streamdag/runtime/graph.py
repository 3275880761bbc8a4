"""The compiled graph for one worker: the spec after the plan's rules, one
runtime node per spec node, each op's runtime class imported when first
needed (so a graph loads and edits without an op's optional dependency, and
running it there says what to install)."""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Iterator, Mapping
from contextlib import suppress
from functools import cache, partial
from types import CodeType, FrameType, TracebackType
from typing import Any, Protocol

from ..core.node import Node, walk
from ..core.plan import execution_plan
from ..core.registry import get_op
from ..core.shard_points import check_sharded_once, is_sharding_point
from ..core.spec import OpSpec
from ..errors import SkippedInputWarning, StreamdagError
from .attribution import UNKNOWN, argument_of, code_of, node_error, node_of_frame
from .counting import Tally, count_of, counted
from .node import RuntimeNode, WorkerContext
from .skip_warnings import SkipWarnings


class StreamSource(Protocol):
    """What a worker service offers the ``_worker_stream`` source of a
    main-process graph: the workers' merged output, and its state."""

    def open_stream(
        self, base_seed: int, epoch: int, fresh: bool, restored: Any
    ) -> Iterator[Any]: ...

    def stream_state(self) -> Any: ...


def runtime_class(opspec: OpSpec) -> type[RuntimeNode]:
    """The class ``opspec.runtime`` names, imported on first use."""
    runtime = opspec.runtime
    return runtime if isinstance(runtime, type) else _import(runtime, opspec.name, opspec.install)


def import_runtimes(output: Node) -> None:
    """Import the runtime class of every op of ``output``'s graph as it runs.
    A service calls it before it forks workers, so they inherit the modules
    instead of each importing them again (every epoch, without persistent
    workers). An op that cannot run here is left to fail where it runs, where
    its error is reported as before."""
    try:
        specs = walk(execution_plan(output))
    except Exception:  # noqa: BLE001 - reported by the workers, as before
        return
    for spec in specs:
        with suppress(Exception):
            runtime_class(get_op(spec.op))


@cache
def _import(path: str, op: str, install: str) -> type[RuntimeNode]:
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        how = f": {install}" if install else ""
        msg = f"op {op!r} cannot run here: {exc}{how}"
        raise StreamdagError(msg) from exc


class RuntimeGraph:
    """The compiled graph for one worker: runtime nodes shared where the spec
    shares nodes, so every source is read once per epoch."""

    def __init__(
        self,
        output: Node,
        worker: WorkerContext | None = None,
        *,
        stream: StreamSource | None = None,
    ) -> None:
        self.worker = worker or WorkerContext()
        self._stream = None if stream is None else weakref.ref(stream)
        self.base_seed = 0
        self.epoch = 0
        #: inputs dropped in part this epoch under on_error="skip"/"warn": path ->
        #: the members dropped (None: the rest, from no member), for webdataset
        self.dropped: dict[str, list[str | None]] = {}
        self.nodes: dict[str, RuntimeNode] = {}
        check_sharded_once(output)
        downstream_of_shard: set[str] = set()
        position = {spec.id: index for index, spec in enumerate(walk(output))}
        output = execution_plan(output)
        for spec in walk(output):
            splits = is_sharding_point(spec)
            if splits or any(i.id in downstream_of_shard for i in spec.inputs):
                downstream_of_shard.add(spec.id)
            opspec = get_op(spec.op)
            inputs = [self.nodes[i.id] for i in spec.inputs]
            per_worker = spec.id in downstream_of_shard and not splits
            self.nodes[spec.id] = runtime_class(opspec)(
                spec, inputs, self, position[spec.id], per_worker, opspec
            )
        self.output = self.nodes[output.id]
        self.counting = False  # statistics: count the elements leaving the graph
        self._delivered = Tally()
        self.skip_warnings = SkipWarnings()  # nodes with on_error="warn" report here
        self._code_owner = {
            code_of(fn): node
            for node in self.nodes.values()
            for fn in node.user_functions()
            if code_of(fn) is not None
        }

    @property
    def stream(self) -> StreamSource | None:
        """Where a ``_worker_stream`` source of this graph pulls its elements.
        Held weakly: the service that owns this graph is its stream, and a
        reference cycle would keep the service (its workers, the chunks they
        sent ahead) alive until the garbage collector runs."""
        return None if self._stream is None else self._stream()

    def start_epoch(self, base_seed: int, epoch: int) -> None:
        self.base_seed = base_seed
        self.epoch = epoch
        self.skip_warnings.reset()
        self.dropped.clear()
        for node in self.nodes.values():
            node.reset()

    def state(self) -> Any:
        return self.output.state()

    def restore(self, state: Any) -> None:
        self.output.restore(state)

    @property
    def delivered(self) -> int:
        """Elements that left the graph since counting was switched on."""
        return self._delivered.value

    def iterate(self) -> Iterator[Any]:
        """The epoch's elements; an error leaving the graph names its node."""
        try:
            it = self.output.iterator()
            if self.counting:
                it, counter = counted(it)
                self._delivered.follow(partial(count_of, counter))
            yield from it
        except (StreamdagError, SkippedInputWarning):  # named already (the latter: -W error)
            raise
        except Exception as exc:
            node, element = self.culprit(exc.__traceback__)
            raise node_error(exc, node, element) from exc
        self.skip_warnings.finish()

    def close(self) -> None:
        """Consumers first, so no thread is left waiting on a closed input."""
        for node in reversed(self.nodes.values()):
            node.close()

    def culprit(self, tb: TracebackType | None) -> tuple[RuntimeNode | None, Any]:
        """The innermost node on the traceback, and the element it was called
        with where that frame shows it (else ``UNKNOWN``)."""
        owner, element = None, UNKNOWN
        while tb is not None:
            node = self.node_of(tb.tb_frame)
            if node is not None and node.graph is self:
                owner, element = node, argument_of(tb.tb_frame, node)
            tb = tb.tb_next
        return owner, element

    def node_of(self, frame: FrameType) -> RuntimeNode | None:
        return node_of_frame(frame, self._code_owner)

    @property
    def code_owners(self) -> Mapping[CodeType, RuntimeNode]:
        """The user functions this graph's nodes call, by code object."""
        return self._code_owner

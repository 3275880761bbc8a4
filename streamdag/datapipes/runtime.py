"""The runtime: one object per graph node per worker, compiled from the spec.

Design for speed: a runtime node returns a plain iterator from ``iterator()``
and, wherever it can, that iterator is a C-level composition (``map``,
``filter``, ``islice``, ``zip``) of its inputs' iterators, so a chain runs at
generator speed or faster. No hook runs per element. State lives in
attributes (or in C iterators whose position can be read), never only in a
suspended generator frame: ``state()`` is read between two output elements and
``restore()`` is applied before ``iterator()``. Stateless nodes delegate both
to their inputs. Errors are attributed to a node once, when they leave the
graph, by reading the traceback: a frame of the node's own code, of a function
it declares, or of the thin ``framed`` wrapper it puts around a function whose
call would leave no frame of its own."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from types import CodeType, FrameType, FunctionType, TracebackType
from typing import Any, ClassVar

from ..errors import NodeError, SkippedInputWarning, StreamdagError
from ..reading_service.seeds import derive_seed
from .counting import Tally, count_of, counted
from .node import Node, walk
from .plan import execution_plan
from .registry import get_op
from .shard_points import check_sharded_once, is_sharding_point
from .skip_warnings import SkipWarnings
from .sources import describe


@dataclass(frozen=True)
class WorkerContext:
    """Where a copy of the graph runs: distributed rank and worker process."""

    rank: int = 0
    world_size: int = 1
    worker_id: int = 0
    num_workers: int = 1

    @property
    def global_worker(self) -> int:
        return self.rank * self.num_workers + self.worker_id

    @property
    def total_workers(self) -> int:
        return self.world_size * self.num_workers


class RuntimeNode:
    """Base of op implementations. Subclasses set ``op`` through
    ``register_op`` and implement ``iterator()``; buffering or counting nodes
    also implement ``state()``/``restore()``."""

    op: ClassVar[str] = ""
    #: statistics: every input element comes out (map, collate, concat), less
    #: the ones skipped under ``on_error``; lets counts be derived, not counted
    passthrough: ClassVar[bool] = False
    #: yields only this worker's share (sharding_filter, a shardable reader):
    #: nodes after it draw per-worker seeds, and no worker duplicates its data
    splits_data: ClassVar[bool] = False
    #: turns encoded data into larger decoded values: a shuffle after it holds
    #: less if it runs before it (see plan.py)
    decodes: ClassVar[bool] = False

    def __init__(self, spec: Node, inputs: list[RuntimeNode], graph: RuntimeGraph,
                 index: int, per_worker_seed: bool) -> None:
        self.spec = spec
        self.inputs = inputs
        self.graph = graph
        self.params: Mapping[str, Any] = spec.params
        self.index = index
        self.per_worker_seed = per_worker_seed
        self.setup()

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        """Check params at construction; raise ParamError naming the op."""

    @staticmethod
    def elementwise(params: Mapping[str, Any]) -> bool:
        """One input, one output per input element computed from it alone,
        no state: a shuffle after this node may run before it (plan.py)."""
        return False

    def setup(self) -> None:
        """One-time initialisation (after params are set)."""

    def reset(self) -> None:
        """Called at the start of every epoch, before ``iterator()``."""

    def iterator(self) -> Iterator[Any]:
        raise NotImplementedError

    def state(self) -> Any:
        """Plain data from which ``restore`` resumes after the last element
        this node passed on. Default: the inputs' states."""
        if len(self.inputs) == 1:
            return self.inputs[0].state()
        return [node.state() for node in self.inputs]

    def restore(self, state: Any) -> None:
        if len(self.inputs) == 1:
            self.inputs[0].restore(state)
        else:
            for node, sub in zip(self.inputs, state, strict=True):
                node.restore(sub)

    def close(self) -> None:
        """Release threads or files; called when an epoch is torn down."""

    def user_functions(self) -> list[Callable[..., Any]]:
        """Functions this node calls per element, for error attribution."""
        return []

    def counted(self) -> tuple[int | None, int | None]:
        """(elements in, elements out) since the graph was built, where this
        node knows them without per-element work; None where it does not
        (``streamdag.stats`` derives those from the neighbours)."""
        return None, None

    def stats(self) -> dict[str, int]:
        """Counters of this node in this process (``skipped``, ``bytes``,
        ``retries``, ...): statistics, never part of the resume state."""
        return {}

    def seed(self, *salt: int) -> int:
        """This node's seed for the current epoch: the same on every worker
        upstream of the sharding point, distinct per worker downstream."""
        ctx = self.graph
        parts = [ctx.base_seed, ctx.epoch, self.index, *salt]
        if self.per_worker_seed:
            parts.append(ctx.worker.global_worker + 1)
        return derive_seed(*parts)

    @property
    def label(self) -> str:
        return self.spec.label


class ResumableNode(RuntimeNode):
    """A node with state of its own. Until its ``iterator()`` runs in the
    current epoch, its state is whatever was restored (None: from the start)."""

    def setup(self) -> None:
        self._restored: Any = None
        self._live = False

    def reset(self) -> None:
        self._restored = None
        self._live = False

    def restore(self, state: Any) -> None:
        self._restored = state
        self._live = False

    def state(self) -> Any:
        return self.live_state() if self._live else self._restored

    def take_restored(self) -> Any:
        """Called first thing in ``iterator()``: the state to resume from, or None."""
        restored, self._restored = self._restored, None
        self._live = True
        return restored

    def live_state(self) -> Any:
        raise NotImplementedError


class RuntimeGraph:
    """The compiled graph for one worker: runtime nodes shared where the spec
    shares nodes, so every source is read once per epoch."""

    def __init__(self, output: Node, worker: WorkerContext | None = None) -> None:
        self.worker = worker or WorkerContext()
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
            cls = get_op(spec.op).runtime
            inputs = [self.nodes[i.id] for i in spec.inputs]
            per_worker = spec.id in downstream_of_shard and not splits
            self.nodes[spec.id] = cls(spec, inputs, self, position[spec.id], per_worker)
        self.output = self.nodes[output.id]
        self.counting = False  # statistics: count the elements leaving the graph
        self._delivered = Tally()
        self.skip_warnings = SkipWarnings()  # nodes with on_error="warn" report here
        self._code_owner = {
            _code_of(fn): node
            for node in self.nodes.values() for fn in node.user_functions()
            if _code_of(fn) is not None
        }

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
                owner, element = node, _argument_of(tb.tb_frame, node)
            tb = tb.tb_next
        return owner, element

    def node_of(self, frame: FrameType) -> RuntimeNode | None:
        return node_of_frame(frame, self._code_owner)

    @property
    def code_owners(self) -> Mapping[CodeType, RuntimeNode]:
        """The user functions this graph's nodes call, by code object."""
        return self._code_owner


def node_of_frame(frame: FrameType,
                  code_owners: Mapping[CodeType, RuntimeNode]) -> RuntimeNode | None:
    """The node a frame runs for: a user function a node calls, or a runtime
    node's own code (``self``, or ``_sd_node`` in ``framed``)."""
    node = code_owners.get(frame.f_code)
    if node is None:
        local = frame.f_locals
        candidate = local.get("self", local.get("_sd_node"))
        if isinstance(candidate, RuntimeNode):
            node = candidate
    return node


UNKNOWN: Any = object()  # the element an error happened on is not known


def node_error(exc: BaseException, node: RuntimeNode | None,
               element: Any = UNKNOWN) -> NodeError:
    where = node.label if node else "an unknown node"
    source = None if element is UNKNOWN else describe(element)
    on = f" (on {source})" if source else ""
    err = NodeError(f"{where} raised {type(exc).__name__}: {exc}{on}",
                    op=node.spec.op if node else "", name=node.spec.name if node else None,
                    node_id=node.spec.id if node else "", source=source)
    return err


def framed(fn: Callable[..., Any], node: RuntimeNode, nargs: int = 1, *,
           always: bool = False) -> Callable[..., Any]:
    """``fn`` itself when it is Python code that takes ``nargs`` positional
    arguments; else a thin Python wrapper, so that an error is attributed to
    ``node`` even where no frame of ``fn`` shows it: raised inside a C
    function (``int``, ``str.split``), or by the call itself (``lambda a, b:``
    called with one element). ``always``: wrap Python code too, for a call
    per batch (collate), where the wrapper costs nothing that shows and the
    function (torch's ``default_collate``) is no node's own."""
    if not always and _code_of(fn) is not None and _takes(fn, nargs):
        return fn

    def call(*args: Any) -> Any:
        _sd_node = node  # noqa: F841 - read back from the frame by culprit
        return fn(*args)

    return call


def _takes(fn: Callable[..., Any], nargs: int) -> bool:
    """Can ``fn`` be called with ``nargs`` positional arguments? (once, at setup)"""
    try:
        inspect.signature(fn).bind(*range(nargs))
    except (TypeError, ValueError):  # ValueError: no signature to check
        return False
    return True


def _argument_of(frame: FrameType, node: RuntimeNode) -> Any:
    """The element ``node`` called a function with, when ``frame`` is the
    ``framed`` wrapper's (its arguments) or a plain function's the node
    declares (its first parameter); else ``UNKNOWN``."""
    local = frame.f_locals
    if local.get("_sd_node") is node and "args" in local:
        args = local["args"]
        return args[0] if len(args) == 1 else args
    code = frame.f_code
    if code.co_argcount and any(isinstance(fn, FunctionType) and fn.__code__ is code
                                for fn in node.user_functions()):
        return local.get(code.co_varnames[0], UNKNOWN)
    return UNKNOWN


def _code_of(fn: Any) -> Any:
    """The code object that runs when ``fn`` is called, if it has one."""
    while hasattr(fn, "func"):  # functools.partial
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is None and not isinstance(fn, type):
        code = getattr(type(fn).__call__, "__code__", None)
    return code

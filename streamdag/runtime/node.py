"""Runtime nodes: one object per graph node per worker, compiled from the spec.

Design for speed: a runtime node returns a plain iterator from ``iterator()``
and, wherever it can, that iterator is a C-level composition (``map``,
``filter``, ``islice``, ``zip``) of its inputs' iterators, so a chain runs at
generator speed or faster. No hook runs per element. State lives in
attributes (or in C iterators whose position can be read), never only in a
suspended generator frame: ``state()`` is read between two output elements and
``restore()`` is applied before ``iterator()``. Stateless nodes delegate both
to their inputs. Errors are attributed to a node once, when they leave the
graph, by reading the traceback (``attribution.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.node import Node
from ..core.seeds import derive_seed
from ..core.spec import OpSpec

if TYPE_CHECKING:
    from .graph import RuntimeGraph


@dataclass(frozen=True)
class WorkerContext:
    """Where a copy of the graph runs: distributed rank and worker process."""

    rank: int = 0
    world_size: int = 1
    worker_id: int = 0
    num_workers: int = 1

    @property
    def shard_index(self) -> int:
        """This copy's index among all of them: rank * num_workers + worker_id
        (``ReaderContext`` uses the same two names)."""
        return self.rank * self.num_workers + self.worker_id

    @property
    def num_shards(self) -> int:
        """How many copies of the pipeline run: world_size * num_workers."""
        return self.world_size * self.num_workers


class RuntimeNode:
    """Base of op implementations: the runtime an ``OpSpec`` names.
    Subclasses implement ``iterator()``; buffering or counting nodes also
    implement ``state()``/``restore()``. ``params`` has the op's defaults
    filled in, so ``self.params[key]`` needs no default of its own."""

    def __init__(
        self,
        spec: Node,
        inputs: list[RuntimeNode],
        graph: RuntimeGraph,
        index: int,
        per_worker_seed: bool,
        opspec: OpSpec,
    ) -> None:
        self.spec = spec
        self.opspec = opspec
        self.inputs = inputs
        self.graph = graph
        self.params: Mapping[str, Any] = {**opspec.defaults(), **spec.params}
        #: statistics: every input element comes out (less skips), see OpSpec
        self.passthrough = opspec.passthrough
        self.index = index
        self.per_worker_seed = per_worker_seed
        self.setup()

    def setup(self) -> None:
        """One-time initialisation (after params are set)."""

    def reset(self) -> None:
        """Called at the start of every epoch, before ``iterator()``."""

    def iterator(self) -> Iterator[Any]:
        """This pass's elements. Calls the inputs' ``iterator()`` before it
        returns, and reads an input's ``state()`` only after that (see
        docs/architecture.md: a cycle runs several passes)."""
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
            parts.append(ctx.worker.shard_index + 1)
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


class ResumableTransform(ResumableNode):
    """A node with state of its own over its first input, which it reads
    element by element (a running sum, a paragraph being gathered): its state
    is its own and that input's, taken together."""

    def state(self) -> Any:
        return [super().state(), self.inputs[0].state()]

    def restore(self, state: Any) -> None:
        own, upstream = state if state is not None else (None, None)
        super().restore(own)
        self.inputs[0].restore(upstream)

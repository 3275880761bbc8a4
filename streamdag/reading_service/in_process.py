"""InProcessReadingService: the graph runs in the calling thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..core.node import Node
from ..datapipes.datapipe import make_node
from ..errors import ParamError
from ..runtime.graph import RuntimeGraph
from ..runtime.node import WorkerContext
from ..stats import sampler
from ..stats.sampler import StackSampler
from ..stats.snapshot import snapshot
from .base import ReadingService
from .capabilities import CollectsStats, Ranked
from .init_fns import InitFn, refuse_reset_fn, run_init_fn


class InProcessReadingService(ReadingService, Ranked, CollectsStats):
    """No workers, no copies: the reference service and the fastest for
    cheap per-element work.

    torchdata's arguments: ``prefetch_cnt`` elements made ahead in a
    background thread (0: none); ``init_fn(datapipe, worker_info) -> datapipe``
    (or torch-style ``init_fn(worker_id)``) called once before the first epoch,
    the pipe it returns being the one that runs; ``reset_fn`` is not supported
    (nodes reseed themselves each epoch). ``worker``: the context this copy of
    the graph runs with (e.g. to run one worker's shard); given first, as
    before torchdata's arguments came, it is still taken as ``worker``."""

    def __init__(
        self,
        prefetch_cnt: int = 0,
        init_fn: InitFn | None = None,
        reset_fn: Callable[..., Any] | None = None,
        *,
        worker: WorkerContext | None = None,
    ) -> None:
        if isinstance(prefetch_cnt, WorkerContext) and worker is None:
            prefetch_cnt, worker = 0, prefetch_cnt
        if isinstance(prefetch_cnt, bool) or not isinstance(prefetch_cnt, int) or prefetch_cnt < 0:
            raise ParamError(f"prefetch_cnt must be an int >= 0, got {prefetch_cnt!r}")
        refuse_reset_fn("reset_fn", reset_fn)
        self.prefetch_cnt = prefetch_cnt
        self.init_fn = init_fn
        self._worker = worker or WorkerContext()
        self._graph: RuntimeGraph | None = None
        self._sampler: StackSampler | None = None

    def set_rank(self, rank: int, world_size: int) -> None:
        self._worker = WorkerContext(rank, world_size)

    def initialize(self, output: Node) -> None:
        output = run_init_fn(self.init_fn, output, self._worker, "init_fn")
        if self.prefetch_cnt:
            output = make_node("prefetch", {"buffer_size": self.prefetch_cnt}, [output])
        self._graph = RuntimeGraph(output, self._worker)

    def epoch(self, base_seed: int, epoch: int, state: Any | None) -> Iterator[Any]:
        graph = self._require_graph()
        graph.close()
        graph.start_epoch(base_seed, epoch)
        if state is not None:
            graph.restore(state)
        return graph.iterate()

    def state(self) -> Any:
        return self._require_graph().state()

    def shutdown(self) -> None:
        if self._graph is not None:
            self._graph.close()
        if self._sampler is not None:
            self._sampler = None
            sampler.release()

    def collect_stats(self) -> None:
        graph = self._require_graph()
        if self._sampler is None:
            self._sampler = sampler.acquire()
            self._sampler.watch(graph)
            graph.counting = True

    def stats_snapshots(self) -> list[dict[str, Any]]:
        return [snapshot([self._require_graph()], self._sampler)] if self._sampler else []

    def _require_graph(self) -> RuntimeGraph:
        if self._graph is None:
            raise RuntimeError("InProcessReadingService used before initialize()")
        return self._graph

"""InProcessReadingService: the graph runs in the calling thread."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..core.node import Node
from ..errors import ParamError, ResumeError
from ..runtime.graph import RuntimeGraph
from ..runtime.node import WorkerContext
from ..stats import sampler
from ..stats.sampler import StackSampler
from ..stats.snapshot import snapshot
from .base import ReadingService
from .capabilities import CollectsStats, Ranked
from .elastic import RANKS
from .init_fns import InitFn, ResetFn, WorkerPipe

_NAMES = ("init_fn", "reset_fn")


class InProcessReadingService(ReadingService, Ranked, CollectsStats):
    """No workers, no copies: the reference service and the fastest for
    cheap per-element work.

    torchdata's arguments: ``prefetch_cnt`` elements made ahead in a
    background thread (0: none); ``init_fn(datapipe, worker_info) -> datapipe``
    (or torch-style ``init_fn(worker_id)``) called once before the first epoch,
    the pipe it returns being the one that runs; ``reset_fn(datapipe,
    worker_info, seed_generator) -> datapipe`` called at the start of every
    epoch with ``init_fn``'s pipe, the pipe it returns running that epoch (as
    for ``MultiProcessingReadingService``'s ``worker_reset_fn``; torchdata 0.9
    stores this one and never calls it). ``worker``: the context this copy of
    the graph runs with (e.g. to run one worker's shard); given first, as
    before torchdata's arguments came, it is still taken as ``worker``."""

    def __init__(
        self,
        prefetch_cnt: int = 0,
        init_fn: InitFn | None = None,
        reset_fn: ResetFn | None = None,
        *,
        worker: WorkerContext | None = None,
    ) -> None:
        if isinstance(prefetch_cnt, WorkerContext) and worker is None:
            prefetch_cnt, worker = 0, prefetch_cnt
        if isinstance(prefetch_cnt, bool) or not isinstance(prefetch_cnt, int) or prefetch_cnt < 0:
            raise ParamError(f"prefetch_cnt must be an int >= 0, got {prefetch_cnt!r}")
        self.prefetch_cnt = prefetch_cnt
        self.init_fn = init_fn
        self.reset_fn = reset_fn
        self._worker = worker or WorkerContext()
        self._pipe: WorkerPipe | None = None
        self._spec: Node | None = None
        self._graph: RuntimeGraph | None = None
        self._sampler: StackSampler | None = None

    def set_rank(self, rank: int, world_size: int) -> None:
        self._worker = WorkerContext(rank, world_size)

    def initialize(self, output: Node) -> None:
        self._pipe = WorkerPipe(
            output, self._worker, self.init_fn, self.reset_fn, self.prefetch_cnt, _NAMES
        )
        self._spec = self._pipe.initial()
        self._graph = RuntimeGraph(self._spec, self._worker)

    def epoch(self, base_seed: int, epoch: int, state: Any | None) -> Iterator[Any]:
        graph = self._require_graph()
        graph.close()
        assert self._pipe is not None
        spec = self._pipe.for_epoch(base_seed, epoch)
        if spec is not self._spec:  # reset_fn returned a new pipe
            self._spec, graph = spec, RuntimeGraph(spec, self._worker)
            self._graph = graph
            graph.counting = self._sampler is not None
            if self._sampler is not None:
                self._sampler.watch(graph)
        graph.start_epoch(base_seed, epoch)
        if isinstance(state, dict) and RANKS in state:
            raise ResumeError(
                "InProcessReadingService: a state saved on another world size resumes "
                "under a worker service (MultiProcessingReadingService or "
                "MultiThreadingReadingService, with SequentialReadingService under "
                "torch.distributed): the old ranks' virtual workers are dealt to its workers"
            )
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

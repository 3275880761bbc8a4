"""MultiProcessingReadingService: the worker part of the graph in worker
processes, the main part over their merged stream."""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import Any

from ..core.node import Node
from ..runtime.node import WorkerContext
from .processes import ProcessPool, get_context
from .worker_service import WorkerPool, WorkerService


class MultiProcessingReadingService(WorkerService):
    """``num_workers`` processes each run their copy of the worker part (the
    whole graph unless a ``.main_process()`` boundary says otherwise) with
    ``WorkerContext(rank, world_size, worker_id, num_workers)``, so
    ``sharding_filter`` splits over ``rank * num_workers + worker``.

    - ``prefetch_factor``: chunks each worker may produce ahead of the main
      process (a chunk is up to 1024 elements or 5 ms of work).
    - ``multiprocessing_context``: "fork" (default; fastest start, lambdas
      work), "spawn" or "forkserver" (functions must be picklable by
      reference: module-level; a clear error names the node otherwise).
    - ``worker_init_fn(worker_id)``: called once in each worker at start,
      after its global RNGs are seeded.
    - ``in_order``: deterministic round robin over the workers (default), or
      whichever worker is ready first.
    - ``timeout``: seconds to wait for the next chunk before raising
      ``WorkerTimeoutError`` (None or 0: no limit).
    - ``persistent_workers``: keep the processes (and their open files and
      caches) from one epoch to the next instead of starting new ones.

    Each worker seeds Python's ``random``, numpy's and torch's global RNGs
    from (base seed, epoch, global worker), so user functions that draw from
    them are reproducible per seed."""

    def __init__(self, num_workers: int = 0, prefetch_factor: int = 2,
                 multiprocessing_context: str | BaseContext | None = "fork",
                 worker_init_fn: Callable[[int], Any] | None = None, in_order: bool = True,
                 timeout: float | None = None, persistent_workers: bool = False) -> None:
        super().__init__(num_workers, prefetch_factor, in_order, timeout)
        self.multiprocessing_context = get_context(multiprocessing_context)
        self.worker_init_fn = worker_init_fn
        self.persistent = persistent_workers

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (empty when none are running)."""
        pool = self._pool
        return pool.pids if isinstance(pool, ProcessPool) else []

    def _start_pool(self, spec: Node, contexts: list[WorkerContext]) -> WorkerPool:
        return ProcessPool(spec, contexts, self.multiprocessing_context, self.worker_init_fn)

"""MultiProcessingReadingService: the worker part of the graph in worker
processes, the main part over their merged stream."""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import Any

from ..core.node import Node
from ..runtime.node import WorkerContext
from .init_fns import InitFn, refuse_reset_fn
from .processes import ProcessPool, get_context
from .worker_service import WorkerPool, WorkerService, check_int


class MultiProcessingReadingService(WorkerService):
    """``num_workers`` processes each run their copy of the worker part (the
    whole graph unless a ``.main_process()`` boundary says otherwise) with
    ``WorkerContext(rank, world_size, worker_id, num_workers)``, so
    ``sharding_filter`` splits over ``rank * num_workers + worker``.

    torchdata's arguments, in torchdata's order:

    - ``multiprocessing_context``: "fork" (default; fastest start, lambdas
      work), "spawn" or "forkserver" (functions must be picklable by
      reference: module-level; a clear error names the node otherwise).
    - ``worker_prefetch_cnt``, ``main_prefetch_cnt``: accepted and checked
      (ints >= 0) so torchdata code runs; streamdag's workers read ahead by
      whole chunks instead, as ``prefetch_factor`` says.
    - ``worker_init_fn``: called once in each worker at start, after its
      global RNGs are seeded, in either style: torch DataLoader's
      ``fn(worker_id)`` or torchdata's ``fn(datapipe, worker_info) ->
      datapipe`` (``worker_info``: the worker's ``WorkerContext``); the pipe it
      returns is the one the worker runs (a changed pipe has new node ids: such
      a loader does not resume from a state saved by another process).
    - ``worker_reset_fn``: not supported (a ``ParamError`` says so): every
      random node is reseeded each epoch from (seed, epoch, worker).

    streamdag's own, by keyword:

    - ``prefetch_factor``: chunks each worker may produce ahead of the main
      process (a chunk is up to 1024 elements or 5 ms of work).
    - ``in_order``: deterministic round robin over the workers (default), or
      whichever worker is ready first.
    - ``timeout``: seconds to wait for the next chunk before raising
      ``WorkerTimeoutError`` (None or 0: no limit).
    - ``persistent_workers``: keep the processes (and their open files and
      caches) from one epoch to the next instead of starting new ones.

    Each worker seeds Python's ``random``, numpy's and torch's global RNGs
    from (base seed, epoch, global worker), so user functions that draw from
    them are reproducible per seed."""

    def __init__(
        self,
        num_workers: int = 0,
        multiprocessing_context: str | BaseContext | None = "fork",
        worker_prefetch_cnt: int = 10,
        main_prefetch_cnt: int = 10,
        worker_init_fn: InitFn | None = None,
        worker_reset_fn: Callable[..., Any] | None = None,
        *,
        prefetch_factor: int = 2,
        in_order: bool = True,
        timeout: float | None = None,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__(num_workers, prefetch_factor, in_order, timeout)
        check_int("worker_prefetch_cnt", worker_prefetch_cnt, 0)
        check_int("main_prefetch_cnt", main_prefetch_cnt, 0)
        refuse_reset_fn("worker_reset_fn", worker_reset_fn)
        self.multiprocessing_context = get_context(multiprocessing_context)
        self.worker_prefetch_cnt = worker_prefetch_cnt
        self.main_prefetch_cnt = main_prefetch_cnt
        self.worker_init_fn = worker_init_fn
        self.persistent = persistent_workers

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (empty when none are running)."""
        pool = self._pool
        return pool.pids if isinstance(pool, ProcessPool) else []

    def _start_pool(self, spec: Node, contexts: list[WorkerContext]) -> WorkerPool:
        return ProcessPool(spec, contexts, self.multiprocessing_context, self.worker_init_fn)

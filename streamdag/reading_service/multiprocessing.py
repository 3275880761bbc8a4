"""MultiProcessingReadingService: the worker part of the graph in worker
processes, the main part over their merged stream."""

from __future__ import annotations

from multiprocessing.context import BaseContext

from .init_fns import InitFn, ResetFn, WorkerPipe, check_prefetch_cnt
from .processes import ProcessPool, get_context
from .worker_service import WorkerPool, WorkerService


class MultiProcessingReadingService(WorkerService):
    """``num_workers`` processes each run their copy of the worker part (the
    whole graph unless a ``.main_process()`` boundary says otherwise) with
    ``WorkerContext(rank, world_size, worker_id, num_workers)``, so
    ``sharding_filter`` splits over ``rank * num_workers + worker``.

    torchdata's arguments, in torchdata's order:

    - ``multiprocessing_context``: "fork" (default; fastest start, lambdas
      work), "spawn" or "forkserver" (functions must be picklable by
      reference: module-level; a clear error names the node otherwise).
    - ``worker_prefetch_cnt``, ``main_prefetch_cnt``: None (default):
      streamdag's own read-ahead by whole chunks, ``prefetch_factor``, and
      nothing more; an int n > 0 adds a ``prefetch(n)`` (a thread making n
      elements ahead) at the end of each worker's part / right after the
      merge of the workers' streams in the main process; 0: none. torchdata's
      default, 10 each, is not needed for speed here and costs a thread.
    - ``worker_init_fn``: called once in each worker at start, after its
      global RNGs are seeded, in either style: torch DataLoader's
      ``fn(worker_id)`` or torchdata's ``fn(datapipe, worker_info) ->
      datapipe`` (``worker_info``: the worker's ``WorkerContext``); the pipe it
      returns is the one the worker runs.
    - ``worker_reset_fn(datapipe, worker_info, seed_generator) -> datapipe``:
      called in each worker at the start of every epoch (also in a
      persistent worker), after ``worker_init_fn``, with the pipe
      ``worker_init_fn`` returned; the pipe it returns runs that epoch.
      ``seed_generator`` is a ``streamdag.dataloader2.random.SeedGenerator``
      derived from (seed, epoch, global worker): deterministic for a given
      ``seed=``, so a resumed epoch rebuilds the same pipe and resumes exactly.
      Not needed to reseed streamdag's own nodes (they reseed themselves).

    streamdag's own, by keyword:

    - ``prefetch_factor``: chunks each worker may produce ahead of the main
      process (a chunk is up to 1024 elements or 5 ms of work).
    - ``in_order``: deterministic round robin over the workers (default), or
      whichever worker is ready first.
    - ``timeout``: seconds to wait for the next chunk before raising
      ``WorkerTimeoutError`` (None or 0: no limit).
    - ``persistent_workers``: keep the processes (and their open files and
      caches) from one epoch to the next instead of starting new ones.
    - ``virtual_workers``: shards of an epoch (default and minimum
      ``num_workers``), each a copy of the worker part run by worker
      ``v % num_workers`` with its own seeds and state, so that a mid-epoch
      state resumes on another number of workers (docs/reading-services.md,
      "Elastic resume").

    Each worker seeds Python's ``random``, numpy's and torch's global RNGs
    from (base seed, epoch, global worker), so user functions that draw from
    them are reproducible per seed."""

    def __init__(
        self,
        num_workers: int = 0,
        multiprocessing_context: str | BaseContext | None = "fork",
        worker_prefetch_cnt: int | None = None,
        main_prefetch_cnt: int | None = None,
        worker_init_fn: InitFn | None = None,
        worker_reset_fn: ResetFn | None = None,
        *,
        prefetch_factor: int = 2,
        in_order: bool = True,
        timeout: float | None = None,
        persistent_workers: bool = False,
        virtual_workers: int | None = None,
    ) -> None:
        super().__init__(num_workers, prefetch_factor, in_order, timeout, virtual_workers)
        check_prefetch_cnt("worker_prefetch_cnt", worker_prefetch_cnt)
        check_prefetch_cnt("main_prefetch_cnt", main_prefetch_cnt)
        self.multiprocessing_context = get_context(multiprocessing_context)
        self.worker_prefetch_cnt = worker_prefetch_cnt
        self.main_prefetch_cnt = main_prefetch_cnt
        self.worker_init_fn = worker_init_fn
        self.worker_reset_fn = worker_reset_fn
        self.persistent = persistent_workers

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (empty when none are running)."""
        pool = self._pool
        return pool.pids if isinstance(pool, ProcessPool) else []

    def _start_pool(self, pipes: list[WorkerPipe]) -> WorkerPool:
        return ProcessPool(pipes, self.multiprocessing_context)

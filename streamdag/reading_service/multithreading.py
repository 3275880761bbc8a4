"""MultiThreadingReadingService: the worker part of the graph in threads of
the main process. No pickling, no copies, instant start; it scales where the
work releases the GIL (Pillow decode and resize, zlib, file and network I/O,
DALI) and not where it is pure Python."""

from __future__ import annotations

import queue
import threading
import weakref

from ..runtime.graph import RuntimeGraph
from .init_fns import InitFn, ResetFn, WorkerPipe, check_prefetch_cnt
from .intra_op import one_torch_thread
from .worker import DATA, ERROR, RUN, SHUTDOWN, WorkerLoop, set_worker_info
from .worker_service import WorkerPool, WorkerService

_STOP_GRACE_S = 1.0


class MultiThreadingReadingService(WorkerService):
    """``num_threads`` threads each run their copy of the worker part, with
    the same sharding, seeds, ordering and resume state as the process
    service. The threads live until ``shutdown()``. Global RNGs (``random``,
    numpy, torch) are shared by all threads of a process, so they are not
    seeded per thread: user functions should use their own seeded generators
    (a ``worker_reset_fn`` gets one each epoch). ``worker_init_fn``,
    ``worker_reset_fn``, ``worker_prefetch_cnt``, ``main_prefetch_cnt`` and
    ``virtual_workers`` mean what they mean for
    ``MultiProcessingReadingService``."""

    def __init__(
        self,
        num_threads: int = 2,
        prefetch_factor: int = 2,
        in_order: bool = True,
        timeout: float | None = None,
        *,
        worker_init_fn: InitFn | None = None,
        worker_reset_fn: ResetFn | None = None,
        worker_prefetch_cnt: int | None = None,
        main_prefetch_cnt: int | None = None,
        virtual_workers: int | None = None,
    ) -> None:
        super().__init__(num_threads, prefetch_factor, in_order, timeout, virtual_workers)
        check_prefetch_cnt("worker_prefetch_cnt", worker_prefetch_cnt)
        check_prefetch_cnt("main_prefetch_cnt", main_prefetch_cnt)
        self.worker_init_fn = worker_init_fn
        self.worker_reset_fn = worker_reset_fn
        self.worker_prefetch_cnt = worker_prefetch_cnt
        self.main_prefetch_cnt = main_prefetch_cnt

    def _start_pool(self, pipes: list[WorkerPipe]) -> WorkerPool:
        return ThreadPool(pipes)


class ThreadPool:
    """Threads of one process share the GIL: started together, every thread
    slows the one the first batch comes from. So the pool's first pass starts
    in worker 0 first, and in the others once worker 0 has sent its first
    message, a chunk (maybe empty, when its pass yields nothing) or an error.
    W2, first batch: 0.11-0.15 s staggered, 0.13-0.21 s started together.
    Later passes start together: the next epoch's is queued behind the
    current one (``prepare_epoch``) and starts in each thread when it has made
    its last chunk of this one."""

    def __init__(self, pipes: list[WorkerPipe]) -> None:
        self.size = len(pipes)
        self.broken = False
        self._held: dict[int, list[tuple]] = {}  # worker -> its commands, until worker 0's
        # first chunk
        self._first_pass = True
        self._out: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._cmds: list[queue.SimpleQueue[tuple]] = [queue.SimpleQueue() for _ in pipes]
        self._threads = [
            threading.Thread(
                target=_serve,
                args=(pipe, cmds, self._out),
                daemon=True,
                name=f"streamdag-thread-{pipe.context.worker_id}",
            )
            for pipe, cmds in zip(pipes, self._cmds, strict=True)
        ]
        for thread in self._threads:
            thread.start()
        self._finalizer = weakref.finalize(self, _stop_all, self._cmds, self._threads)

    def send(self, worker: int, command: tuple) -> None:
        if worker > 0 and self._first_pass and (command[0] == RUN or worker in self._held):
            self._held.setdefault(worker, []).append(command)
        else:
            self._cmds[worker].put(command)

    def recv(self, timeout: float | None) -> list[tuple]:
        try:
            messages = [self._out.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                messages.append(self._out.get_nowait())
            except queue.Empty:
                break
        # DATA and ERROR messages are (kind, generation, worker, ...)
        if self._held and any(m[0] in (DATA, ERROR) and m[2] == 0 for m in messages):
            self._start_held()
        return messages

    def _start_held(self) -> None:
        held, self._held, self._first_pass = self._held, {}, False
        for worker, commands in held.items():
            for command in commands:
                self._cmds[worker].put(command)

    def return_segments(self) -> None:
        """Threads share the main process's memory: nothing to give back."""

    def stop(self) -> None:
        self._finalizer()


def _serve(
    pipe: WorkerPipe,
    cmds: queue.SimpleQueue[tuple],
    out: queue.SimpleQueue[tuple],
) -> None:
    context = pipe.context
    set_worker_info(context)

    def recv(block: bool) -> tuple | None:
        if block:
            return cmds.get()
        try:
            return cmds.get_nowait()
        except queue.Empty:
            return None

    capped = one_torch_thread()

    def send(message: tuple) -> None:
        nonlocal capped
        if not capped:  # a node may import torch mid-pass
            capped = one_torch_thread()
        out.put(message)

    WorkerLoop(pipe, RuntimeGraph, send, recv, seed_globals=False).serve()


def _stop_all(cmds: list[queue.SimpleQueue[tuple]], threads: list[threading.Thread]) -> None:
    """Threads stop between two chunks; one stuck in a user function cannot be
    interrupted and is left behind (it is a daemon thread)."""
    for q in cmds:
        q.put((SHUTDOWN,))
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(_STOP_GRACE_S)

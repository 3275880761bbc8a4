"""Worker processes: starting them, talking to them, noticing their death,
and stopping them without leaving orphans.

Besides the commands of ``worker.py``, the main process sends
``(RELEASE, free ids, unmapped ids)``: shared-memory segments it no longer
uses, to reuse or to unmap, which the worker's channel takes in
(``segments.py``) before its loop sees a command. They go with the next
command to that worker (so the chunk a credit asks for can reuse them), before
each wait, and at the end of an epoch (so that nothing the loop dropped stays
mapped until the next one).

Each worker has one Unix socket pair with the main process (commands one way,
chunks and shared-memory descriptors the other). The main process keeps only
its end; a worker keeps only its own: under fork it closes the main-side ends
it inherited. So a worker's death is EOF on its socket (and its process
sentinel), and the main process's death is EOF in every worker, which then
exits: no orphans, whichever side dies."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import queue
import selectors
import signal
import sys
import threading
import weakref
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

from ..core.node import walk
from ..core.seeds import import_global_rngs
from ..errors import ParamError
from ..runtime.graph import import_runtimes
from . import transport
from .errors import WorkerDiedError
from .init_fns import WorkerPipe
from .intra_op import build_one_thread, one_torch_thread
from .segments import SegmentPool, SegmentViews
from .worker import SHUTDOWN, WorkerLoop, deferred, set_worker_info

_PARENT_CHECK_S = 1.0
_STOP_GRACE_S = 1.0
RELEASE = "release"


def process_main(
    pipe: WorkerPipe,
    conn: Connection,
    inherited: list[Connection],
    collect: bool,
) -> None:
    """Entry point of a worker process. ``collect``: whether the main process
    had automatic garbage collection on (it is paused across a fork)."""
    # What a fork inherits is never collected here: garbage of the main process (a
    # dropped DALI pipeline, CUDA tensors) would be finalized in a process without
    # its threads (DALI's destructor joins them: SIGSEGV). Nothing has been
    # collected since the fork (see _collection_paused); freezing also keeps gc
    # from walking and copying the inherited heap.
    gc.freeze()
    if collect:
        gc.enable()
    for other in inherited:  # fork only: main-side ends this process must not hold
        other.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    context = pipe.context
    set_worker_info(context)
    channel = _Channel(conn)

    loop = WorkerLoop(pipe, build_one_thread, channel.send, channel.recv, seed_globals=True)
    try:
        loop.serve()
    finally:
        channel.close()


class _Channel:
    """Worker side of the socket. Messages are pickled by the worker's main
    thread and written by a sender thread, so a message larger than the socket
    buffer does not stall the pipeline while the main process is busy.
    Segments the main process gives back are taken in by ``recv``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sock = transport.socket_of(conn)
        self.parent = os.getppid()
        self.torch_capped = False
        self.segments = SegmentPool()
        self.outbox: queue.SimpleQueue[transport.Encoded | None] = queue.SimpleQueue()
        self.sender = threading.Thread(target=self._send_loop, daemon=True, name="streamdag-sender")
        self.sender.start()

    def send(self, message: tuple) -> int:
        """Queue ``message`` for the sender thread; the bytes it put in shared memory."""
        if not self.torch_capped:  # a node may import torch mid-pass
            self.torch_capped = one_torch_thread()
        encoded = transport.encode(deferred(message), self.segments)
        self.outbox.put(encoded)
        return encoded.shared

    def recv(self, block: bool) -> tuple | None:
        while (command := self._recv(block)) is not None and command[0] == RELEASE:
            self.segments.give_back(command[1], command[2])
        return command

    def _recv(self, block: bool) -> tuple | None:
        try:
            if not block:
                return self.conn.recv() if self.conn.poll() else None
            while not self.conn.poll(_PARENT_CHECK_S):
                if os.getppid() != self.parent:
                    _exit_now()
            return self.conn.recv()
        except (EOFError, OSError):  # the main process is gone
            _exit_now()

    def _send_loop(self) -> None:
        while (message := self.outbox.get()) is not None:
            try:
                transport.send(self.conn, self.sock, message)
            except OSError:
                _exit_now()

    def close(self) -> None:
        self.outbox.put(None)
        self.sender.join(_STOP_GRACE_S)
        self.segments.close()


def _exit_now() -> None:
    """Leave at once, without flushing queues to a main process that is gone."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class ProcessPool:
    """The main side of ``num_workers`` worker processes."""

    def __init__(self, pipes: list[WorkerPipe], mp_context: BaseContext) -> None:
        self.size = len(pipes)
        self.broken = False
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._socks: list[Any] = []
        self._views: list[SegmentViews] = []
        self._read: list[tuple] = []  # messages read while giving segments back
        # One selector for the pool's life: building one per wait (as
        # multiprocessing's ``wait`` does) costs ~100 us at 14 workers.
        self._selector = selectors.DefaultSelector()
        self._finalizer = weakref.finalize(
            self, _stop_all, self._procs, self._conns, self._socks, self._views, self._selector
        )
        fork = mp_context.get_start_method() == "fork"
        if fork and pipes:  # what every worker would import, imported once here
            import_runtimes(pipes[0].spec)
            import_global_rngs()
        collect = gc.isenabled()
        try:
            for pipe in pipes:
                ours, theirs = mp_context.Pipe(duplex=True)
                inherited = [*self._conns, ours] if fork else []
                proc = mp_context.Process(
                    target=process_main,
                    args=(pipe, theirs, inherited, collect),
                    name=f"streamdag-worker-{pipe.context.worker_id}",
                    daemon=True,
                )
                self._conns.append(ours)
                try:
                    with _collection_paused():
                        proc.start()
                finally:
                    theirs.close()
                self._procs.append(proc)
        except Exception as exc:
            self.stop()
            if isinstance(exc, (pickle.PicklingError, AttributeError, TypeError)):
                _explain_unpicklable(pipes[0], mp_context.get_start_method(), exc)
            raise
        self._socks.extend(transport.socket_of(conn) for conn in self._conns)
        self._views.extend(SegmentViews() for _ in self._conns)
        for i, (conn, proc) in enumerate(zip(self._conns, self._procs, strict=True)):
            self._selector.register(conn, selectors.EVENT_READ, (i, True))
            self._selector.register(proc.sentinel, selectors.EVENT_READ, (i, False))

    @property
    def pids(self) -> list[int]:
        """The workers' process ids; none once stopped."""
        return [proc.pid for proc in self._procs] if self._finalizer.alive else []

    def send(self, worker: int, command: tuple) -> None:
        try:
            self._give_back(worker)
            _send_command(self._conns[worker], command)
        except (EOFError, OSError):
            self._died(worker)

    def return_segments(self) -> None:
        """Give every worker the segments the loop has dropped. A worker that
        is gone is noticed by the next wait."""
        for worker in range(self.size):
            with contextlib.suppress(EOFError, OSError):
                self._give_back(worker)

    def _give_back(self, worker: int) -> None:
        """Send the worker's segments the loop dropped, once the messages it
        has written are read: the main process unmaps what goes beyond the
        worker's free ones, and the segments those messages reuse are no
        longer free (``segments.py``). With nothing to give back nothing is
        read: a credit does not wait for the worker's chunks to be unpickled."""
        conn, views = self._conns[worker], self._views[worker]
        if not views.released:
            return
        while conn.poll():
            self._read.append(transport.receive(conn, self._socks[worker], views))
        free, unmapped = views.take_released()
        if free or unmapped:
            _send_command(conn, (RELEASE, free, unmapped))

    def recv(self, timeout: float | None) -> list[tuple]:
        """Messages that arrived within ``timeout`` seconds (maybe none)."""
        self.return_segments()
        messages, self._read = self._read, []
        ready = [key.data for key, _ in self._selector.select(0 if messages else timeout)]
        for worker, is_conn in ready:
            if not is_conn:  # its process sentinel: it exited
                self._died(worker)
        for worker, _ in ready:  # connections: a sentinel has raised above
            try:
                messages.append(
                    transport.receive(self._conns[worker], self._socks[worker], self._views[worker])
                )
            except (EOFError, OSError):
                self._died(worker)
        return messages

    def _died(self, worker: int) -> None:
        proc = self._procs[worker]
        proc.join(0.5)
        code, pid = proc.exitcode, proc.pid  # stop() closes the process object
        if code is None:
            how = "closed its connection"
        elif code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        hint = (
            " (the kernel's OOM killer sends SIGKILL when memory runs out: use fewer "
            "workers, a smaller prefetch_factor or smaller buffers)"
            if code == -signal.SIGKILL
            else ""
        )
        self.broken = True
        self.stop()
        raise WorkerDiedError(
            f"worker {worker} (pid {pid}) {how} while the epoch was running{hint}",
            worker_id=worker,
            pid=pid,
            exitcode=code,
        )

    def stop(self) -> None:
        """Ask every worker to exit, then terminate the ones that do not. The
        messages read and not delivered are dropped: no pass takes them, and
        their elements may view shared memory. Idempotent."""
        self._finalizer()
        self._read.clear()


def _send_command(conn: Connection, command: tuple) -> None:
    """``conn.send`` without multiprocessing's pickler, which copies its table
    of reducers for every message (a third of a credit's cost): commands are
    plain data, and the worker's ``conn.recv()`` reads plain pickles."""
    conn.send_bytes(pickle.dumps(command, pickle.HIGHEST_PROTOCOL))


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """No automatic garbage collection while a worker starts: a forked child
    starts with it off and runs Python code (multiprocessing's after-fork
    hooks) before ``process_main`` freezes what it inherited."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _stop_all(
    procs: list[Any],
    conns: list[Connection],
    socks: list[Any],
    views: list[SegmentViews],
    selector: selectors.BaseSelector,
) -> None:
    selector.close()
    for conn in conns:
        with contextlib.suppress(OSError, ValueError):
            conn.send((SHUTDOWN,))
    deadline = _now() + _STOP_GRACE_S
    for proc in procs:
        proc.join(max(0.0, deadline - _now()))
    for proc in procs:
        if proc.exitcode is None:
            proc.terminate()
            proc.join(_STOP_GRACE_S)
        if proc.exitcode is None:
            proc.kill()
            proc.join()
    for closable in (*procs, *conns, *socks, *views):  # a process: its sentinel pipes
        closable.close()


def _now() -> float:
    import time

    return time.monotonic()


def _explain_unpicklable(pipe: WorkerPipe, method: str, exc: Exception) -> None:
    """Name the function, or the node whose parameter, cannot be sent to a
    spawned worker."""
    for key, fn in zip(pipe.names, (pipe.init_fn, pipe.reset_fn), strict=True):
        if fn is not None and not _picklable(fn):
            msg = (
                f"{key} {fn!r} cannot be pickled for {method!r} worker processes: "
                "use a module-level function, or multiprocessing_context='fork'"
            )
            raise ParamError(msg) from exc
    for node in walk(pipe.spec):
        for key, value in node.params.items():
            if not _picklable(value):
                msg = (
                    f"{node.label}: {key}={value!r} cannot be pickled for {method!r} worker "
                    "processes; use a module-level function (not a lambda or closure) "
                    "or register it, or multiprocessing_context='fork'"
                )
                raise ParamError(msg) from exc


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001
        return False
    return True


def get_context(method: str | BaseContext | None) -> BaseContext:
    if isinstance(method, BaseContext):
        return method
    if method not in (None, "fork", "spawn", "forkserver"):
        raise ParamError(
            f"multiprocessing_context must be 'fork', 'spawn' or 'forkserver', got {method!r}"
        )
    return multiprocessing.get_context(method or "fork")

"""CPU time per node by sampling stacks, without a hook per element.

About 100 times per CPU-second, every thread's stack is looked at and the CPU
time that thread used since the last look is charged to the innermost node on
its stack (a user function a node calls, or a runtime node's own frame).
Per-thread CPU clocks make the amount exact; only *where* it is charged is
sampled.

The main thread is looked at by a SIGPROF handler (an ITIMER_PROF timer),
which runs in it between two bytecodes, so it is seen where it is. Other
threads are looked at by a helper thread on its own clock; it runs when it
gets the GIL, so the thread it took the GIL from is seen where it released it
(a worker thread is mostly seen blocked on its queue right after its work),
so the CPU time of a non-main thread seen outside every node is carried to
the next node it is seen in. Where the timer cannot be set (a loader built
outside the main thread, a profiler that owns SIGPROF) the helper thread looks
at the main thread too, without carrying.

One sampler per process, shared by every loader and worker thread in it
(``acquire``/``release``): two would charge each thread twice."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from types import CodeType, FrameType
from typing import Any

from ..runtime.attribution import node_of_frame
from ..runtime.graph import RuntimeGraph
from ..runtime.node import RuntimeNode

DEFAULT_INTERVAL = 0.01


class StackSampler:
    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self.busy: defaultdict[str, float] = defaultdict(float)
        self.started = time.perf_counter()
        self._codes: dict[CodeType, RuntimeNode] = {}
        self._clocks: dict[int, tuple[int, float]] = {}  # thread -> (clock id, last cpu time)
        self._stop = threading.Event()
        self._previous: Any = None
        self._main = threading.main_thread().ident
        self.timer = self._start_timer()
        self._thread = threading.Thread(target=self._run, name="streamdag-stats", daemon=True)
        self._thread.start()

    def watch(self, graph: RuntimeGraph) -> None:
        """Attribute the user functions of ``graph``'s nodes to them."""
        self._codes = {**self._codes, **graph.code_owners}

    def stop(self) -> None:
        if self.timer and threading.current_thread() is threading.main_thread():
            _disarm()
            signal.signal(signal.SIGPROF, self._previous)
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def sample(self, frames: dict[int, FrameType]) -> None:
        """Charge each thread's CPU time since the last look to its node."""
        codes, busy, clocks = self._codes, self.busy, self._clocks
        for thread, frame in frames.items():
            known = clocks.get(thread)
            try:
                clock = known[0] if known else time.pthread_getcpuclockid(thread)
                now = time.clock_gettime(clock)
            except (OSError, OverflowError):  # the thread ended meanwhile
                clocks.pop(thread, None)
                continue
            node = _innermost_node(frame, codes)
            spec = getattr(node, "spec", None)  # None: a node still being built
            if spec is not None and known is not None:
                busy[spec.id] += now - known[1]
            if node is not None or known is None or thread == self._main:
                clocks[thread] = (clock, now)

    def _start_timer(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False
        if signal.getsignal(signal.SIGPROF) not in (signal.SIG_DFL, None):
            return False  # a profiler owns SIGPROF: do not take it
        self._previous = signal.signal(signal.SIGPROF, self._on_signal)
        signal.siginterrupt(signal.SIGPROF, False)  # restart interrupted system calls
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        atexit.unregister(_disarm)
        atexit.register(_disarm)  # a loader never shut down must not kill the exit
        return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if frame is not None and self._main is not None:
            self.sample({self._main: frame})

    def _run(self) -> None:
        skip = {threading.get_ident(), self._main if self.timer else None}
        while not self._stop.wait(self.interval):
            frames = sys._current_frames()
            for gone in self._clocks.keys() - frames.keys():
                del self._clocks[gone]
            self.sample({t: f for t, f in frames.items() if t not in skip})
            del frames  # a frame held while waiting keeps its locals (batches) alive


def _disarm() -> None:
    """No more SIGPROF: its default action ends the process, which is what a
    tick arriving after the interpreter dropped our handler would do."""
    signal.setitimer(signal.ITIMER_PROF, 0)
    signal.signal(signal.SIGPROF, signal.SIG_IGN)


def _innermost_node(
    frame: FrameType | None, codes: dict[CodeType, RuntimeNode]
) -> RuntimeNode | None:
    while frame is not None:
        node = node_of_frame(frame, codes)
        if node is not None:
            return node
        frame = frame.f_back
    return None


_lock = threading.Lock()
_shared: StackSampler | None = None
_users = 0


def acquire() -> StackSampler:
    """The process's sampler, started on first use."""
    global _shared, _users
    with _lock:
        if _shared is None:
            _shared = StackSampler()
        _users += 1
        return _shared


def release() -> None:
    """Stops the process's sampler when its last user is done."""
    global _shared, _users
    with _lock:
        _users -= 1
        if _users == 0 and _shared is not None:
            _shared.stop()
            _shared = None


def _forget_after_fork() -> None:
    """A forked child has neither the timer nor the thread: it starts its own."""
    global _shared, _users, _lock
    if _shared is not None and _shared.timer:  # the parent's handler
        signal.signal(signal.SIGPROF, _shared._previous)
    _shared, _users, _lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

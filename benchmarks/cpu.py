"""CPU time of a repetition's process tree, read in the repetition itself.

Throughput on a shared 2-core VM moves by +-5% between runs; the CPU a
contender spends per item moves much less, and shows where a ratio comes
from: a contender that keeps both cores busy (``cores`` near 2) is CPU-bound,
so only less CPU per item makes it faster. W3 counts the moto server too: it
is a child of the repetition and serves the bytes on the same cores.

``tree_cpu()`` is this process, its reaped children (``getrusage``), and every
live descendant (``/proc/<pid>/stat``: its own time and that of the children
it reaped). A worker counts once wherever it is at each read: alive, a zombie
(its times stay readable), or reaped into ``RUSAGE_CHILDREN``.
"""

from __future__ import annotations

import os
import resource
import time

from benchmarks.memory import descendants

_TICK = os.sysconf("SC_CLK_TCK")


def own_and_reaped_cpu() -> float:
    """CPU seconds (user + system) of this process and the children it reaped."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def tree_cpu() -> float:
    """CPU seconds (user + system) used so far by this process and everything below it."""
    return own_and_reaped_cpu() + live_descendants_cpu()


def live_descendants_cpu() -> float:
    """CPU seconds of every live process below this one (and of the children they reaped)."""
    return sum(children_user_system())


def proc_cpu(pid: int) -> float:
    """CPU seconds of live process ``pid`` and the children it reaped (0 if gone)."""
    return sum(proc_user_system(pid))


def proc_user_system(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of live process ``pid`` and the children it
    reaped ((0, 0) if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0  # ended and reaped between listing and reading: in RUSAGE_CHILDREN now
    utime, stime, cutime, cstime = map(int, fields[11:15])
    return (utime + cutime) / _TICK, (stime + cstime) / _TICK


def children_user_system() -> tuple[float, float]:
    """User and system CPU seconds of every live process below this one."""
    me = os.getpid()
    times = [proc_user_system(pid) for pid in descendants(me) if pid != me]
    return sum(u for u, _ in times), sum(s for _, s in times)


def wait_until_quiet(cores: float = 0.2, window_s: float = 0.5, timeout_s: float = 60.0) -> float:
    """Wait until this process tree keeps fewer than ``cores`` busy over
    ``window_s`` (processes it started have finished starting); return the
    seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        before = tree_cpu()
        time.sleep(window_s)
        if tree_cpu() - before < cores * window_s:
            break
    return time.monotonic() - t0

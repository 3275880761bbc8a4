"""Memory of a process tree, read from /proc (Linux; no psutil).

Method: the harness polls the repetition's process tree (the child and all of
its descendants, found through /proc/<pid>/task/<tid>/children, or by scanning
/proc/*/stat where that file is missing) every ``INTERVAL`` seconds and sums
each process's PSS (/proc/<pid>/smaps_rollup) and RSS (/proc/<pid>/statm).

PSS is the headline: it splits pages shared between processes (libraries,
copy-on-write pages of forked DataLoader workers) among them, so the sum is the
tree's real footprint. Summed RSS counts shared pages once per process and so
overstates multi-process loaders against threaded ones (DALI); it is kept in the
JSON. Reading smaps_rollup walks the process's page tables: 3 ms on a quiet
machine, but 14-16 ms for a 400 MB tree on a busy 2-core VM, which at 5 Hz is
7-8% of a core taken from contenders that use both cores (the floor, run on
one core and scaled x2, leaves the poller the other). So the poll runs at
most 5 Hz and sleeps at least 1 / ``POLL_SHARE`` times its own duration,
using no more than 2% of one core. Polling can miss a spike shorter than the
interval in a worker; the child process's own peak is exact (VmHWM), and the
reported peak is the larger of the two.
"""

from __future__ import annotations

import os

INTERVAL = 0.2  # seconds between polls, at least
POLL_SHARE = 0.02  # of one core, at most
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_HAS_CHILDREN_FILE = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(_children(p))
    return tree


def _children(pid: int) -> list[int]:
    if not _HAS_CHILDREN_FILE:
        return _children_by_scan(pid)
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(c) for c in f.read().split())
        except OSError:
            continue  # the thread ended
    return kids


def _children_by_scan(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                kids.append(int(entry))
    return kids


def tree_kb(pid: int) -> tuple[int, int]:
    """(summed PSS, summed RSS) of the tree under ``pid``, in KiB."""
    pss = rss = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                rss += int(f.read().split()[1]) * _PAGE_KB
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
        except (OSError, IndexError, ValueError):
            continue  # the process ended between listing and reading
    return pss, rss


def own_peak_kb() -> int:
    """This process's exact peak resident set (VmHWM), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0

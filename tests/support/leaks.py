"""Leak checks for reading-service tests: child processes of this process
and shared-memory segments, before and after. Other tests may run beside
this one (other pytest processes, xdist workers): only what this process
and its children made counts."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

# long-lived helpers multiprocessing starts once per interpreter, not per loader,
# and the session's moto S3 server (tests/support/s3.py)
_SINGLETONS = ("forkserver", "resource_tracker", "moto.server")
_SHM_PREFIXES = ("torch_", "sem.mp", "psm_", "wnsm_", "streamdag")
# torch names a segment after the process that made it: torch_<pid>_<random>_<n>
_CREATOR = re.compile(r"torch_(\d+)_")


def _parents() -> dict[int, tuple[int, bool]]:
    """Every live process: pid -> (parent pid, whether it is a zombie)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry)] = (int(fields[1]), fields[0] == "Z")
    return found


def open_fds() -> int:
    """How many descriptors this process has open."""
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


def children(pid: int | None = None) -> set[int]:
    """Live (non-zombie) child processes, singletons excluded."""
    pid = os.getpid() if pid is None else pid
    found = set()
    for child, (ppid, zombie) in _parents().items():
        if ppid != pid or zombie:
            continue
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if not any(s in cmdline for s in _SINGLETONS):
            found.add(child)
    return found


def descendants(pid: int | None = None) -> set[int]:
    """``pid`` (default: this process) and every live process below it."""
    tree, parents = {os.getpid() if pid is None else pid}, _parents()
    while below := {child for child, (ppid, _) in parents.items() if ppid in tree} - tree:
        tree |= below
    return tree


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def shm_segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith(_SHM_PREFIXES)}


def new_segments(before: set[str]) -> set[str]:
    """Segments in /dev/shm that are not in ``before``, less those whose name
    says a live process outside this one's tree made them (a test running
    beside this one)."""
    new = shm_segments() - before
    tree = descendants() if new else set()

    def foreign(name: str) -> bool:
        creator = _CREATOR.match(name)
        return creator is not None and int(creator[1]) not in tree and alive(int(creator[1]))

    return {name for name in new if not foreign(name)}


def mapped_segments(pid: int | None = None) -> int:
    """Shared-memory segments (streamdag's anonymous memfds) mapped by a process."""
    return len(segment_inodes(pid))


def segment_inodes(pid: int | None = None) -> set[str]:
    """The inodes of the segments a process maps: a segment mapped by a
    worker and by the main process has the same inode in both."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/maps") as f:
            return {line.split()[4] for line in f if "/memfd:streamdag" in line}
    except OSError:  # the process is gone
        return set()


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """The test must leave no child process and no shared-memory segment. A
    new segment made by no process of another tree counts once it outlives
    the wait: a test beside this one may hold its own for a moment."""
    shm, procs = shm_segments(), children()
    yield
    assert wait_until(lambda: children() <= procs), f"orphans: {children() - procs}"
    assert wait_until(lambda: not new_segments(shm)), f"leaked /dev/shm: {new_segments(shm)}"

"""Leak checks for reading-service tests: child processes of this process
and shared-memory segments, before and after."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

# long-lived helpers multiprocessing starts once per interpreter, not per loader,
# and the session's moto S3 server (tests/support/s3.py)
_SINGLETONS = ("forkserver", "resource_tracker", "moto.server")
_SHM_PREFIXES = ("torch_", "sem.mp", "psm_", "wnsm_", "streamdag")


def children(pid: int | None = None) -> set[int]:
    """Live (non-zombie) child processes, singletons excluded."""
    pid = os.getpid() if pid is None else pid
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        state, ppid = fields[0], int(fields[1])
        if ppid == pid and state != "Z" and not any(s in cmdline for s in _SINGLETONS):
            found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def shm_segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith(_SHM_PREFIXES)}


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
    """The test must leave no child process and no shared-memory segment."""
    shm, procs = shm_segments(), children()
    yield
    assert wait_until(lambda: children() <= procs), f"orphans: {children() - procs}"
    assert shm_segments() <= shm, f"leaked /dev/shm: {shm_segments() - shm}"

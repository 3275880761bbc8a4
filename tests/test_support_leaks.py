"""The leak check counts only what this test's process tree made: tests of
other pytest processes (or xdist workers) run beside it on the same machine."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.leaks import descendants, new_segments, shm_segments


@pytest.fixture
def make_segment() -> Iterator:
    """Creates named files in /dev/shm as a process would; removes them afterwards."""
    made: list[Path] = []

    def make(name: str) -> str:
        path = Path("/dev/shm") / name
        path.write_bytes(b"\0" * 64)
        made.append(path)
        return name

    yield make
    for path in made:
        path.unlink(missing_ok=True)


def test_a_segment_of_this_process_or_without_a_creator_is_new(make_segment) -> None:
    before = shm_segments()
    tag = uuid.uuid4().int % 10**9
    ours = make_segment(f"torch_{os.getpid()}_{tag}_0")
    unnamed = make_segment(f"psm_{tag:x}")
    assert new_segments(before) >= {ours, unnamed}


def test_a_segment_a_live_process_of_another_tree_made_is_not_ours(make_segment) -> None:
    """Our parent is alive and outside our tree: a test beside ours, say."""
    before = shm_segments()
    tag = uuid.uuid4().int % 10**9
    beside = make_segment(f"torch_{os.getppid()}_{tag}_0")
    assert beside not in new_segments(before)


@pytest.mark.timeout(30)
def test_a_segment_a_child_made_is_ours(make_segment) -> None:
    """A child's pid is in the tree while it lives; once it is gone, the
    segment it left behind counts as a leak too."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert {os.getpid(), child.pid} <= descendants()
        before = shm_segments()
        made = make_segment(f"torch_{child.pid}_{uuid.uuid4().int % 10**9}_0")
        assert made in new_segments(before)
    finally:
        child.communicate(b"")
    assert made in new_segments(before)

"""W5 streamdag: DALI-backed GPU decode. Placeholder until the DALI backend exists."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    raise NotImplementedError("streamdag's DALI/GPU decode path is not benchmarked yet")

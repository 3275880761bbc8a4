"""W4 streamdag with 4 virtual workers per worker process: the same
graph as ``w4_streamdag``; its ratio to that one is what virtual workers
(elastic resume) cost."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.contenders import w4_streamdag
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    return w4_streamdag.make(inputs, virtual_per_worker=4)

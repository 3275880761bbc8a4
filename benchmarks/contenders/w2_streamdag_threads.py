"""W2 streamdag in 2 worker threads: the same graph as ``w2_streamdag``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.contenders import w2_streamdag
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    return w2_streamdag.make(inputs, threads=True)

"""W1 through DataLoader2 with statistics on (element counts, CPU-time
sampling): their overhead, next to w1_streamdag_dl2 without them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.contenders.w1_streamdag_dl2 import loader_epochs
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator[list[int]]]:
    return loader_epochs(inputs, stats=True)

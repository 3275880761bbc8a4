"""W1 streamdag: the same chain as DataPipes, iterated directly (runs in process)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from benchmarks.transforms import inc, is_even
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterable[list[int]]]:
    import streamdag as sd

    def epoch() -> Iterable[list[int]]:
        return (
            sd.IterableWrapper(range(inputs.n_ints)).map(inc).filter(is_even).batch(inputs.w1_batch)
        )

    return epoch

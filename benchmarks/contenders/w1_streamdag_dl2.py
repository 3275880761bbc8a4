"""W1 streamdag through DataLoader2 + InProcessReadingService: the loader's own overhead."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.transforms import inc, is_even
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator[list[int]]]:
    return loader_epochs(inputs)


def loader_epochs(inputs: Inputs, **loader_options: bool) -> Callable[[], Iterator[list[int]]]:
    import streamdag as sd

    def epoch() -> Iterator[list[int]]:
        dp = (
            sd.IterableWrapper(range(inputs.n_ints)).map(inc).filter(is_even).batch(inputs.w1_batch)
        )
        loader = sd.DataLoader2(
            dp, reading_service=sd.InProcessReadingService(), seed=inputs.seed, **loader_options
        )
        try:
            yield from loader
        finally:
            loader.shutdown()

    return epoch

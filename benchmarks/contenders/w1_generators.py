"""W1 floor: the map -> filter -> batch chain as plain Python generators."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from benchmarks.transforms import inc, is_even
from benchmarks.workloads import Inputs


def _map(src: Iterable, fn: Callable) -> Iterator:
    for x in src:
        yield fn(x)


def _filter(src: Iterable, pred: Callable) -> Iterator:
    for x in src:
        if pred(x):
            yield x


def _batch(src: Iterable, n: int) -> Iterator[list]:
    batch = []
    for x in src:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def make(inputs: Inputs) -> Callable[[], Iterable[list[int]]]:
    return lambda: _batch(_filter(_map(range(inputs.n_ints), inc), is_even), inputs.w1_batch)

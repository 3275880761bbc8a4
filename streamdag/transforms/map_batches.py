"""map_batches: ``fn`` applied to batches of ``batch_size`` input elements,
its results flattened (torchdata's BatchMapper; a vectorised ``fn`` pays its
call once per batch). A flatmap whose parts are batches, so its state is the
flatmap's: the current batch's place in the input and the offset in its results."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from ..core.params import Col
from .flatmap import REPLAY_EVERY, FlatMapNode


class MapBatchesNode(FlatMapNode):
    def setup(self) -> None:
        super().setup()
        col = self.params["input_col"]
        if col is not None:
            self.fn = partial(_on_columns, self.fn, col)
        self._size = size = self.params["batch_size"]
        # checkpoints at batch starts: a multiple of the batch size near 32
        self._every = size * max(1, round(REPLAY_EVERY / size))

    def replay_every(self) -> int:
        return self._every

    def part_start(self, item: int) -> int:
        return (item - 1) // self._size * self._size

    def _parts(self) -> Iterator[Iterator[Any]]:
        replay, size = self._replay, self._size
        while batch := replay.take(size):
            replay.forget_before(replay.seq - len(batch))
            yield self._expand(batch)

    def replay_part(self, item: int) -> list[Any]:
        replay = self._replay
        batch = replay.take(item - replay.seq)
        if replay.seq < item:
            raise replay.ended(item, self.label)
        return batch


def _on_columns(fn: Callable[[list[Any]], Any], col: Col, batch: list[Any]) -> Any:
    """``fn`` of the batch's ``col`` values (a list per element for several columns)."""
    if isinstance(col, (list, tuple)):
        return fn([[element[c] for c in col] for element in batch])
    return fn([element[col] for element in batch])

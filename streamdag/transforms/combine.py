"""zip, concat and mux: several inputs into one stream."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

from ..runtime.node import RuntimeNode


class ZipNode(RuntimeNode):
    """Tuples of one element from each input; stops with the shortest input."""

    def iterator(self) -> Iterator[tuple[Any, ...]]:
        return zip(*[node.iterator() for node in self.inputs], strict=False)


class ConcatNode(RuntimeNode):
    """All of the first input, then all of the second, ..."""

    def setup(self) -> None:
        self._current = 0

    def reset(self) -> None:
        self._current = 0

    def iterator(self) -> Iterator[Any]:
        return chain.from_iterable(self._parts())

    def _parts(self) -> Iterator[Iterator[Any]]:
        while self._current < len(self.inputs):
            yield self.inputs[self._current].iterator()
            self._current += 1

    def state(self) -> dict:
        return {"current": self._current, "in": [node.state() for node in self.inputs]}

    def restore(self, state: dict) -> None:
        self._current = state["current"]
        for node, sub in zip(self.inputs, state["in"], strict=True):
            node.restore(sub)


class MuxNode(RuntimeNode):
    """Round robin: one element from each input in turn. Stops as soon as any
    input is exhausted (the elements of that last round that were already
    taken are yielded); use concat or SampleMultiplexer to read everything."""

    def setup(self) -> None:
        self._turn = 0

    def reset(self) -> None:
        self._turn = 0

    def iterator(self) -> Iterator[Any]:
        return self._run([node.iterator() for node in self.inputs])

    def _run(self, its: list[Iterator[Any]]) -> Iterator[Any]:
        count = len(its)
        while True:
            for turn in range(self._turn, count):
                try:
                    item = next(its[turn])
                except StopIteration:
                    return
                self._turn = (turn + 1) % count
                yield item
            self._turn = 0

    def state(self) -> dict:
        return {"turn": self._turn, "in": [node.state() for node in self.inputs]}

    def restore(self, state: dict) -> None:
        self._turn = state["turn"]
        for node, sub in zip(self.inputs, state["in"], strict=True):
            node.restore(sub)

"""in_memory_cache: keep the elements of the first full pass in memory and
serve later epochs from there."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

from ..runtime.counting import position_of
from ..runtime.node import ResumableNode


class InMemoryCacheNode(ResumableNode):
    """Only a complete pass is served from memory: a pass that was cut short
    or resumed mid-way reads the input again. If more than ``max_items``
    elements arrive, caching stops with a warning (the data still flows).
    Place it before any shuffle: it replays the first pass's order."""

    def setup(self) -> None:
        super().setup()
        self._cache: list[Any] | None = None
        self._serving: Any = None

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self._serving = None
        if self._cache is not None:
            self._serving = it = iter(self._cache)
            if restored is not None:
                it.__setstate__(restored["pos"])
            return it
        if restored is not None and restored["pos"] is None:
            self.inputs[0].restore(restored["in"])
            return self.inputs[0].iterator()
        skip = restored["pos"] if restored is not None else 0
        return self._fill(self.inputs[0].iterator(), self.params["max_items"], skip)

    def _fill(self, it: Iterator[Any], limit: int | None, skip: int) -> Iterator[Any]:
        """Pass the input through while keeping it; after a resume in a fresh
        process, the first ``skip`` elements are re-read into the cache only."""
        kept: list[Any] | None = []
        for index, item in enumerate(it):
            if kept is not None:
                kept.append(item)
                if limit is not None and len(kept) > limit:
                    warnings.warn(
                        f"{self.label}: more than max_items={limit} elements; "
                        "not caching this input",
                        stacklevel=2,
                    )
                    kept = None
            if index >= skip:
                yield item
        if kept is not None:
            self._cache = kept

    def live_state(self) -> dict:
        if self._serving is not None:
            return {"pos": position_of(self._serving, len(self._cache or ())), "in": None}
        return {"pos": None, "in": self.inputs[0].state()}

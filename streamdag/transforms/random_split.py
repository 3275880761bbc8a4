"""random_split: one of the groups of a seeded random split (torchdata's
RandomSplitter). Every output draws the same sequence of groups from
``random.Random(seed)``, so the groups are disjoint, cover the input, and are
the same every epoch; weights are lowered as elements are drawn so that group
sizes follow the weights exactly when they are integers summing to
``total_length``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from ..core.rng_state import decode_random_state, encode_random_state
from ..runtime.node import ResumableTransform


def normalized(weights: list[float], total: int) -> list[float]:
    whole = sum(weights)
    return [float(w) * total / whole for w in weights]


class RandomSplitNode(ResumableTransform):
    """State: the random generator's state and the weights left."""

    def setup(self) -> None:
        super().setup()
        pairs = self.params["weights"]
        self._target = [key for key, _ in pairs].index(self.params["target"])
        self._groups = range(len(pairs))
        self._initial = normalized([w for _, w in pairs], self.params["total_length"])

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self._rng = random.Random(self.params["seed"])
        if restored is None:
            self._weights = list(self._initial)
            self._remaining = self.params["total_length"]
        else:
            self._rng.setstate(decode_random_state(restored["rng"]))
            self._weights, self._remaining = list(restored["weights"]), restored["remaining"]
        return self._run(self.inputs[0].iterator())

    def _run(self, items: Iterator[Any]) -> Iterator[Any]:
        target = self._target
        for item in items:
            if self._draw() == target:
                yield item

    def _draw(self) -> int:
        group = self._rng.choices(self._groups, self._weights)[0]
        self._weights[group] -= 1
        self._remaining -= 1
        if self._weights[group] < 0:
            self._weights[group] = 0
            self._weights = normalized(self._weights, self._remaining)
        return group

    def live_state(self) -> dict:
        return {
            "rng": encode_random_state(self._rng.getstate()),
            "weights": list(self._weights),
            "remaining": self._remaining,
        }

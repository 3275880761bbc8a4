"""SampleMultiplexer: seeded weighted random mixing of several pipelines."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from ..core.rng_state import decode_random_state, encode_random_state
from ..core.seeds import derive_seed
from ..runtime.node import ResumableNode


class SampleMultiplexerNode(ResumableNode):
    """Each element comes from input i with probability weight_i / sum of the
    weights of the inputs not yet exhausted. When an input ends it is dropped
    and the others continue with renormalised weights, until all have ended:
    every element of every input is yielded exactly once."""

    def setup(self) -> None:
        super().setup()
        self._pass = 0

    def reset(self) -> None:
        super().reset()
        self._pass = 0

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self._rng = random.Random()
        if restored is None:
            self._alive = list(range(len(self.inputs)))
            fixed = self.params["seed"]
            seed = (
                self.seed(self._pass)
                if fixed is None
                else derive_seed(fixed, self.graph.epoch, self._pass)
            )
            self._rng.seed(seed)
            self._pass += 1
        else:
            self._alive = list(restored["alive"])
            self._pass = restored["pass"]
            self._rng.setstate(decode_random_state(restored["rng"]))
            for node, sub in zip(self.inputs, restored["in"], strict=True):
                node.restore(sub)
        return self._run([node.iterator() for node in self.inputs])

    def _run(self, its: list[Iterator[Any]]) -> Iterator[Any]:
        weights = self.params["weights"]
        rand = self._rng.random
        while self._alive:
            alive = self._alive
            bounds = list(accumulate(weights[i] for i in alive))
            total = bounds[-1]
            while True:
                pick = alive[bisect.bisect_right(bounds, rand() * total)]
                try:
                    item = next(its[pick])
                except StopIteration:
                    self._alive = [i for i in alive if i != pick]
                    break
                yield item

    def live_state(self) -> dict:
        return {
            "pass": self._pass,
            "alive": list(self._alive),
            "rng": encode_random_state(self._rng.getstate()),
            "in": [node.state() for node in self.inputs],
        }

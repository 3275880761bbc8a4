"""Sampler (torchdata's class): what a torch ``Sampler`` yields over a source
of the input pipe's length, e.g. the indices ``0..n-1`` (SequentialSampler)
or a permutation of them (RandomSampler).

A sampler with a ``generator`` attribute left None (torch's RandomSampler,
WeightedRandomSampler, SubsetRandomSampler) gets a generator seeded from the
node's seed, so the order follows the loader's seed (torch's global RNG is
left alone: other threads use it). State: the number of indices taken; a resume
starts the sampler again with the same seed and skips them."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from itertools import islice
from operator import itemgetter
from typing import Any

from ..errors import ResumeError
from ..runtime.counting import position_of
from ..runtime.node import ResumableNode

_first = itemgetter(0)


def make_sampler(params: Mapping[str, Any]) -> Any:
    """``sampler(*sampler_args, data_source=range(length), **sampler_kwargs)``."""
    cls = params["sampler"]
    if cls is None:
        from torch.utils.data import SequentialSampler as cls
    args, kwargs = params["sampler_args"] or (), params["sampler_kwargs"] or {}
    return cls(*args, data_source=range(params["length"]), **kwargs)


class SamplerNode(ResumableNode):
    def iterator(self) -> Iterator[Any]:
        sampler = make_sampler(self.params)
        if getattr(sampler, "generator", False) is None:  # torch's random samplers
            import torch

            sampler.generator = torch.Generator().manual_seed(self.seed())
        self._taken = self.take_restored() or 0
        it = iter(sampler)
        skipped = sum(1 for _ in islice(it, self._taken))
        if skipped < self._taken:
            msg = (
                f"{self.label}: the sampler yields {skipped} indices, fewer than "
                f"the {self._taken} of the restored state"
            )
            raise ResumeError(msg)
        self._counter = iter(range(self._taken, sys.maxsize))
        return map(_first, zip(it, self._counter, strict=False))

    def live_state(self) -> int:
        return self._taken + position_of(self._counter, sys.maxsize - self._taken)

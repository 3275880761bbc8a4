"""The runtime of custom readers (``@sd.reader``, see ``datapipes/reader.py``):
one node class calls the reader function or class its spec defines with a
``ReaderContext``, the input element if it takes one, and its params.

Resume: a class with ``state_dict()``/``load_state_dict(state)`` (plain
data) resumes exactly from its own state; anything else is re-run and the
items already delivered are skipped, which needs a deterministic reader."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..core.readers import ReaderDef
from ..runtime.counting import count_of, counted
from .expand import ExpandingNode


@dataclass(frozen=True)
class ReaderContext:
    """Where and when a reader runs. ``seed`` is the node's seed for this
    epoch: identical on every rank and worker for a source reader (so all
    agree, e.g. on a shuffled shard order, before each takes its share)."""

    rank: int
    world_size: int
    worker_id: int
    num_workers: int
    seed: int
    epoch: int

    @property
    def shard_index(self) -> int:
        """This copy's index among all of them: rank * num_workers + worker_id."""
        return self.rank * self.num_workers + self.worker_id

    @property
    def num_shards(self) -> int:
        """How many copies of the pipeline run: world_size * num_workers."""
        return self.world_size * self.num_workers


class CustomReaderNode(ExpandingNode):
    """The runtime of every ``@sd.reader`` op: calls the reader its spec
    defines (``opspec.definition``)."""

    def setup(self) -> None:
        super().setup()
        self.definition: ReaderDef = self.opspec.definition

    def context(self) -> ReaderContext:
        w = self.graph.worker
        return ReaderContext(
            w.rank, w.world_size, w.worker_id, w.num_workers, self.seed(), self.graph.epoch
        )

    def expand(self, item: Any, at: Any) -> Iterator[Any]:
        d = self.definition
        args = (self.context(), item) if d.inputs else (self.context(),)
        params = {k: v for k, v in self.params.items() if k != "on_error"}
        if d.has_state:
            obj = d.target(*args, **params)
            if at is not None:
                obj.load_state_dict(at)
            self._pos = obj.state_dict
            return iter(obj)
        items, counter = counted(d.target(*args, **params), at or 0)
        self._pos = partial(count_of, counter)
        return items

    def where(self, item: Any) -> str:
        return f"reader {self.definition.name!r}" + (f" item {item!r:.120}" if self.inputs else "")

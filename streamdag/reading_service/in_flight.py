"""Graph states kept behind the stream, so that ``DataLoader2.state_dict``
can describe it a few elements back: where a training loop that takes
elements ahead (Lightning's fetcher takes one) really is. Taking a graph
state per element would cost more than the element; instead a state points
at an earlier graph state and says how many elements to replay from it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from itertools import islice
from typing import Any

import msgpack

from ..errors import ResumeError

#: modules whose fit loop asks a loader for its state while its data fetcher
#: holds the next batch: Lightning's (both package names)
LIGHTNING = ("lightning.pytorch.", "pytorch_lightning.")


def taken_ahead_by_caller(depth: int = 8) -> int:
    """1 when Lightning's fit loop is asking for the state (its fetcher took
    one batch ahead of the step it trains), else 0; so a Lightning checkpoint
    resumes at the first untrained batch without ``in_flight=1``. Looks at
    the callers' module names only when a state is taken (a checkpoint)."""
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return 0
        if frame.f_globals.get("__name__", "").startswith(LIGHTNING):
            return 1
        frame = frame.f_back
    return 0


#: a loader with ``in_flight`` takes a graph state between two elements when
#: this many times the cost of the last one has passed: at most 0.1% of the time
SPACING = 1000


class Anchors:
    """Graph states of one epoch, each after a known number of elements; the
    first is where the epoch (or the state it resumed from) began, kept as
    given (nothing changes a loaded state). Those taken from the running graph
    are kept packed: the objects they refer to change as it runs."""

    def __init__(self, at: int, graph: Any) -> None:
        self._kept: list[tuple[int, Any, bool]] = [(at, graph, False)]  # at, state, packed

    def add(self, at: int, graph: Any, back: int) -> None:
        """Keep ``graph``, the state after ``at`` elements; forget those that
        no state ``back`` or fewer elements behind a later one needs."""
        if at > self._kept[-1][0]:
            self._kept.append((at, msgpack.packb(graph), True))
        self._forget_before(at - back)

    def rewound(self, state: dict[str, Any], back: int, in_flight: int) -> dict[str, Any]:
        """Loader ``state`` moved ``back`` elements earlier: the latest graph
        state kept at or before that point and the elements to replay."""
        yielded = state["yielded"]
        target = yielded - back
        self._forget_before(target)
        at, graph, packed = self._kept[0]
        if at > target:
            raise ValueError(
                f"DataLoader2.state_dict(in_flight={in_flight}): the earliest graph state "
                f"kept is after element {at} of epoch {state['epoch']}, and the loop took "
                f"{yielded - at} since (a loader's in_flight bounds the states it keeps)"
            )
        if not state["done"]:
            self.add(yielded, state["graph"], back)
        if packed:
            graph = msgpack.unpackb(graph, strict_map_key=False)
        return {**state, "yielded": target, "done": False, "graph": graph, "replay": target - at}

    def _forget_before(self, target: int) -> None:
        usable = [i for i, (at, _, _) in enumerate(self._kept) if at <= target]
        if usable:
            del self._kept[: usable[-1]]


def replay(it: Iterator[Any], count: int, epoch: int) -> None:
    """Drop the ``count`` elements that a state saved with in_flight replays."""
    if sum(1 for _ in islice(it, count)) < count:
        raise ResumeError(
            f"DataLoader2: the saved state replays {count} elements of epoch {epoch} "
            "but the epoch ended before: the pipeline or its data changed since it was saved"
        )


def count(in_flight: int) -> int:
    """``in_flight``, checked."""
    if not isinstance(in_flight, int) or in_flight < 0:
        raise ValueError(f"DataLoader2: in_flight must be an int >= 0, got {in_flight!r}")
    return in_flight

"""flatmap and unbatch: one input element becomes many output elements."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

from ..runtime.attribution import framed
from ..runtime.counting import Tally, position_of
from ..runtime.node import ResumableNode
from ..runtime.replay import Replayer, restore_source

_REPLAY_EVERY = 32


class FlatMapNode(ResumableNode):
    """State: which input element is being expanded and how far; resume
    replays that element (and at most 32 before it) instead of saving the rest
    of its expansion."""

    def setup(self) -> None:
        super().setup()
        fn = self.params.get("fn")
        self.fn = framed(fn, self) if fn is not None else None
        self._pulls = Tally()

    def counted(self) -> tuple[int | None, int | None]:
        return self._pulls.value, None

    def iterator(self) -> Iterator[Any]:
        self._replay = replay = Replayer(self.inputs[0], _REPLAY_EVERY)
        self._pulls.follow(replay.pulled)
        self._part: Any = iter(())
        self._part_len = 0
        restored = self.take_restored()
        if restored is None:
            replay.start()
            return chain.from_iterable(self._parts())
        replay.start(restored["ckpt"])
        if restored["item"] == 0:
            return chain.from_iterable(self._parts())
        replay.skip_to(restored["item"] - 1, self.label)
        current = self._expand(replay.replay(restored["item"], self.label))
        current.__setstate__(restored["offset"])
        return chain(current, chain.from_iterable(self._parts()))

    def _expand(self, item: Any) -> Any:
        part = list(item if self.fn is None else self.fn(item))
        self._part_len = len(part)
        self._part = it = iter(part)
        return it

    def _parts(self) -> Iterator[Iterator[Any]]:
        replay = self._replay
        while True:
            try:
                item = replay.pull()
            except StopIteration:
                return
            replay.forget_before(replay.seq - 1)
            yield self._expand(item)

    def live_state(self) -> dict:
        item = self._replay.seq
        return {"item": item, "offset": position_of(self._part, self._part_len),
                "ckpt": self._replay.checkpoint(max(item - 1, 0))}

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        restore_source(self.inputs[0], state and state["ckpt"])

    def user_functions(self) -> list[Callable[..., Any]]:
        fn = self.params.get("fn")
        return [fn] if fn is not None else []


class UnbatchNode(FlatMapNode):
    """Flattens batches back into elements (flatmap with no function)."""

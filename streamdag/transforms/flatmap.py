"""flatmap and unbatch: one input element becomes many output elements."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from itertools import chain
from typing import Any

from ..runtime.attribution import framed
from ..runtime.counting import Tally, position_of
from ..runtime.node import ResumableNode
from ..runtime.replay import Replayer, restore_source

REPLAY_EVERY = 32


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
        self._replay = replay = Replayer(self.inputs[0], self.replay_every())
        self._pulls.follow(replay.pulled)
        self._part: Any = iter(())
        self._part_len = 0
        restored = self.take_restored()
        if restored is None:
            replay.start()
            return chain.from_iterable(self._parts())
        replay.start(restored["ckpt"])
        item = restored["item"]
        if item == 0:
            return chain.from_iterable(self._parts())
        replay.skip_to(self.part_start(item), self.label)
        current = self._expand(self.replay_part(item))
        current.__setstate__(restored["offset"])
        return chain(current, chain.from_iterable(self._parts()))

    def replay_every(self) -> int:
        return REPLAY_EVERY

    def part_start(self, item: int) -> int:
        """The number of the first input element of the part that ends at ``item``."""
        return item - 1

    def replay_part(self, item: int) -> Any:
        """The input of the part that ends at ``item``, replayed."""
        return self._replay.replay(item, self.label)

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
        return {
            "item": item,
            "offset": position_of(self._part, self._part_len),
            "ckpt": self._replay.checkpoint(self.part_start(item) if item else 0),
        }

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        restore_source(self.inputs[0], state and state["ckpt"])

    def user_functions(self) -> list[Callable[..., Any]]:
        fn = self.params.get("fn")
        return [fn] if fn is not None else []


class UnbatchNode(FlatMapNode):
    """Flattens batches back into elements: a flatmap whose function opens
    ``unbatch_level`` levels of lists (-1: every level). As in torchdata only
    a list is a batch: a tuple, dict or string is an element, and one met
    where a batch is expected is an error (IndexError, as torchdata)."""

    def setup(self) -> None:
        super().setup()
        self.fn = partial(_unbatch, self.params["unbatch_level"])


def _unbatch(level: int, element: Any) -> list[Any]:
    """The elements ``level`` list levels down in ``element`` (-1: all levels)."""
    if level == 1 and isinstance(element, list):
        return element
    out: list[Any] = []
    _dive(element, level, level, out)
    return out


def _dive(element: Any, left: int, level: int, out: list[Any]) -> None:
    if left == 0 or left < 0 and not isinstance(element, list):
        out.append(element)
    elif isinstance(element, list):
        for item in element:
            _dive(item, left - 1 if left > 0 else left, level, out)
    else:
        msg = (
            f"unbatch_level {level} exceeds the depth of the data: found "
            f"{type(element).__name__} {element!r:.80} where a batch was expected "
            "(only lists are batches; a tuple is an element)"
        )
        raise IndexError(msg)

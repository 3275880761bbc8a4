"""repeat(times): each element ``times`` times in a row (torchdata's Repeater)."""

from __future__ import annotations

from functools import partial
from typing import Any

from .flatmap import FlatMapNode


def _copies(item: Any, times: int) -> list[Any]:
    return [item] * times


class RepeatNode(FlatMapNode):
    """A flatmap whose expansion is the element repeated: resume replays the
    element being repeated and skips the copies already given."""

    def setup(self) -> None:
        super().setup()
        self.fn = partial(_copies, times=self.params["times"])

"""zip_longest: tuples until every input has ended (torchdata's ZipperLongest)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest
from typing import Any

from ..runtime.node import RuntimeNode


class ZipLongestNode(RuntimeNode):
    """Stateless: an input that has ended restores to its end and yields
    nothing more, so the inputs' states are the whole state."""

    def iterator(self) -> Iterator[tuple[Any, ...]]:
        its = [node.iterator() for node in self.inputs]
        return zip_longest(*its, fillvalue=self.params["fill_value"])

"""IterableWrapper: the source node over a Python iterable."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from itertools import islice
from operator import itemgetter
from typing import Any

from ..runtime.counting import position_of
from ..runtime.sequence import SequenceSource

_first = itemgetter(0)
_SEEKABLE = (list, tuple, range)


class IterableWrapperNode(SequenceSource):
    """Lists, tuples and ranges resume in O(1); any other iterable must be
    re-iterable and deterministic, and resumes by skipping what was read."""

    def iterator(self) -> Iterator[Any]:
        source = self.params["iterable"]
        if isinstance(source, _SEEKABLE):
            return self.iterate_sequence(source)
        start, self._start = self._start, 0
        self._length = sys.maxsize
        self._it = counter = iter(range(start, sys.maxsize))
        self._out.follow(lambda: position_of(counter, sys.maxsize) - start)
        items = iter(source)
        if start:
            next(islice(items, start, start), None)
        return map(_first, zip(items, counter, strict=False))  # counts only items read

"""IterableWrapper: the source node over a Python iterable."""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Iterator
from itertools import islice
from operator import itemgetter
from typing import Any

from ..runtime.counting import position_of
from ..runtime.sequence import SequenceSource

_first = itemgetter(0)
_SEEKABLE = (list, tuple, range)
_ATOMS = frozenset((int, float, str, bytes, bool, type(None)))


class IterableWrapperNode(SequenceSource):
    """Lists, tuples and ranges resume in O(1); any other iterable must be
    re-iterable and deterministic, and resumes by skipping what was read."""

    def iterator(self) -> Iterator[Any]:
        source = self.params["iterable"]
        if self.params["deepcopy"] and _mutable(source):
            source = _copy(source, self.spec.label)
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


def _mutable(source: Any) -> bool:
    """Whether a consumer could change ``source`` by changing an element (so
    ``deepcopy`` copies it each epoch, as torchdata does): ranges, strings and
    lists or tuples of numbers and strings (file paths) are left as they are,
    so the common sources cost no copy."""
    if isinstance(source, (range, str, bytes)):
        return False
    return not isinstance(source, _SEEKABLE) or any(type(x) not in _ATOMS for x in source)


def _copy(source: Any, label: str) -> Any:
    """A deep copy of ``source``, or ``source`` with a warning where it cannot
    be copied (as torchdata: its elements may then change between epochs)."""
    try:
        return copy.deepcopy(source)
    except TypeError as exc:
        warnings.warn(
            f"{label}: its iterable cannot be deep-copied ({exc}); changes made to its "
            "elements in place will show in the next epoch",
            stacklevel=2,
        )
        return source

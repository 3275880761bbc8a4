"""Positions read from C iterators: what resume states and counts rest on,
on every supported Python (3.12 changed what a range iterator reduces to)."""

from __future__ import annotations

import pytest

from streamdag.runtime.counting import position_of


@pytest.mark.parametrize("items", [[5, 6, 7, 8], (5, 6, 7, 8), range(4), range(3, 20, 5)])
@pytest.mark.parametrize("taken", [0, 1, 3, 4])
def test_position_of_counts_what_the_iterator_yielded(items, taken):
    it = iter(items)
    for _ in range(taken):
        next(it)
    assert position_of(it, len(items)) == taken
    list(it)
    assert position_of(it, len(items)) == len(items)


def test_a_position_restores_the_iterator():
    it = iter(range(3, 20, 5))
    next(it)
    again = iter(range(3, 20, 5))
    again.__setstate__(position_of(it, 4))
    assert list(again) == list(it) == [8, 13, 18]

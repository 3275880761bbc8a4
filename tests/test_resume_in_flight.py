"""Exact resume for loops that take elements ahead of the one they train on
(``DataLoader2(..., in_flight=k)`` / ``state_dict(in_flight=k)``): the state
describes the stream after the element the loop is on."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import pytest

import streamdag as sd
from streamdag.errors import ResumeError
from streamdag.testing.loaders import SERVICES, ServiceFactory, loader, run_epochs, saved

END = object()


def pipe() -> sd.DataPipe:
    return sd.IterableWrapper(range(40)).shuffle(buffer_size=8).sharding_filter().batch(3)


def prefetching(it: Iterator[Any]) -> Iterator[Any]:
    """A training loop's fetcher: it takes the next element before handing
    out the current one (Lightning's does the same)."""
    ahead = next(it, END)
    while ahead is not END:
        current, ahead = ahead, next(it, END)
        yield current


def trained_until(
    dl: sd.DataLoader2, stops: list[int], in_flight: int | None = 1
) -> tuple[list[Any], dict[int, dict]]:
    """One epoch through ``prefetching``; the state after each step in ``stops``."""
    trained, states = [], {}
    for batch in prefetching(iter(dl)):
        trained.append(batch)
        if len(trained) in stops:
            states[len(trained)] = saved(dl.state_dict(in_flight))
    return trained, states


def resumed(state: dict, service: ServiceFactory | None, epochs: int = 2) -> list[list[Any]]:
    """The rest of the epoch of ``state`` and the epochs after, in a new loader."""
    with loader(pipe(), 3, service) as dl:
        dl.load_state_dict(state)
        return [list(dl) for _ in range(epochs)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where", ["state_dict", "loader"])
@pytest.mark.parametrize("service", SERVICES)
def test_prefetching_loop_resumes_at_the_first_element_it_did_not_train_on(
    service: str, where: str
) -> None:
    """States taken at several steps (twice at one, and after the last batch,
    when the look-ahead ended the epoch) resume at the next untrained batch,
    with ``in_flight`` given to ``state_dict()`` or to the loader."""
    factory = SERVICES[service]
    epochs = run_epochs(pipe(), 2, 3, factory)
    stops = [1, 4, 5, 9, len(epochs[0])]
    dl = loader(pipe(), 3, factory)
    if where == "loader":
        dl = sd.DataLoader2(pipe(), factory() if factory else None, seed=3, in_flight=1)
    with dl:
        trained, states = trained_until(dl, stops, None if where == "loader" else 1)
        again = saved(dl.state_dict(in_flight=1))
    assert trained == epochs[0]
    assert again == states[len(trained)]
    assert states[len(trained)]["done"] and states[len(trained)]["replay"] == 0
    # a loader with in_flight keeps a graph state from the first element on; a
    # worker service says each virtual worker's position back (nothing to replay)
    assert states[1]["replay"] == (0 if where == "loader" or factory else 1)
    for stop in stops[:-1]:
        assert resumed(states[stop], factory) == [epochs[0][stop:], epochs[1]]
    assert resumed(states[len(trained)], factory, 1) == [epochs[1]]


def test_state_replays_from_the_previous_state_dict_call() -> None:
    """Given to ``state_dict()`` alone, ``in_flight`` makes a state point at
    the graph state taken by the previous call (else the epoch's start); a
    loader resumed from it resumes exactly again."""
    epochs = run_epochs(pipe(), 1, 3)
    with loader(pipe(), 3, None) as dl:
        states = trained_until(dl, [2, 5])[1]
    assert (states[2]["yielded"], states[2]["replay"]) == (2, 2)  # from the epoch's start
    assert (states[5]["yielded"], states[5]["replay"]) == (5, 2)  # from the call at 3 taken
    with loader(pipe(), 3, None) as first:
        first.load_state_dict(states[5])
        trained = list(islice(prefetching(iter(first)), 3))
        again = saved(first.state_dict(in_flight=1))
    assert trained == epochs[0][5:8]
    assert (again["yielded"], again["replay"]) == (8, 5)  # from the loaded graph state, at 3
    assert resumed(again, None, 1) == [epochs[0][8:]]


def test_version_1_states_still_load() -> None:
    """States saved before ``replay`` existed resume as before."""
    epochs = run_epochs(pipe(), 1, 3)
    with loader(pipe(), 3, None) as dl:
        it = iter(dl)
        head = [next(it) for _ in range(5)]
        state = saved(dl.state_dict())
    del state["replay"]
    state["version"] = 1
    assert head + resumed(state, None, 1)[0] == epochs[0]


def test_in_flight_errors_name_the_problem() -> None:
    """A negative count, more in flight than taken, and a replay past the
    epoch's end (the data changed) are errors, not a silent skip."""
    with pytest.raises(ValueError, match="in_flight must be an int >= 0, got -1"):
        sd.DataLoader2(pipe(), in_flight=-1)
    with loader(pipe(), 3, None) as dl:
        next(iter(dl))
        with pytest.raises(
            ValueError,
            match=r"in_flight=2\): the earliest .* after element 0 of epoch 0, and the loop took 1 since",
        ):
            dl.state_dict(in_flight=2)
        state = saved(dl.state_dict(in_flight=1))
    state["replay"] = state["yielded"] = 100
    with loader(pipe(), 3, None) as dl, pytest.raises(ResumeError, match="replays 100 elements"):
        dl.load_state_dict(state)
        iter(dl)

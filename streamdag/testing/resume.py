"""Exact resume, checked in torchdata's four phases: a stop at several points
of an epoch (prefix + the resumed rest = the epoch), the epoch after a resume
(= that epoch of an uninterrupted loader), the initial state reloaded (into a
fresh loader and into one that is part-way through), and a state taken at the
end of an epoch (the resumed epoch is empty or already over, and the next one
starts cleanly)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..datapipes.datapipe import DataPipe
from .loaders import ServiceFactory, loader, plain, run_epochs, saved, take


def assert_resumes(
    pipe: DataPipe[Any],
    stops: Iterable[int] | None = None,
    *,
    seed: int = 0,
    reading_service: ServiceFactory | None = None,
) -> list[Any]:
    """Run the four phases for ``pipe`` under ``reading_service`` (a factory;
    None: in process). ``stops`` are the element counts after which a state is
    taken (default: 0, 1, a third, half, all but one, all). Returns the
    uninterrupted first epoch."""
    full, following = run_epochs(pipe, 2, seed, reading_service)
    expected, expected_next = plain(full), plain(following)
    count = len(full)
    points = sorted(
        {0, 1, count // 3, count // 2, max(count - 1, 0), count} if stops is None else set(stops)
    )
    if points and not 0 <= points[0] <= points[-1] <= count:
        raise ValueError(f"stops must be within the epoch's {count} elements, got {points}")

    def resume_from(state: dict[str, Any], what: str, rest: list[Any]) -> None:
        with loader(pipe, seed, reading_service) as second:
            second.load_state_dict(saved(state))
            got = plain(list(second))
            assert got == rest, (
                f"{what}: the resumed epoch differs ({len(got)} elements, {len(rest)} expected)"
            )
            got = plain(list(second))
            assert got == expected_next, f"{what}: the epoch after the resumed one differs"

    states = {}
    with loader(pipe, seed, reading_service) as first:  # one loader saves at every stop
        it, head = iter(first), []
        for stop in points:
            head += plain(take(it, stop - len(head)))
            assert head == expected[:stop], f"the first {stop} elements differ from the epoch"
            states[stop] = first.state_dict()
        assert head + plain(list(it)) == expected, "saving states changed the epoch"
    for stop, state in states.items():
        where = "end of the epoch" if stop >= count else f"after {stop} of {count}"
        resume_from(state, f"state taken {where}", expected[stop:])

    with loader(pipe, seed, reading_service) as first:
        initial = first.state_dict()
        take(iter(first), count // 2)
        first.load_state_dict(saved(initial))
        assert plain(list(first)) == expected, (
            "the initial state loaded part-way through an epoch does not restart it"
        )
    resume_from(initial, "initial state", expected)

    with loader(pipe, seed, reading_service) as first:
        list(first)
        finished = first.state_dict()
    with loader(pipe, seed, reading_service) as second:
        second.load_state_dict(saved(finished))
        assert plain(list(second)) == expected_next, (
            "state of a finished epoch: the next iter() is not the next epoch"
        )
    return full


def assert_deterministic(
    pipe: DataPipe[Any],
    *,
    seed: int = 0,
    epochs: int = 2,
    reading_service: ServiceFactory | None = None,
) -> list[list[Any]]:
    """Two loaders with the same seed yield the same epochs; the pipe yields
    something. Returns the epochs."""
    first = run_epochs(pipe, epochs, seed, reading_service)
    assert any(first), "the pipe yielded nothing: give the checks some data"
    again = run_epochs(pipe, epochs, seed, reading_service)
    assert plain(again) == plain(first), "same seed, different elements"
    return first

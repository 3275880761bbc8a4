"""Checks every node's tests share: exact resume at several midpoints and
determinism per (seed, epoch).

``reading_service`` may be a service or a zero-argument factory of one: each
loader the checks create then gets a fresh service (a service belongs to one
loader, and the first loader's shutdown stops its workers)."""

from __future__ import annotations

from itertools import islice
from typing import Any

import msgpack

import streamdag as sd


def _loader(dp: sd.DataPipe, seed: int, loader_kwargs: dict[str, Any]) -> sd.DataLoader2:
    kwargs = dict(loader_kwargs)
    service = kwargs.get("reading_service")
    if service is not None and not isinstance(service, sd.ReadingService):
        kwargs["reading_service"] = service()
    return sd.DataLoader2(dp, seed=seed, **kwargs)


def run_epoch(dp: sd.DataPipe, seed: int = 0, epoch: int = 0, **loader_kwargs: Any) -> list:
    with _loader(dp, seed, loader_kwargs) as loader:
        loader.set_epoch(epoch)
        return list(loader)


def resumed_epoch(dp: sd.DataPipe, stop: int, seed: int = 0, epoch: int = 0,
                  **loader_kwargs: Any) -> tuple[list, list]:
    """Take ``stop`` elements, save the state through msgpack (as a user would
    write it to disk), load it into a fresh loader and take the rest."""
    with _loader(dp, seed, loader_kwargs) as first:
        first.set_epoch(epoch)
        prefix = list(islice(iter(first), stop))
        blob = msgpack.packb(first.state_dict())
    with _loader(dp, seed, loader_kwargs) as second:
        second.load_state_dict(msgpack.unpackb(blob, strict_map_key=False))
        rest = list(second)
    return prefix, rest


def assert_resumes(dp: sd.DataPipe, stops: list[int] | None = None, seed: int = 0,
                   **loader_kwargs: Any) -> list:
    """prefix + resumed suffix == an uninterrupted epoch, for every stop point."""
    full = run_epoch(dp, seed, **loader_kwargs)
    for stop in stops if stops is not None else sorted({0, 1, len(full) // 2, len(full) - 1,
                                                         len(full)}):
        prefix, rest = resumed_epoch(dp, stop, seed, **loader_kwargs)
        assert prefix == full[:stop], f"prefix differs at stop={stop}"
        assert rest == full[stop:], f"resume at {stop} of {len(full)} differs"
    return full

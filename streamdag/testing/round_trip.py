"""A saved and loaded pipeline is the same pipeline: the document survives
the trip in both encodings, and the loaded graph yields the same elements."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..datapipes.datapipe import DataPipe
from ..graph_io.codec import load_bytes
from ..graph_io.files import dumps, loads_node
from .loaders import ServiceFactory, plain, run_epochs


def assert_round_trips(
    pipe: DataPipe[Any],
    trusted_modules: Iterable[str] = (),
    *,
    seed: int = 0,
    epochs: int = 2,
    reading_service: ServiceFactory | None = None,
) -> DataPipe[Any]:
    """Save ``pipe`` as msgpack and as JSON, load each back and assert that
    the document is unchanged by the trip and that the loaded pipeline yields
    exactly the original's elements for ``seed`` over ``epochs`` epochs.
    Returns the pipe loaded from msgpack."""
    expected = plain(run_epochs(pipe, epochs, seed, reading_service))
    loaded = []
    for fmt in ("msgpack", "json"):
        data = dumps(pipe, fmt)
        again = DataPipe(loads_node(data, tuple(trusted_modules), source=f"<{fmt}>"))
        assert load_bytes(dumps(again, fmt)) == load_bytes(data), f"{fmt}: document changed"
        got = plain(run_epochs(again, epochs, seed, reading_service))
        assert got == expected, f"{fmt}: loaded pipeline yields {got!r:.300}, not {expected!r:.300}"
        loaded.append(again)
    return loaded[0]

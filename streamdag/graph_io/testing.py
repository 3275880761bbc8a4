"""A checker every node's tests (and third-party ops and readers) can run:
the pipeline survives a save/load round trip in both encodings."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..datapipes.datapipe import DataPipe
from ..reading_service.dataloader2 import DataLoader2
from .codec import load_bytes
from .files import dumps, loads_node


def assert_round_trips(
    pipe: DataPipe[Any],
    trusted_modules: Iterable[str] = (),
    *,
    seed: int = 0,
    epochs: int = 2,
    reading_service: Callable[[], Any] | None = None,
) -> DataPipe[Any]:
    """Save ``pipe`` as msgpack and as JSON, load each back and assert that
    the document is unchanged by the trip and that the loaded pipeline yields
    exactly the original's elements for ``seed`` over ``epochs`` epochs.
    ``reading_service`` makes a fresh service per loader. Returns the pipe
    loaded from msgpack."""
    expected = _epochs(pipe, seed, epochs, reading_service)
    loaded = []
    for fmt in ("msgpack", "json"):
        data = dumps(pipe, fmt)
        again = DataPipe(loads_node(data, trusted_modules, source=f"<{fmt}>"))
        assert load_bytes(dumps(again, fmt)) == load_bytes(data), f"{fmt}: document changed"
        got = _epochs(again, seed, epochs, reading_service)
        assert got == expected, f"{fmt}: loaded pipeline yields {got!r:.300}, not {expected!r:.300}"
        loaded.append(again)
    return loaded[0]


def _epochs(
    pipe: DataPipe[Any], seed: int, epochs: int, reading_service: Callable[[], Any] | None
) -> list[list[Any]]:
    service = reading_service() if reading_service else None
    with DataLoader2(pipe, reading_service=service, seed=seed) as loader:
        return [[_plain(item) for item in loader] for _ in range(epochs)]


def _plain(value: Any) -> Any:
    """Comparable with ==: tensors and arrays become (type, dtype, nested lists)."""
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        return (type(value).__name__, str(value.dtype), value.tolist())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

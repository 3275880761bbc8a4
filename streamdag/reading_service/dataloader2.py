"""DataLoader2: epochs, seeds and resumable state over a reading service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from ..datapipes.datapipe import DataPipe
from ..errors import ResumeError
from .base import ReadingService
from .in_process import InProcessReadingService
from .seeds import derive_seed, draw_base_seed

T = TypeVar("T")
STATE_FORMAT = "streamdag-loader-state"
STATE_VERSION = 1


class DataLoader2(Generic[T]):
    """Iterate ``datapipe`` one epoch per ``iter()``.

    Each epoch has one base seed: ``derive(seed, epoch)`` when ``seed`` is
    given (identical (seed, epoch) gives an identical stream), else a fresh
    random one. ``state_dict()`` between two elements and ``load_state_dict()``
    in a new loader over the same pipeline resume exactly."""

    def __init__(self, datapipe: DataPipe[T], reading_service: ReadingService | None = None,
                 seed: int | None = None) -> None:
        if not isinstance(datapipe, DataPipe):
            raise TypeError(f"DataLoader2 needs a DataPipe, got {datapipe!r}")
        self.datapipe = datapipe
        self.reading_service = reading_service or InProcessReadingService()
        self.reading_service.initialize(datapipe.node)
        self._seed = seed
        self._next_epoch = 0
        self._pending: dict | None = None
        self._current: dict | None = None  # epoch, base seed, yielded, done
        self._closed = False

    def seed(self, seed: int) -> None:
        """Use ``seed`` for the following epochs."""
        self._seed = seed

    def set_epoch(self, epoch: int) -> None:
        """The next ``iter()`` runs epoch ``epoch``."""
        self._next_epoch = epoch

    def __iter__(self) -> Iterator[T]:
        if self._closed:
            raise RuntimeError("DataLoader2 was shut down")
        pending, self._pending = self._pending, None
        if pending is not None and not pending["done"]:
            epoch, base_seed, yielded = pending["epoch"], pending["seed"], pending["yielded"]
            graph_state = pending["graph"]
        else:
            epoch, base_seed, yielded, graph_state = self._next_epoch, None, 0, None
            if pending is not None:
                epoch = pending["epoch"] + 1
        if base_seed is None:
            base_seed = (derive_seed(self._seed, epoch) if self._seed is not None
                         else draw_base_seed())
            base_seed = self.reading_service.agree_seed(base_seed)
        self._next_epoch = epoch + 1
        current = {"epoch": epoch, "seed": base_seed, "yielded": yielded, "done": False,
                   "graph": graph_state}
        self._current = current
        return self._run(self.reading_service.epoch(base_seed, epoch, graph_state), current)

    def _run(self, it: Iterator[T], current: dict) -> Iterator[T]:
        for item in it:
            current["yielded"] += 1
            current["graph"] = _LIVE
            yield item
        if self._current is current:
            current["done"] = True

    def state_dict(self) -> dict[str, Any]:
        """Plain data (msgpack/JSON-serializable): epoch, base seed, elements
        yielded and the graph's positions and RNG states."""
        current = self._current
        if current is None:
            return {"format": STATE_FORMAT, "version": STATE_VERSION, "epoch": self._next_epoch - 1,
                    "seed": None, "yielded": 0, "done": True, "graph": None}
        graph = current["graph"]
        if graph is _LIVE:
            graph = None if current["done"] else self.reading_service.state()
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "epoch": current["epoch"],
                "seed": current["seed"], "yielded": current["yielded"],
                "done": current["done"], "graph": graph}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The next ``iter()`` continues from ``state``."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ResumeError(f"not a DataLoader2 state dict: {str(state)[:200]}")
        if state.get("version") != STATE_VERSION:
            raise ResumeError(f"DataLoader2 state version {state.get('version')} is not "
                              f"supported (this streamdag reads version {STATE_VERSION})")
        self._pending = dict(state)
        self._current = None

    def shutdown(self) -> None:
        """Stop workers and threads. Idempotent."""
        if not self._closed:
            self._closed = True
            self.reading_service.shutdown()

    def __enter__(self) -> DataLoader2[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


_LIVE = object()  # the graph state must be read from the running service

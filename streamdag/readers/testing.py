"""A conformance suite for readers, built-in or third-party: mix
``ReaderConformance`` into a pytest class, give it ``make_pipe`` and the
reader is checked for determinism, exact resume (state through msgpack, as
a user saves it), a save/load round trip of the graph, and, if it declares
its output sharded, that two workers split it without loss or overlap::

    class TestSqliteRows(ReaderConformance):
        trusted_modules = ("mypkg",)
        sharded = True

        def make_pipe(self, tmp_path):
            return sqlite_rows(path=make_db(tmp_path), table="items")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

import msgpack

from ..datapipes.datapipe import DataPipe
from ..datapipes.runtime import WorkerContext
from ..graph_io.testing import _plain, assert_round_trips
from ..reading_service.dataloader2 import DataLoader2
from ..reading_service.in_process import InProcessReadingService


def run_epoch(pipe: DataPipe[Any], seed: int = 0, epoch: int = 0,
              service: Callable[[], Any] | None = None) -> list[Any]:
    with DataLoader2(pipe, reading_service=service() if service else None, seed=seed) as loader:
        loader.set_epoch(epoch)
        return [_plain(item) for item in loader]


def assert_resumes(pipe: DataPipe[Any], stops: Iterable[int] | None = None, seed: int = 0,
                   service: Callable[[], Any] | None = None) -> list[Any]:
    """For each stop: the first ``stop`` elements, the state saved through
    msgpack and loaded into a fresh loader, and the rest, equal the
    uninterrupted epoch. Returns that epoch."""
    full = run_epoch(pipe, seed, service=service)
    points = sorted({0, 1, len(full) // 3, len(full) // 2, len(full) - 1, len(full)}
                    if stops is None else set(stops))
    for stop in points:
        with DataLoader2(pipe, reading_service=service() if service else None,
                         seed=seed) as first:
            head = [_plain(item) for item in islice(iter(first), stop)]
            blob = msgpack.packb(first.state_dict())
        with DataLoader2(pipe, reading_service=service() if service else None,
                         seed=seed) as second:
            second.load_state_dict(msgpack.unpackb(blob, strict_map_key=False))
            rest = [_plain(item) for item in second]
        assert head == full[:stop], f"the first {stop} elements differ from the full epoch"
        assert rest == full[stop:], f"resumed after {stop} of {len(full)}: the rest differs"
    return full


class ReaderConformance:
    """Checks every reader should pass. Subclasses define ``make_pipe(tmp_path)``."""

    trusted_modules: tuple[str, ...] = ()
    sharded = False  # True: two workers together yield each element exactly once
    resume_stops: tuple[int, ...] | None = None

    def make_pipe(self, tmp_path: Any) -> DataPipe[Any]:
        raise NotImplementedError

    def test_reader_is_deterministic(self, tmp_path: Any) -> None:
        pipe = self.make_pipe(tmp_path)
        first = run_epoch(pipe, seed=5, epoch=1)
        assert first, "the pipe yielded nothing: give the checks some data"
        assert run_epoch(pipe, seed=5, epoch=1) == first

    def test_reader_resumes_exactly(self, tmp_path: Any) -> None:
        assert_resumes(self.make_pipe(tmp_path), self.resume_stops)

    def test_reader_graph_round_trips(self, tmp_path: Any) -> None:
        assert_round_trips(self.make_pipe(tmp_path), self.trusted_modules, epochs=1)

    def test_reader_workers_split_the_data(self, tmp_path: Any) -> None:
        if not self.sharded:
            return
        pipe = self.make_pipe(tmp_path)
        whole = run_epoch(pipe)
        parts: list[Any] = []
        for worker in range(2):
            context = WorkerContext(worker_id=worker, num_workers=2)
            parts += run_epoch(pipe, service=lambda c=context: InProcessReadingService(c))
        key = repr
        assert sorted(parts, key=key) == sorted(whole, key=key)

"""Conformance suites to mix into a pytest class: ``OpConformance`` for any
op (built-in or third-party), ``ReaderConformance`` for readers::

    class TestSqliteRows(ReaderConformance):
        trusted_modules = ("mypkg",)
        sharded = True

        def make_pipe(self, tmp_path):
            return sqlite_rows(path=make_db(tmp_path), table="items")
"""

from __future__ import annotations

from typing import Any

from ..datapipes.datapipe import DataPipe
from ..reading_service.in_process import InProcessReadingService
from ..runtime.node import WorkerContext
from .loaders import SERVICES, plain, run_epoch
from .resume import assert_deterministic, assert_resumes
from .round_trip import assert_round_trips


class OpConformance:
    """Checks every op should pass: determinism, the four resume phases under
    every built-in service, a save/load round trip. Subclasses define
    ``make_pipe(tmp_path)``, a small pipeline that uses the op; its functions
    must be importable (module level) for the worker services and the trip."""

    trusted_modules: tuple[str, ...] = ()
    resume_stops: tuple[int, ...] | None = None

    def make_pipe(self, tmp_path: Any) -> DataPipe[Any]:
        raise NotImplementedError

    def test_op_is_deterministic(self, tmp_path: Any) -> None:
        assert_deterministic(self.make_pipe(tmp_path), seed=5)

    def test_op_resumes_in_process(self, tmp_path: Any) -> None:
        self._resumes(tmp_path, "in_process")

    def test_op_resumes_in_threads(self, tmp_path: Any) -> None:
        self._resumes(tmp_path, "threads")

    def test_op_resumes_in_processes(self, tmp_path: Any) -> None:
        self._resumes(tmp_path, "processes")

    def _resumes(self, tmp_path: Any, service: str) -> None:
        assert_resumes(
            self.make_pipe(tmp_path), self.resume_stops, reading_service=SERVICES[service]
        )

    def test_op_graph_round_trips(self, tmp_path: Any) -> None:
        assert_round_trips(self.make_pipe(tmp_path), self.trusted_modules, epochs=1)


class ReaderConformance(OpConformance):
    """``OpConformance`` plus, for a reader that declares its output sharded,
    that two workers together yield every element exactly once."""

    sharded = False

    def test_reader_workers_split_the_data(self, tmp_path: Any) -> None:
        if not self.sharded:
            import pytest

            pytest.skip("the reader does not shard its output")
        pipe = self.make_pipe(tmp_path)
        whole = plain(run_epoch(pipe))
        parts: list[Any] = []
        for worker in range(2):
            context = WorkerContext(worker_id=worker, num_workers=2)
            parts += plain(
                run_epoch(pipe, reading_service=lambda c=context: InProcessReadingService(worker=c))
            )
        assert sorted(parts, key=repr) == sorted(whole, key=repr)

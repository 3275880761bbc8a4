"""Errors and warnings of the worker services: what went wrong, in which
worker, and what to do about it."""

from __future__ import annotations

from typing import Any

from ..errors import NodeError, StreamdagError


class WorkerError(NodeError):
    """A node raised inside a worker (process or thread). The message names
    the worker, the node and carries the worker's traceback as text
    (``.traceback``); ``__cause__`` is the original exception when it could be
    sent back."""

    def __init__(
        self,
        message: str,
        *,
        op: str = "",
        name: str | None = None,
        node_id: str = "",
        source: str | None = None,
        worker_id: int = 0,
        rank: int = 0,
        traceback: str = "",
    ) -> None:
        super().__init__(message, op=op, name=name, node_id=node_id, source=source)
        self.worker_id = worker_id
        self.rank = rank
        self.traceback = traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_worker_error,
            (
                str(self),
                self.op,
                self.name,
                self.node_id,
                self.worker_id,
                self.rank,
                self.traceback,
                self.source,
            ),
        )


def _rebuild_worker_error(
    message: str,
    op: str,
    name: str | None,
    node_id: str,
    worker_id: int,
    rank: int,
    traceback: str,
    source: str | None = None,
) -> WorkerError:
    return WorkerError(
        message,
        op=op,
        name=name,
        node_id=node_id,
        source=source,
        worker_id=worker_id,
        rank=rank,
        traceback=traceback,
    )


class WorkerDiedError(StreamdagError, RuntimeError):
    """A worker process exited while the epoch ran (killed by a signal, such
    as the OOM killer's SIGKILL, or crashed in native code)."""

    def __init__(
        self,
        message: str,
        *,
        worker_id: int = 0,
        pid: int | None = None,
        exitcode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.worker_id = worker_id
        self.pid = pid
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_died, (str(self), self.worker_id, self.pid, self.exitcode))


def _rebuild_died(
    message: str, worker_id: int, pid: int | None, exitcode: int | None
) -> WorkerDiedError:
    return WorkerDiedError(message, worker_id=worker_id, pid=pid, exitcode=exitcode)


class WorkerTimeoutError(StreamdagError, TimeoutError):
    """No element arrived from the workers within the service's ``timeout``."""


class UnevenShardsWarning(UserWarning):
    """``DistributedReadingService(even_batches=True)`` dropped elements of a
    rank whose shard was longer than the shortest rank's, to keep every
    rank's batch count equal; the message says how many."""

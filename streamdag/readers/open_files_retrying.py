"""The ``open_files_retrying`` node: ``open_files`` whose URL streams are
``RetryingReader``s (``dp.open_files(retry=True)``), with shard read-ahead:
the next ``shards_ahead`` files are opened while the current one is parsed."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from ..core.registry import register_op
from ..core.streams import close_quietly
from ..errors import ParamError
from .file_lister import lister_options
from .open_files import PARAMS, OpenFilesNode
from .retrying import (
    DEFAULT_CHUNK,
    DEFAULT_FIRST_CHUNK,
    DEFAULT_READ_AHEAD,
    RetryingReader,
    RetryPolicy,
    RetryStats,
    open_retrying,
)

__all__ = ["RetryingOpenFilesNode", "open_files_retrying"]

_NO_STATE = object()
DEFAULT_SHARDS_AHEAD = 1
RETRY_PARAMS = ("chunk_size", "first_chunk", "read_ahead", "shards_ahead", "max_retries",
                "backoff_base", "backoff_max")


def _check_retry_params(op: str, params: Mapping[str, Any]) -> None:
    for key in ("chunk_size", "first_chunk", "read_ahead", "max_retries", "shards_ahead"):
        value = params.get(key)
        low = 1 if key in ("chunk_size", "first_chunk") else 0
        if value is not None and (type(value) is not int or value < low):
            raise ParamError(f"{op}: {key} must be an int >= {low}, got {value!r}")
    for key in ("backoff_base", "backoff_max"):
        value = params.get(key)
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise ParamError(f"{op}: {key} must be a number >= 0, got {value!r}")


@register_op("open_files_retrying", params=PARAMS + RETRY_PARAMS)
class RetryingOpenFilesNode(OpenFilesNode):
    """``open_files`` whose URL streams are ``RetryingReader``s. Stateless
    like ``open_files`` (a resume re-opens and the reader seeks, which is a
    ranged read here). ``stats()`` adds the ``RetryStats`` counters summed
    over every stream this node opened in this process, across epochs."""

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        OpenFilesNode.validate(params)
        _check_retry_params("open_files_retrying", params)

    def setup(self) -> None:
        super().setup()
        p = self.params
        self.retry_stats = RetryStats()
        policy = RetryPolicy(
            max_retries=p.get("max_retries", RetryPolicy.max_retries),
            backoff_base=p.get("backoff_base", RetryPolicy.backoff_base),
            backoff_max=p.get("backoff_max", RetryPolicy.backoff_max))
        self._open = partial(open_retrying, mode=p.get("mode", "rb"), encoding=p.get("encoding"),
                             storage_options=p.get("storage_options"),
                             chunk_size=p.get("chunk_size", DEFAULT_CHUNK),
                             first_chunk=p.get("first_chunk", DEFAULT_FIRST_CHUNK),
                             read_ahead=p.get("read_ahead", DEFAULT_READ_AHEAD),
                             policy=policy, stats=self.retry_stats)
        self.reset()

    def stats(self) -> dict[str, int]:
        return {**super().stats(), **self.retry_stats.as_dict()}

    # -- shard read-ahead: open the next ``shards_ahead`` files early ----------

    def reset(self) -> None:
        queue = getattr(self, "_queue", None)
        while queue:  # files opened ahead in an epoch torn down early
            close_quietly(queue.popleft()[1])
        self._snapshot: Any = _NO_STATE
        self._queue: deque[tuple[Any, Any, BaseException | None, Any]] = deque()

    def iterator(self) -> Iterator[tuple[str, Any]]:
        """Keeping ``shards_ahead`` files opened beyond the one being parsed
        overlaps shard *i+1*'s first bytes with shard *i*'s parsing. A file
        opened ahead starts downloading once the file before it has been
        downloaded (the epoch's second: once the parser reached the first
        one's last range), so it never competes with the ranges the parser
        needs first. Each queued file carries the input's state right after
        it was pulled: ``state()`` is that of the last file passed on, so
        resume stays exact. A file is passed on once its first response
        arrived, so a missing or denied file meets ``on_error`` here, not in
        the parser."""
        ahead = self.params.get("shards_ahead", DEFAULT_SHARDS_AHEAD)
        src = self.inputs[0]
        items = src.iterator()
        queue = self._queue
        self._snapshot = src.state()

        # A file opened while none is parsed (the epoch's first, or any without
        # shards_ahead) starts with a small range, so parsing starts sooner; one
        # opened ahead has time: a full chunk, one request less.
        first_chunks = [self.params.get("first_chunk", DEFAULT_FIRST_CHUNK)]
        later = first_chunks[0] if not ahead else self.params.get("chunk_size", DEFAULT_CHUNK)

        epoch_first: list[RetryingReader | None] = []

        def pull() -> None:
            for path in items:
                state = src.state()
                first_chunk = first_chunks.pop() if first_chunks else later
                before = _retrying_reader(queue[-1][1]) if queue else None
                try:
                    path = os.fspath(path)
                    stream = self._open(path, first_chunk=first_chunk, start=before is None)
                    err = None
                except Exception as exc:  # deferred: raised when this file's turn comes
                    stream, err = None, exc
                reader = _retrying_reader(stream)
                if before is not None and reader is not None:
                    # the epoch's first file holds up the first batch: the
                    # next one waits until that one is nearly parsed
                    first = before is epoch_first[0]
                    (before.after_last_range if first else before.after_download)(reader.start)
                if not epoch_first:
                    epoch_first.append(reader)
                queue.append((path, stream, err, state))
                return

        for _ in range(ahead):
            pull()
        while True:
            pull()  # the queue holds the file to pass on and ``ahead`` more
            if not queue:
                return
            path, stream, err, state = queue.popleft()
            self._snapshot = state
            if err is None:
                err = _opened(stream)
            if err is not None:
                self.fail(err, repr(path))
                continue
            self._last = stream
            yield path, stream

    def state(self) -> Any:
        if getattr(self, "_snapshot", _NO_STATE) is _NO_STATE:
            return super().state()
        return self._snapshot

    def restore(self, state: Any) -> None:
        self.close()
        self._snapshot = _NO_STATE
        super().restore(state)

    def close(self) -> None:
        queue = getattr(self, "_queue", None)
        while queue:
            close_quietly(queue.popleft()[1])
        super().close()


def _retrying_reader(stream: Any) -> RetryingReader | None:
    reader = getattr(stream, "buffer", stream)  # text mode wraps the reader
    return reader if isinstance(reader, RetryingReader) else None


def _opened(stream: Any) -> BaseException | None:
    """Wait for a retrying stream's first response; the error it got, if any."""
    reader = _retrying_reader(stream)
    if reader is None:
        return None
    try:
        reader.wait_open()
    except Exception as exc:
        close_quietly(stream)
        return exc
    return None


def open_files_retrying(dp: Any, mode: str = "rb", *, encoding: str | None = None,
                        storage_options: Mapping[str, Any] | None = None,
                        chunk_size: int = DEFAULT_CHUNK, first_chunk: int = DEFAULT_FIRST_CHUNK,
                        read_ahead: int = DEFAULT_READ_AHEAD,
                        shards_ahead: int = DEFAULT_SHARDS_AHEAD, max_retries: int = 5,
                        backoff_base: float = 0.1, backoff_max: float = 5.0,
                        on_error: str = "raise", name: str | None = None) -> Any:
    """``dp.open_files()`` with retrying, read-ahead streams (until the lead
    folds it into ``open_files``). ``storage_options`` default to those of a
    ``FileLister`` upstream through single-input nodes (as ``open_files``)."""
    if storage_options is None:
        storage_options = lister_options(dp.node)
    params = {"mode": mode, "encoding": encoding,
              "storage_options": dict(storage_options) if storage_options else None,
              "chunk_size": chunk_size, "first_chunk": first_chunk, "read_ahead": read_ahead,
              "shards_ahead": shards_ahead,
              "max_retries": max_retries, "backoff_base": backoff_base,
              "backoff_max": backoff_max, "on_error": on_error}
    return dp._then("open_files_retrying", params, name=name)


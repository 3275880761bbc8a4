"""The ``open_files_retrying`` node: ``open_files`` whose URL streams are
``RetryingReader``s (``dp.open_files(retry=True)``), with shard read-ahead:
the next ``shards_ahead`` files are opened while the current one is parsed."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from ..core.streams import close_quietly
from .open_files import OpenFilesNode
from .retry import RetryPolicy, RetryStats
from .retrying import RetryingReader, open_retrying

if TYPE_CHECKING:
    from ..runtime.node import RuntimeNode

__all__ = ["RetryingOpenFilesNode"]

_NO_STATE = object()


class RetryingOpenFilesNode(OpenFilesNode):
    """``open_files`` whose URL streams are ``RetryingReader``s. Stateless
    like ``open_files`` (a resume re-opens and the reader seeks, which is a
    ranged read here). ``stats()`` adds the ``RetryStats`` counters summed
    over every stream this node opened in this process, across epochs."""

    def setup(self) -> None:
        super().setup()
        p = self.params
        self.retry_stats = RetryStats()
        policy = RetryPolicy(
            max_retries=p["max_retries"],
            backoff_base=p["backoff_base"],
            backoff_max=p["backoff_max"],
        )
        self._open = partial(
            open_retrying,
            mode=p["mode"],
            encoding=p["encoding"],
            storage_options=p["storage_options"],
            chunk_size=p["chunk_size"],
            first_chunk=p["first_chunk"],
            read_ahead=p["read_ahead"],
            policy=policy,
            stats=self.retry_stats,
        )
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
        # the input's state is taken now, not at the first pull: a cycle()
        # reads this node's state before the first file of its next pass
        src = self.inputs[0]
        items = src.iterator()
        self._snapshot = src.state()
        return self._files(src, items)

    def _files(self, src: RuntimeNode, items: Iterator[Any]) -> Iterator[tuple[str, Any]]:
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
        ahead = self.params["shards_ahead"]
        queue = self._queue

        # A file opened while none is parsed (the epoch's first, or any without
        # shards_ahead) starts with a small range, so parsing starts sooner; one
        # opened ahead has time: a full chunk, one request less.
        first_chunks = [self.params["first_chunk"]]
        later = first_chunks[0] if not ahead else self.params["chunk_size"]

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

"""Retrying, read-ahead byte streams over any fsspec filesystem (S3, GCS, HTTP...).

``RetryingReader`` is a read-only, seekable buffered stream that fetches the
object in bounded chunks with ranged GETs, a few chunks ahead of the consumer
on background threads, so a tar parser works on chunk *k* while chunks
*k+1..k+n* download.

- Retries resume at the byte reached: a response cut mid-body keeps the bytes
  it delivered and the retry asks only for the rest of the range (S3, HTTP;
  other filesystems re-fetch the range). The consumer only ever gets bytes in
  order, so no byte is lost or duplicated, whatever fails and however often.
- One version per stream: the first response's ETag is sent as ``If-Match``
  with every later range (and checked in each response with the size), so an
  object replaced while it is read fails with ``ObjectChangedError`` naming
  the URL instead of splicing two versions.
- Permanent failures (404/NoSuchBucket -> ``FileNotFoundError``, 403 ->
  ``PermissionError``, other 4xx) fail at once with the URL in the message.

There is no HEAD: the first GET asks for ``first_chunk`` bytes (small, so
parsing starts early) and its ``Content-Range`` gives the size.

Memory per open stream: ``(read_ahead + 1) * chunk_size`` bytes while reading
forward (the chunk being consumed plus ``read_ahead`` in flight or waiting); a
seek outside them can add up to ``read_ahead`` fetches that finish unread.

Retries follow ``retry.py`` (the policy, its counters, the filesystem built
with the lower layers' retries off).
"""

from __future__ import annotations

import contextlib
import errno
import io
import random
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from ..core.ops.readers import RETRY
from ..core.streams import in_mode, open_local
from .ranged import Head, ranges_for
from .retry import RetryPolicy, RetryStats, make_fs, retry_transient
from .transient import (
    ObjectChangedError,
    ShortReadError,
    precondition_failed,
)

__all__ = ["RetryingReader", "open_retrying"]

T = TypeVar("T")
DEFAULT_CHUNK = RETRY["chunk_size"].default
DEFAULT_FIRST_CHUNK = RETRY["first_chunk"].default
DEFAULT_READ_AHEAD = RETRY["read_ahead"].default


class _Event:
    """Callbacks run once, when the event happens (at once if it has)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] | None = []

    def then(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._callbacks is not None:
                self._callbacks.append(fn)
                return
        fn()

    def fire(self) -> None:
        with self._lock:
            callbacks, self._callbacks = self._callbacks, None
        for fn in callbacks or ():
            fn()


@dataclass(frozen=True)
class _Fetch:
    """A range requested ahead of the consumer."""

    start: int
    end: int
    future: Future[bytearray]


class RetryingReader(io.BufferedIOBase):
    """Read-only, seekable stream over ``fs``/``path`` with retries and
    read-ahead. ``retries`` counts this stream's retried failures; ``stats``
    (shared with a node) accumulates over streams. ``size`` waits for the
    first response (and raises what it failed with: missing, denied...)."""

    def __init__(
        self,
        fs: Any,
        path: str,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        first_chunk: int = DEFAULT_FIRST_CHUNK,
        read_ahead: int = DEFAULT_READ_AHEAD,
        policy: RetryPolicy | None = None,
        stats: RetryStats | None = None,
        url: str | None = None,
        seed: int | None = None,
        start: bool = True,
    ) -> None:
        if chunk_size < 1 or first_chunk < 1 or read_ahead < 0:
            raise ValueError("chunk_size and first_chunk must be >= 1 and read_ahead >= 0")
        super().__init__()
        self.url = url or _unstrip(fs, path)
        self.chunk_size = chunk_size
        self.first_chunk = min(first_chunk, chunk_size)
        self.read_ahead = read_ahead
        self.policy = policy or RetryPolicy()
        self.stats = stats if stats is not None else RetryStats()
        self.retries = 0
        self._source = ranges_for(fs, path, self.stats)
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        # _pending/_next are shared by the consumer and the first response's
        # callback on the fetch threads; without them, no other thread touches them.
        self._lock: Any = threading.RLock() if read_ahead else contextlib.nullcontext()
        self._size: int | None = None
        self._etag: str | None = None
        self._pos = 0
        self._chunk = memoryview(b"")
        self._chunk_start = 0
        self._next = 0  # start of the next range to request
        self._span = self.first_chunk  # its length: x4 per range up to chunk_size
        self._pending: deque[_Fetch] = deque()
        self._first: Future[bytearray] | None = None  # the request that tells the size
        self._pool: ThreadPoolExecutor | None = None
        # each also fires on a failed fetch and on close
        self._downloaded = _Event()  # the last byte is in
        self._last_range = _Event()  # the consumer reached the last range
        if start:
            self.start()

    def start(self) -> None:
        """With read-ahead, request the first range now in the background
        (``__init__`` does unless ``start=False``); without, reading does."""
        with self._lock:
            if self.read_ahead and self._first is None and not self._stop.is_set():
                self._request_first()

    def after_download(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once this stream has received its last byte, a fetch
        failed, or it was closed; now if that already happened. Chained to
        the next file's ``start``, it stops a file opened ahead from taking
        bandwidth and CPU from the bytes the parser needs first."""
        self._downloaded.then(fn)

    def after_last_range(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once the consumer has moved into this stream's last
        range, a read failed, or it was closed; now if that already happened.
        Later than ``after_download``: for a file whose parsing is awaited
        (the epoch's first batch), the next one starts with a range's worth of
        parsing left, not during the first samples."""
        self._last_range.then(fn)

    def _fetched(self, end: int, future: Future[bytearray]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None or (self._size is not None and end >= self._size):
            self._downloaded.fire()

    # -- fetching --------------------------------------------------------

    def _fetch(self, start: int, end: int) -> bytearray:
        """Bytes ``[start, end)`` (to the end of the object if shorter),
        retried from the first byte not yet received."""
        buf = bytearray()

        def once() -> None:
            offset, had = start + len(buf), len(buf)
            try:
                self._source.get(
                    offset, end, self._etag, partial(self._on_head, offset), buf.extend
                )
            except Exception as exc:
                if precondition_failed(exc):
                    raise self._changed(
                        f"a read from byte {offset} was refused: 412 Precondition Failed"
                    ) from exc
                raise
            finally:
                self.stats.add(fetched=len(buf) - had)
            stop = min(end, self._size if self._size is not None else end)
            if start + len(buf) < stop:
                raise ShortReadError(
                    errno.EIO,
                    f"bytes {offset}-{stop - 1}: the response ended at byte {start + len(buf)}",
                )

        self._with_retries(once)
        return buf

    def _on_head(self, offset: int, head: Head) -> None:
        """The first response fixes size and ETag (and lets the read-ahead
        plan further ranges); a later one that disagrees is another version."""
        with self._lock:
            if self._size is None:
                self._size, self._etag = head.size, head.etag
                self._submit()
                return
        if head.size != self._size or (head.etag and self._etag and head.etag != self._etag):
            raise self._changed(
                f"a read from byte {offset} got ETag {head.etag}, {head.size} bytes"
            )

    def _changed(self, detail: str) -> ObjectChangedError:
        return ObjectChangedError(
            errno.ESTALE,
            f"{self.url}: the object was replaced while it was being read "
            f"(opened as ETag {self._etag}, {self._size} bytes; {detail}); no byte of the "
            "new version was passed on: read the file again from its start",
        )

    def _with_retries(self, fn: Callable[[], None]) -> None:
        retry_transient(
            fn, self.url, self.policy, rng=self._rng, on_retry=self._count_retry, stop=self._stop
        )

    def _count_retry(self) -> None:
        with self._lock:  # fetch threads retry concurrently
            self.retries += 1
        self.stats.add(retries=1)

    def _start(self, start: int, end: int) -> Future[bytearray]:
        """A fetch on the read-ahead threads, or done here without read-ahead."""
        if not self.read_ahead:
            fut: Future[bytearray] = Future()
            try:
                fut.set_result(self._fetch(start, end))
            except BaseException as exc:
                fut.set_exception(exc)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.read_ahead, thread_name_prefix="streamdag-readahead"
                )
            fut = self._pool.submit(self._fetch, start, end)
        fut.add_done_callback(partial(self._fetched, end))
        return fut

    def _request_first(self) -> None:
        """The first range, from byte 0: its response tells size and ETag."""
        self._next = self.first_chunk
        self._first = self._start(0, self.first_chunk)
        self._pending.append(_Fetch(0, self.first_chunk, self._first))

    def _submit(self) -> None:
        """Keep ``read_ahead`` ranges requested beyond the one being consumed
        (once the size is known)."""
        with self._lock:
            while (
                self.read_ahead
                and self._size is not None
                and not self._stop.is_set()
                and len(self._pending) < self.read_ahead
                and self._next < self._size
            ):
                start, end = self._next, min(self._next + self._grow(), self._size)
                self._next = end
                self._pending.append(_Fetch(start, end, self._start(start, end)))

    def _grow(self) -> int:
        """The next range's length: growing from ``first_chunk`` so the
        parser, fed by a small first range, does not wait long for the
        second (slow start), up to ``chunk_size``."""
        self._span = min(self.chunk_size, self._span * 4)
        return self._span

    @property
    def size(self) -> int:
        """The object's size: waits for the first response."""
        return self._size if self._size is not None else self.wait_open()

    def wait_open(self) -> int:
        """Wait for the first response and return the size; raises what the
        first request failed with (missing, denied, retries exhausted), after
        which a later call asks again."""
        with self._lock:
            if self._first is None:
                self._request_first()
            first = self._first
        assert first is not None
        try:
            first.result()
        except BaseException:
            with self._lock:
                self._first = None
                self._drop_pending()
                self._next = self._pos
            raise
        assert self._size is not None
        return self._size

    def _advance(self) -> bool:
        """Make the chunk holding ``_pos`` current; False at end of file."""
        if self._pos >= self.size:
            return False
        with self._lock:
            # the first range is queued from byte 0 whatever the position
            while self._pending and not self._pending[0].start <= self._pos < self._pending[0].end:
                self._cancel(self._pending.popleft())
            if not self._pending:
                self._next = self._pos
                if self.read_ahead:
                    self._submit()
                else:
                    end = min(self._pos + self._grow(), self.size)
                    self._next = end
                    self._pending.append(_Fetch(self._pos, end, self._start(self._pos, end)))
            fetch = self._pending.popleft()
        try:
            data = fetch.future.result()  # a permanent or exhausted error surfaces here, in order
        except BaseException:
            self._last_range.fire()
            # Forget what was queued: a later read() starts again at tell(), so
            # a caller that catches the error and retries loses no byte.
            with self._lock:
                self._drop_pending()
                self._next = self._pos
            raise
        self._chunk = memoryview(data)
        self._chunk_start = fetch.start
        self._submit()
        if fetch.start + len(data) >= self.size:
            self._last_range.fire()
        return True

    def _drop_pending(self) -> None:
        while self._pending:
            self._cancel(self._pending.popleft())

    def _cancel(self, fetch: _Fetch) -> None:
        """Cancel a queued fetch (a running one finishes, unread), never the
        first: ``size`` waits for it."""
        if fetch.future is not self._first or self._stop.is_set():
            fetch.future.cancel()

    def _within(self) -> int:
        """The position's offset in the current chunk, moving to the next
        chunk if this one is used up; -1 at end of file."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        within = self._pos - self._chunk_start
        if 0 <= within < len(self._chunk):
            return within
        return self._pos - self._chunk_start if self._advance() else -1

    def _take(self, n: int) -> memoryview:
        """Up to ``n`` bytes of the current chunk, moving the position; empty at the end."""
        within = self._within()
        if within < 0:
            return memoryview(b"")
        piece = self._chunk[within : within + n]
        self._pos += len(piece)
        self.stats.add(nbytes=len(piece))
        return piece

    # -- io.BufferedIOBase -------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        parts = []
        while size > 0 and (piece := self._take(size)):
            parts.append(piece)
            size -= len(piece)
        return b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        return bytes(self._take(size if size >= 0 else self.chunk_size))

    def readall(self) -> bytes:
        return self.read(max(0, self.size - self._pos))

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        done = 0
        while done < len(out) and (piece := self._take(len(out) - done)):
            out[done : done + len(piece)] = piece
            done += len(piece)
        return done

    def readinto1(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        piece = self._take(len(out))
        out[: len(piece)] = piece
        return len(piece)

    def peek(self, size: int = 0) -> bytes:
        """The rest of the current chunk (the next one if used up), position unchanged."""
        within = self._within()
        return bytes(self._chunk[within:]) if within >= 0 else b""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos}.get(whence)
        pos = max(0, (self.size if base is None else base) + offset)
        if pos == self._pos:
            return pos
        self._pos = pos
        if not self._chunk_start <= pos < self._chunk_start + len(self._chunk):
            with self._lock:  # drop queued ranges unless the new position is in the next one
                while self._pending and not (self._pending[0].start <= pos < self._pending[0].end):
                    self._cancel(self._pending.popleft())
                if not self._pending:
                    self._next = pos
            self._chunk = memoryview(b"")
            self._chunk_start = pos
        return pos

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            with self._lock:
                self._drop_pending()
            self._chunk = memoryview(b"")
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._downloaded.fire()
            self._last_range.fire()
        super().close()


def _unstrip(fs: Any, path: str) -> str:
    try:
        return str(fs.unstrip_protocol(path))
    except Exception:
        return path


def open_retrying(
    path: str,
    mode: str = "rb",
    encoding: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    first_chunk: int = DEFAULT_FIRST_CHUNK,
    read_ahead: int = DEFAULT_READ_AHEAD,
    policy: RetryPolicy | None = None,
    stats: RetryStats | None = None,
    inner_retries: bool = False,
    start: bool = True,
) -> Any:
    """Drop-in for ``open_files``'s ``open_stream``: local paths open with the
    builtin ``open`` (nothing to retry); URLs get a ``RetryingReader`` (in a
    ``TextIOWrapper`` in a text mode) whose first range is already requested
    unless ``start=False``."""
    if "://" not in path and "::" not in path:
        return open_local(path, mode, encoding)
    fs, inner = make_fs(path, storage_options, inner_retries=inner_retries)
    stream = RetryingReader(
        fs,
        inner,
        chunk_size=chunk_size,
        first_chunk=first_chunk,
        read_ahead=read_ahead,
        policy=policy,
        stats=stats,
        url=path,
        start=start,
    )
    return in_mode(stream, mode, encoding)

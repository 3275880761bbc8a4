"""Retrying, read-ahead byte streams over any fsspec filesystem (S3, GCS, HTTP...).

``RetryingReader`` is a read-only, seekable raw stream that fetches the object
in bounded chunks with ranged reads (``fs.cat_file(path, start, end)``), a few
chunks ahead of the consumer on background threads, so a tar parser works on
chunk *k* while chunks *k+1..k+n* download.

Why chunks: a transient failure (connection reset or cut mid-body, a stall past
the read timeout, HTTP 500/503/SlowDown) costs at most one chunk re-fetched
from its start, and the consumer only ever receives whole, verified-length
chunks in order, so its byte offset is exact: no byte is lost or duplicated,
whatever fails and however often. Permanent failures (404/NoSuchBucket ->
``FileNotFoundError``, 403 -> ``PermissionError``, ...) fail at once with the
URL in the message.

Memory per open stream is bounded: at most ``(read_ahead + 1) * chunk_size``
bytes (the chunk being consumed plus ``read_ahead`` in flight or waiting),
plus one discarded in-flight chunk after a seek. Defaults: 8 MiB x 3 = 24 MiB.

Retry budgets do not multiply: by default ``make_fs`` builds the filesystem
with the lower layers' retries off (botocore ``total_max_attempts=1``, s3fs
``fs.retries = 1``; see docs/s3-notes.md: stacked, a persistent 503 costs
5 x 5 GETs and ~45 s). The only remaining hidden retry is aiohttp's single
invisible re-send of an idempotent request on a dead keep-alive connection.
"""

from __future__ import annotations

import errno
import io
import os
import random
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..datapipes.registry import register_op
from ..errors import ParamError
from .open_files import OpenFilesNode
from .streams import close_quietly

__all__ = [
    "RetryPolicy",
    "RetryStats",
    "RetryingReader",
    "RetriesExhaustedError",
    "is_transient",
    "make_fs",
    "open_retrying",
    "open_files_retrying",
    "RetryingOpenFilesNode",
]

MiB = 1 << 20
DEFAULT_CHUNK = 8 * MiB
DEFAULT_READ_AHEAD = 2
_BUFFER = 1 << 16  # BufferedReader size in front of the raw stream (tar reads 512 B)
_S3_PROTOCOLS = ("s3", "s3a")

# ClientError codes (botocore, untranslated) and message fragments that are transient.
_TRANSIENT_CODES = frozenset({
    "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling",
    "ThrottlingException", "RequestTimeTooSkewed", "BadGateway", "GatewayTimeout",
    "RequestLimitExceeded", "500", "502", "503", "504",
})
_PERMANENT_OS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
_PERMANENT_ERRNO = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR,
                              errno.ENOTDIR, errno.EINVAL})


class RetriesExhaustedError(OSError):
    """A transient failure persisted through every retry (message has the URL)."""


class ShortReadError(OSError):
    """A ranged read returned fewer bytes than asked: treated as transient."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt *i* (0-based) sleeps a
    uniform random time in ``[0, min(backoff_max, backoff_base * 2**i)]``,
    which spreads retries of many workers hitting the same throttled prefix."""

    max_retries: int = 5
    backoff_base: float = 0.1
    backoff_max: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.backoff_max, self.backoff_base * (2 ** attempt)))


@dataclass
class RetryStats:
    """Counters shared by the streams a node opens (thread-safe increments):
    ``retries`` (transient failures retried), ``requests`` (ranged reads and
    HEADs issued), ``bytes`` (bytes delivered)."""

    retries: int = 0
    requests: int = 0
    bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, retries: int = 0, requests: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.retries += retries
            self.requests += requests
            self.bytes += nbytes

    def as_dict(self) -> dict[str, int]:
        return {"retries": self.retries, "requests": self.requests, "bytes": self.bytes}


def _client_error_transient(exc: BaseException) -> bool | None:
    """For a botocore ClientError: 4xx other than 408/429/RequestTimeout is
    permanent whatever the code (403 AccessDenied, 404 NoSuchKey/NoSuchBucket),
    else a known throttling/server code or a 5xx is transient. None if
    ``exc`` is not a ClientError."""
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None
    err = response.get("Error") or {}
    code = str(err.get("Code")) if isinstance(err, Mapping) and err.get("Code") else None
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
        return not (isinstance(status, int) and 400 <= status < 500
                    and status not in (408, 429) and code != "RequestTimeout")
    return False


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying (see docs/s3-notes.md for the types
    s3fs/aiobotocore/aiohttp raise); False for permanent ones."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # s3fs chains the botocore error as __cause__
        seen.add(id(e))
        if isinstance(e, _PERMANENT_OS):
            return False
        verdict = _client_error_transient(e)
        if verdict is not None:
            return verdict
        e = e.__cause__
    if isinstance(exc, (ShortReadError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, OSError):
        # s3fs maps 503 SlowDown -> EBUSY, 500 -> EREMOTEIO; other errnos are
        # network trouble unless they say "not found/denied/invalid".
        return exc.errno not in _PERMANENT_ERRNO
    status = getattr(exc, "status", None)  # aiohttp.ClientResponseError (HTTP filesystem)
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    try:
        import aiohttp

        if isinstance(exc, aiohttp.ClientError):  # ClientPayloadError: cut mid-body
            return True
    except ImportError:  # pragma: no cover - aiohttp comes with s3fs/http
        pass
    try:
        from botocore.exceptions import HTTPClientError

        if isinstance(exc, HTTPClientError):  # ConnectionClosedError, ReadTimeoutError
            return True
    except ImportError:  # pragma: no cover
        pass
    return False


def _with_url(exc: BaseException, url: str) -> BaseException:
    """The same kind of error, its message prefixed with the URL."""
    msg = f"{url}: {type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        try:
            return type(exc)(exc.errno, msg) if exc.errno is not None else type(exc)(msg)
        except Exception:
            return OSError(exc.errno, msg)
    return OSError(msg)


def make_fs(url: str, storage_options: Mapping[str, Any] | None = None,
            *, inner_retries: bool = False) -> tuple[Any, str]:
    """``(filesystem, path)`` for ``url``. Unless ``inner_retries``, S3's
    botocore and s3fs retries are switched off so ``RetryPolicy`` is the only
    budget (otherwise 5 x 5 x ours requests per failure)."""
    from fsspec.core import split_protocol, url_to_fs

    opts = dict(storage_options or {})
    s3 = split_protocol(url)[0] in _S3_PROTOCOLS
    if s3 and not inner_retries:
        config = dict(opts.get("config_kwargs") or {})
        config["retries"] = {"total_max_attempts": 1}
        opts["config_kwargs"] = config
    fs, path = url_to_fs(url, **opts)
    if s3 and not inner_retries:
        fs.retries = 1  # s3fs's loop: a class attribute, 1 means one attempt
    return fs, path


class RetryingReader(io.RawIOBase):
    """Read-only, seekable raw stream over ``fs``/``path`` with retries and
    read-ahead. ``retries`` counts this stream's retried failures; ``stats``
    (shared with a node) accumulates over streams. Wrap it in
    ``io.BufferedReader`` for small reads (``open_retrying`` does)."""

    def __init__(self, fs: Any, path: str, *, chunk_size: int = DEFAULT_CHUNK,
                 read_ahead: int = DEFAULT_READ_AHEAD, policy: RetryPolicy | None = None,
                 size: int | None = None, stats: RetryStats | None = None,
                 url: str | None = None, seed: int | None = None) -> None:
        if chunk_size < 1 or read_ahead < 0:
            raise ValueError("chunk_size must be >= 1 and read_ahead >= 0")
        super().__init__()
        self.fs = fs
        self.path = path
        self.url = url or _unstrip(fs, path)
        self.chunk_size = chunk_size
        self.read_ahead = read_ahead
        self.policy = policy or RetryPolicy()
        self.stats = stats if stats is not None else RetryStats()
        self.retries = 0
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pos = 0
        self._chunk = memoryview(b"")
        self._chunk_start = 0
        self._next = 0  # start of the next chunk to request
        self._pending: deque[tuple[int, Future[bytes]]] = deque()  # (start, fetch)
        self._pool: ThreadPoolExecutor | None = None
        self.size = size if size is not None else self._with_retries(self._size)
        if read_ahead:
            self._submit()  # start downloading now: an opened-ahead shard fills meanwhile

    # -- fetching --------------------------------------------------------

    def _size(self) -> int:
        self.stats.add(requests=1)
        return int(self.fs.size(self.path))

    def _fetch(self, start: int, end: int) -> bytes:
        self.stats.add(requests=1)
        data = self.fs.cat_file(self.path, start=start, end=end)
        if len(data) != end - start:
            raise ShortReadError(errno.EIO, f"asked bytes {start}-{end - 1}, got {len(data)}")
        return data

    def _with_retries(self, fn: Callable[..., Any], *args: Any) -> Any:
        attempt = 0
        while True:
            if self._stop.is_set():
                raise ValueError(f"{self.url}: stream closed")
            try:
                return fn(*args)
            except Exception as exc:
                if not is_transient(exc):
                    raise _with_url(exc, self.url) from exc
                if attempt >= self.policy.max_retries:
                    msg = (f"{self.url}: giving up after {attempt + 1} attempts: "
                           f"{type(exc).__name__}: {exc}")
                    raise RetriesExhaustedError(errno.EIO, msg) from exc
                with self._lock:  # fetch threads retry concurrently
                    self.retries += 1
                self.stats.add(retries=1)
                if self._stop.wait(self.policy.delay(attempt, self._rng)):
                    raise ValueError(f"{self.url}: stream closed") from exc
                attempt += 1

    def _submit(self) -> None:
        """Keep ``read_ahead`` chunks requested beyond the one being consumed."""
        while len(self._pending) < max(1, self.read_ahead) and self._next < self.size:
            start, end = self._next, min(self._next + self.chunk_size, self.size)
            self._next = end
            if self.read_ahead == 0:
                fut: Future[bytes] = Future()
                try:
                    fut.set_result(self._with_retries(self._fetch, start, end))
                except BaseException as exc:
                    fut.set_exception(exc)
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.read_ahead,
                                                    thread_name_prefix="streamdag-readahead")
                fut = self._pool.submit(self._with_retries, self._fetch, start, end)
            self._pending.append((start, fut))
            if self.read_ahead == 0:
                return

    def _advance(self) -> bool:
        """Make the chunk holding ``_pos`` current; False at end of file."""
        if self._pos >= self.size:
            return False
        if not self._pending:
            self._next = self._pos
            self._submit()
        start, fut = self._pending.popleft()
        try:
            data = fut.result()  # a permanent or exhausted error surfaces here, in order
        except BaseException:
            # Forget what was queued: a later read() starts again at tell(), so
            # a caller that catches the error and retries loses no byte.
            self._drop_pending()
            self._next = self._pos
            raise
        self._chunk = memoryview(data)
        self._chunk_start = start
        if self.read_ahead:
            self._submit()
        return True

    def _drop_pending(self) -> None:
        while self._pending:
            self._pending.popleft()[1].cancel()

    # -- io.RawIOBase ----------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        within = self._pos - self._chunk_start
        if not 0 <= within < len(self._chunk):
            if not self._advance():
                return 0
            within = self._pos - self._chunk_start
        n = min(len(buffer), len(self._chunk) - within)
        buffer[:n] = self._chunk[within:within + n]
        self._pos += n
        self.stats.add(nbytes=n)
        return n

    def readall(self) -> bytes:
        parts = []
        while self._pos < self.size:
            chunk = self.read(max(1, self.size - self._pos))
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        pos = max(0, base + offset)
        if pos == self._pos:
            return pos
        self._pos = pos
        if not self._chunk_start <= pos < self._chunk_start + len(self._chunk):
            # Drop queued chunks unless the new position is in the next one.
            while self._pending and not (
                    self._pending[0][0] <= pos < self._pending[0][0] + self.chunk_size):
                self._pending.popleft()[1].cancel()  # a running fetch finishes, unread
            if not self._pending:
                self._next = pos
            self._chunk = memoryview(b"")
            self._chunk_start = pos
        return pos

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            self._drop_pending()
            self._chunk = memoryview(b"")
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
        super().close()


def _unstrip(fs: Any, path: str) -> str:
    try:
        return str(fs.unstrip_protocol(path))
    except Exception:
        return path


def open_retrying(path: str, mode: str = "rb", encoding: str | None = None,
                  storage_options: Mapping[str, Any] | None = None, *,
                  chunk_size: int = DEFAULT_CHUNK, read_ahead: int = DEFAULT_READ_AHEAD,
                  policy: RetryPolicy | None = None, stats: RetryStats | None = None,
                  inner_retries: bool = False) -> Any:
    """Drop-in for ``open_files``'s ``open_stream``: local paths open with the
    builtin ``open`` (nothing to retry); URLs get a buffered ``RetryingReader``
    (``.raw`` is the reader, with ``retries``)."""
    if "://" not in path and "::" not in path:
        return open(path, mode, encoding=encoding) if mode == "r" else open(path, mode)
    fs, inner = make_fs(path, storage_options, inner_retries=inner_retries)
    raw = RetryingReader(fs, inner, chunk_size=chunk_size, read_ahead=read_ahead,
                         policy=policy, stats=stats, url=path)
    stream = io.BufferedReader(raw, _BUFFER)
    return io.TextIOWrapper(stream, encoding=encoding) if mode == "r" else stream


# -- the node: open_files with retrying streams (opt-in) -----------------------

_NO_STATE = object()
DEFAULT_SHARDS_AHEAD = 1


def _check_retry_params(op: str, params: Mapping[str, Any]) -> None:
    for key in ("chunk_size", "read_ahead", "max_retries", "shards_ahead"):
        value = params.get(key)
        low = 1 if key == "chunk_size" else 0
        if value is not None and (type(value) is not int or value < low):
            raise ParamError(f"{op}: {key} must be an int >= {low}, got {value!r}")
    for key in ("backoff_base", "backoff_max"):
        value = params.get(key)
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise ParamError(f"{op}: {key} must be a number >= 0, got {value!r}")


@register_op("open_files_retrying")
class RetryingOpenFilesNode(OpenFilesNode):
    """``open_files`` whose URL streams are ``RetryingReader``s. Stateless
    like ``open_files`` (a resume re-opens and the reader seeks, which is a
    ranged read here). ``stats()`` adds ``retries``, ``requests`` and
    ``bytes`` over every stream this node opened in this process."""

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
        ahead = self.params.get("shards_ahead", DEFAULT_SHARDS_AHEAD)
        if not ahead:
            return super().iterator()
        return self._ahead(ahead)

    def _ahead(self, ahead: int) -> Iterator[tuple[str, Any]]:
        """Opening a RetryingReader starts its first chunks downloading, so
        keeping ``ahead`` files opened beyond the one being parsed overlaps
        shard *i+1*'s first bytes with shard *i*'s parsing. Each queued file
        carries the input's state right after it was pulled: ``state()`` is
        that of the last file passed on, so resume stays exact."""
        src = self.inputs[0]
        items = src.iterator()
        queue = self._queue
        self._snapshot = src.state()

        def pull() -> None:
            for path in items:
                state = src.state()
                try:
                    path = os.fspath(path)
                    stream, err = self._open(path), None
                except Exception as exc:  # deferred: raised when this file's turn comes
                    stream, err = None, exc
                queue.append((path, stream, err, state))
                return

        for _ in range(ahead):
            pull()
        while queue:
            path, stream, err, state = queue.popleft()
            self._snapshot = state
            pull()
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


def open_files_retrying(dp: Any, mode: str = "rb", *, encoding: str | None = None,
                        storage_options: Mapping[str, Any] | None = None,
                        chunk_size: int = DEFAULT_CHUNK, read_ahead: int = DEFAULT_READ_AHEAD,
                        shards_ahead: int = DEFAULT_SHARDS_AHEAD, max_retries: int = 5,
                        backoff_base: float = 0.1, backoff_max: float = 5.0,
                        on_error: str = "raise", name: str | None = None) -> Any:
    """``dp.open_files()`` with retrying, read-ahead streams (until the lead
    folds it into ``open_files``). ``storage_options`` default to those of a
    ``FileLister`` upstream through single-input nodes (as ``open_files``)."""
    if storage_options is None:
        storage_options = _lister_options(dp.node)
    params = {"mode": mode, "encoding": encoding,
              "storage_options": dict(storage_options) if storage_options else None,
              "chunk_size": chunk_size, "read_ahead": read_ahead, "shards_ahead": shards_ahead,
              "max_retries": max_retries, "backoff_base": backoff_base,
              "backoff_max": backoff_max, "on_error": on_error}
    return dp._then("open_files_retrying", params, name=name)


def _lister_options(node: Any) -> Mapping[str, Any] | None:
    """The FileLister's storage_options, through single-input nodes (shuffle,
    sharding_filter...), like ``open_files`` does."""
    while node.inputs:
        if len(node.inputs) != 1:
            return None
        node = node.inputs[0]
    return node.params.get("storage_options") if node.op == "file_lister" else None

"""Retries of remote reads and listings: the policy (backoff with jitter),
its counters, and the filesystem they go through.

Retry budgets do not multiply: by default ``make_fs`` builds the filesystem
with the lower layers' retries off (botocore ``total_max_attempts=1``, s3fs
``fs.retries = 1``; see docs/s3-notes.md: stacked, a persistent 503 costs
5 x 5 GETs and ~45 s). The only remaining hidden retry is aiohttp's single
invisible re-send of an idempotent request on a dead keep-alive connection.
"""

from __future__ import annotations

import errno
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .transient import ObjectChangedError, RetriesExhaustedError, is_transient, with_url

T = TypeVar("T")
_S3_PROTOCOLS = ("s3", "s3a")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt *i* (0-based) sleeps a
    uniform random time in ``[0, min(backoff_max, backoff_base * 2**i)]``,
    which spreads retries of many workers hitting the same throttled prefix."""

    max_retries: int = 5
    backoff_base: float = 0.1
    backoff_max: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.backoff_max, self.backoff_base * (2**attempt)))


@dataclass
class RetryStats:
    """Counters shared by the streams a node opens (thread-safe increments):
    ``retries`` (transient failures retried), ``requests`` (GETs and HEADs
    sent), ``bytes`` (bytes handed to the reader's consumer, the parser) and
    ``bytes_fetched`` (body bytes received, read-ahead never consumed included:
    with resumed retries no byte is received twice)."""

    retries: int = 0
    requests: int = 0
    bytes: int = 0
    bytes_fetched: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self, *, retries: int = 0, requests: int = 0, nbytes: int = 0, fetched: int = 0
    ) -> None:
        with self._lock:
            self.retries += retries
            self.requests += requests
            self.bytes += nbytes
            self.bytes_fetched += fetched

    def as_dict(self) -> dict[str, int]:
        return {
            "retries": self.retries,
            "requests": self.requests,
            "bytes": self.bytes,
            "bytes_fetched": self.bytes_fetched,
        }


def make_fs(
    url: str, storage_options: Mapping[str, Any] | None = None, *, inner_retries: bool = False
) -> tuple[Any, str]:
    """``(filesystem, path)`` for ``url``. Unless ``inner_retries``, S3's
    botocore and s3fs retries are switched off so ``RetryPolicy`` is the only
    budget (otherwise 5 x 5 x ours requests per failure). FileLister lists
    through it too: equal options give the same cached instance, so a worker
    has one S3 client (a client costs ~0.05 s of CPU, loading CA bundles)."""
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


def retry_transient(
    fn: Callable[[], T],
    url: str,
    policy: RetryPolicy,
    *,
    rng: random.Random,
    on_retry: Callable[[], None] = lambda: None,
    stop: threading.Event | None = None,
) -> T:
    """``fn()``, called again after each transient failure (backoff with
    jitter) up to ``policy.max_retries`` times; a permanent failure is raised
    at once with ``url`` in its message. Once ``stop`` is set (the stream was
    closed), it gives up."""
    stop = stop or threading.Event()
    attempt = 0
    while True:
        if stop.is_set():
            raise ValueError(f"{url}: stream closed")
        try:
            return fn()
        except ObjectChangedError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise with_url(exc, url) from exc
            if attempt >= policy.max_retries:
                msg = f"{url}: giving up after {attempt + 1} attempts: {type(exc).__name__}: {exc}"
                raise RetriesExhaustedError(errno.EIO, msg) from exc
            on_retry()
            if stop.wait(policy.delay(attempt, rng)):
                raise ValueError(f"{url}: stream closed") from exc
            attempt += 1

"""One ranged GET per call, its body handed over as it arrives, per kind of
filesystem.

Why not ``fs.cat_file(path, start, end)``: it returns a range whole or
raises, so the bytes received before a connection is cut are lost and a retry
asks for the whole range again; and it cannot send ``If-Match``, so a rewrite
between two ranges would splice two versions of the object. S3 (s3fs) and
HTTP(S) get both; other fsspec filesystems fall back to ``cat_file`` (whole
range per attempt, no pinning).

Each ``get`` reports the response's ``Head`` (total size, ETag) to
``on_head`` before the first body byte reaches ``sink``, and counts one
request in ``stats`` per request it sends."""

from __future__ import annotations

import errno
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .retry import RetryStats
__all__ = ["Head", "Ranges", "ranges_for"]

_PIECE = 1 << 20  # most bytes taken from the socket buffer at once
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


@dataclass(frozen=True)
class Head:
    """What a response says about the object: total size and ETag (None if unknown)."""

    size: int
    etag: str | None


OnHead = Callable[[Head], None]
Sink = Callable[[bytes], None]


class Ranges(Protocol):
    def get(self, start: int, end: int, etag: str | None, on_head: OnHead, sink: Sink) -> None:
        """One request for bytes ``[start, end)`` (fewer at the end of the
        object), conditional on ``etag`` when given."""


def ranges_for(fs: Any, path: str, stats: RetryStats) -> Ranges:
    """The best ranged reader for ``fs`` (modules are looked up, never imported)."""
    s3fs = sys.modules.get("s3fs")
    if s3fs is not None and isinstance(fs, s3fs.S3FileSystem):
        return S3Ranges(fs, path, stats)
    http = sys.modules.get("fsspec.implementations.http")
    if http is not None and isinstance(fs, http.HTTPFileSystem):
        return HTTPRanges(fs, path, stats)
    return FsspecRanges(fs, path, stats)


def _total(content_range: str | None, what: str) -> int:
    match = _CONTENT_RANGE.fullmatch((content_range or "").strip())
    if match is None:
        msg = f"{what}: a ranged GET got no usable Content-Range ({content_range!r})"
        raise OSError(errno.EINVAL, msg)
    return int(match.group(3))


class S3Ranges:
    """``GetObject`` with ``Range`` and ``IfMatch`` through s3fs's client (its
    session, credentials and error translation), reading the body in pieces."""

    def __init__(self, fs: Any, path: str, stats: RetryStats) -> None:
        bucket, key, version = fs.split_path(path)
        self._fs = fs
        self._stats = stats
        self._where = f"s3://{bucket}/{key}"
        self._kw: dict[str, str] = {"Bucket": bucket, "Key": key}
        if version:
            self._kw["VersionId"] = version

    def get(self, start: int, end: int, etag: str | None, on_head: OnHead, sink: Sink) -> None:
        from fsspec.asyn import sync

        sync(self._fs.loop, self._get, start, end, etag, on_head, sink)

    async def _get(
        self, start: int, end: int, etag: str | None, on_head: OnHead, sink: Sink
    ) -> None:
        kw = {**self._kw, "Range": f"bytes={start}-{end - 1}"}
        if etag:
            kw["IfMatch"] = etag
        self._stats.add(requests=1)
        try:
            resp = await self._fs._call_s3("get_object", **kw)
        except OSError as exc:
            if start == 0 and _status(exc) == 416:  # an empty object has no byte 0
                return await self._empty(on_head)
            raise
        body = resp["Body"]
        try:
            on_head(Head(_total(resp.get("ContentRange"), self._where), resp.get("ETag")))
            left = int(resp["ContentLength"])
            while left > 0 and (piece := await body.read(min(left, _PIECE))):
                left -= len(piece)
                sink(piece)
        finally:
            body.close()

    async def _empty(self, on_head: OnHead) -> None:
        self._stats.add(requests=1)
        info = await self._fs._call_s3("head_object", **self._kw)
        on_head(Head(int(info["ContentLength"]), info.get("ETag")))


def _status(exc: BaseException) -> int | None:
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        return (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return None


class HTTPRanges:
    """GET with ``Range`` and ``If-Match`` on fsspec's HTTP filesystem's aiohttp
    session (its headers, auth and client options)."""

    def __init__(self, fs: Any, url: str, stats: RetryStats) -> None:
        self._fs = fs
        self._url = url
        self._stats = stats

    def get(self, start: int, end: int, etag: str | None, on_head: OnHead, sink: Sink) -> None:
        from fsspec.asyn import sync

        sync(self._fs.loop, self._get, start, end, etag, on_head, sink)

    async def _get(
        self, start: int, end: int, etag: str | None, on_head: OnHead, sink: Sink
    ) -> None:
        kw = dict(self._fs.kwargs)
        headers = dict(kw.pop("headers", None) or {})
        headers["Range"] = f"bytes={start}-{end - 1}"
        if etag and not etag.startswith("W/"):  # a weak ETag never matches If-Match
            headers["If-Match"] = etag
        session = await self._fs.set_session()
        self._stats.add(requests=1)
        async with session.get(self._fs.encode_url(self._url), headers=headers, **kw) as r:
            if r.status == 416 and start == 0:  # an empty object has no byte 0
                on_head(Head(0, r.headers.get("ETag")))
                return
            if r.status == 404:
                raise FileNotFoundError(errno.ENOENT, "not found", self._url)
            r.raise_for_status()
            if r.status != 206:
                msg = (
                    f"{self._url}: the server ignored the Range header (status {r.status}); "
                    "read it without retry="
                )
                raise OSError(errno.EINVAL, msg)
            on_head(Head(_total(r.headers.get("Content-Range"), self._url), r.headers.get("ETag")))
            async for piece in r.content.iter_any():
                sink(piece)


class FsspecRanges:
    """Any other fsspec filesystem: size once (``fs.size``), then
    ``cat_file`` per range; a range is all or nothing and nothing is pinned."""

    def __init__(self, fs: Any, path: str, stats: RetryStats) -> None:
        self._fs = fs
        self._path = path
        self._stats = stats
        self._head: Head | None = None

    def get(self, start: int, end: int, etag: str | None, on_head: OnHead, sink: Sink) -> None:
        if self._head is None:
            self._stats.add(requests=1)
            self._head = Head(int(self._fs.size(self._path)), None)
        on_head(self._head)
        end = min(end, self._head.size)
        if start < end:
            self._stats.add(requests=1)
            sink(self._fs.cat_file(self._path, start=start, end=end))

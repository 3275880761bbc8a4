"""Which remote-read failures are worth retrying, and the errors the retrying
reader raises. Kept apart from the reader so the classification (the part an
s3fs/aiohttp upgrade can break, pinned by tests/test_support_s3.py) reads on
its own; docs/s3-notes.md lists what each layer raises."""

from __future__ import annotations

import errno
from collections.abc import Mapping

__all__ = [
    "ObjectChangedError",
    "RetriesExhaustedError",
    "ShortReadError",
    "is_transient",
    "precondition_failed",
    "with_url",
]

# ClientError codes (botocore, untranslated) that are transient.
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestTimeTooSkewed",
        "BadGateway",
        "GatewayTimeout",
        "RequestLimitExceeded",
        "500",
        "502",
        "503",
        "504",
    }
)
_PERMANENT_ERRNO = frozenset(
    {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EINVAL}
)


class RetriesExhaustedError(OSError):
    """A transient failure persisted through every retry (message has the URL)."""


class ShortReadError(OSError):
    """A response ended before the bytes it announced: transient, resumed."""


class ObjectChangedError(OSError):
    """The object was replaced while it was read: permanent (message has the URL)."""


_PERMANENT_OS = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    ObjectChangedError,
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (s3fs chains the botocore error as ``__cause__``)."""
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not seen for seen in out):
        out.append(e)
        e = e.__cause__
    return out


def _status_and_code(exc: BaseException) -> tuple[int | None, str | None] | None:
    """HTTP status and error code of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None
    err = response.get("Error") or {}
    code = str(err.get("Code")) if isinstance(err, Mapping) and err.get("Code") else None
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return (status if isinstance(status, int) else None), code


def precondition_failed(exc: BaseException) -> bool:
    """True for a 412 answer to a conditional (If-Match) request, S3 or HTTP."""
    for e in _chain(exc):
        parts = _status_and_code(e)
        if parts is not None and (parts[0] == 412 or parts[1] == "PreconditionFailed"):
            return True
        if getattr(e, "status", None) == 412:  # aiohttp.ClientResponseError
            return True
    return False


def _client_error_transient(status: int | None, code: str | None) -> bool:
    """4xx other than 408/429/RequestTimeout is permanent whatever the code
    (403 AccessDenied, 404 NoSuchKey/NoSuchBucket); a throttling/server code
    or a 5xx is transient."""
    if code in _TRANSIENT_CODES or (status is not None and status >= 500):
        return not (
            status is not None
            and 400 <= status < 500
            and status not in (408, 429)
            and code != "RequestTimeout"
        )
    return False


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying; False for permanent ones."""
    for e in _chain(exc):
        if isinstance(e, _PERMANENT_OS):
            return False
        parts = _status_and_code(e)
        if parts is not None:
            return _client_error_transient(*parts)
    if isinstance(exc, (ShortReadError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, OSError):
        # s3fs maps 503 SlowDown -> EBUSY, 500 -> EREMOTEIO; other errnos are
        # network trouble unless they say "not found/denied/invalid".
        return exc.errno not in _PERMANENT_ERRNO
    status = getattr(exc, "status", None)  # aiohttp.ClientResponseError (HTTP filesystem)
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    return _network_error(exc)


def _network_error(exc: BaseException) -> bool:
    """aiohttp's ClientError (ClientPayloadError: cut mid-body) and botocore's
    HTTPClientError (ConnectionClosedError, ReadTimeoutError) and
    IncompleteReadError, imported only if installed."""
    try:
        import aiohttp

        if isinstance(exc, aiohttp.ClientError):
            return True
    except ImportError:  # pragma: no cover - aiohttp comes with s3fs/http
        pass
    try:
        from botocore.exceptions import HTTPClientError, IncompleteReadError

        return isinstance(exc, (HTTPClientError, IncompleteReadError))
    except ImportError:  # pragma: no cover
        return False


def with_url(exc: BaseException, url: str) -> BaseException:
    """The same kind of error, its message prefixed with the URL."""
    msg = f"{url}: {type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        try:
            return type(exc)(exc.errno, msg) if exc.errno is not None else type(exc)(msg)
        except Exception:
            return OSError(exc.errno, msg)
    return OSError(msg)

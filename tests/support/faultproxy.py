"""A small fault-injecting HTTP/1.1 TCP proxy for S3 tests.

It sits between an S3 client (s3fs -> aiobotocore -> aiohttp) and the real moto
server on 127.0.0.1 and relays requests unchanged, except when a test arms a
fault for the next matching request(s):

    proxy.fail_next(2, status=503)              # answer with S3-style SlowDown XML
    proxy.cut_next_response(after_bytes=50_000) # close mid-body after 50 kB of body
    proxy.stall_next(3.0)                       # wait 3 s before the response head
    proxy.stall_next(3.0, after_bytes=1000)     # ... or mid-body after 1000 bytes
    proxy.drop_next()                           # close without answering at all

Faults are consumed in the order armed, each by the first request it matches
(``method`` / ``path_contains`` filters). ``proxy.requests`` records every
request (method, target, Range header, status sent, fault applied) so tests can
assert how a client retried and where it resumed.

Keep-alive towards the client is kept (that is what botocore/aiohttp exercise);
towards the server every request uses a fresh ``Connection: close`` connection so
a cut never leaves a half-read upstream socket behind. Messages are framed by
Content-Length or chunked encoding (responses may also end at close).

Bounded by construction: sockets poll with a short timeout, every wait checks
the closing flag and an idle deadline, and ``close()`` shuts all sockets and
joins all threads (raising if one does not end).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from types import TracebackType

__all__ = ["FaultProxy", "RequestRecord"]

_POLL_S = 0.05
_MAX_HEAD = 64 * 1024
_ERROR_CODES = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
}


class _Closed(Exception):
    """The peer closed, the proxy is closing, or a deadline passed."""


class _Cut(Exception):
    """A cut fault fired: drop the client connection now."""


@dataclass
class RequestRecord:
    """One request seen by the proxy, logged on arrival and updated as it is answered."""

    method: str
    target: str
    range: str | None
    fault: str | None  # "fail", "cut", "stall", "drop" or None
    status: int | None = None  # status sent to the client; None until/unless sent
    body_bytes: int = 0  # response body bytes sent to the client (raw, on the wire)


@dataclass
class _Fault:
    kind: str
    remaining: int
    method: str | None
    path_contains: str | None
    status: int = 503
    after_bytes: int | None = None
    seconds: float = 0.0

    def matches(self, method: str, target: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in target
        )


@dataclass
class _Head:
    start: str  # request line or status line
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def without(self, *names: str) -> list[tuple[str, str]]:
        drop = {n.lower() for n in names}
        return [(k, v) for k, v in self.headers if k.lower() not in drop]


def _encode_head(start: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [start, *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


class _Stream:
    """A socket with a read buffer; every blocking call polls the closing flag."""

    def __init__(self, sock: socket.socket, closing: threading.Event, idle_s: float) -> None:
        sock.settimeout(_POLL_S)
        self.sock = sock
        self._closing = closing
        self._idle_s = idle_s
        self._buf = bytearray()

    def _fill(self) -> bool:
        deadline = time.monotonic() + self._idle_s
        while True:
            if self._closing.is_set() or time.monotonic() > deadline:
                raise _Closed
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as e:
                raise _Closed from e
            if not data:
                return False
            self._buf += data
            return True

    def readline(self) -> bytes:
        """One line including its newline; b"" on a clean EOF before any byte."""
        while b"\n" not in self._buf:
            if len(self._buf) > _MAX_HEAD:
                raise _Closed
            if not self._fill():
                if self._buf:
                    raise _Closed
                return b""
        i = self._buf.index(b"\n") + 1
        line = bytes(self._buf[:i])
        del self._buf[:i]
        return line

    def read_some(self, n: int) -> bytes:
        """Up to n buffered/received bytes; b"" only at EOF."""
        if not self._buf and not self._fill():
            return b""
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.read_some(n - len(out))
            if not chunk:
                raise _Closed
            out += chunk
        return bytes(out)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + self._idle_s
        while view:
            if self._closing.is_set() or time.monotonic() > deadline:
                raise _Closed
            try:
                sent = self.sock.send(view)
            except TimeoutError:
                continue
            except OSError as e:
                raise _Closed from e
            view = view[sent:]

    def read_head(self) -> _Head | None:
        """Parse a start line + headers; None on a clean EOF between messages."""
        line = self.readline()
        while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between messages
            line = self.readline()
        if not line:
            return None
        head = _Head(line.decode("latin-1").rstrip("\r\n"))
        size = len(line)
        while True:
            line = self.readline()
            size += len(line)
            if not line or size > _MAX_HEAD:
                raise _Closed
            if line in (b"\r\n", b"\n"):
                return head
            name, _, value = line.decode("latin-1").partition(":")
            head.headers.append((name.strip(), value.strip()))


class _BodySink:
    """Forwards response body bytes to the client, applying a mid-body cut/stall."""

    def __init__(self, out: _Stream, fault: _Fault | None, closing: threading.Event) -> None:
        self.out = out
        self.sent = 0
        self._closing = closing
        kind = fault.kind if fault else None
        self._cut_at = fault.after_bytes if fault and kind == "cut" else None
        self._stall_at = fault.after_bytes if fault and kind == "stall" else None
        self._stall_s = fault.seconds if fault else 0.0

    def write(self, data: bytes) -> None:
        while data:
            limit = len(data)
            if self._stall_at is not None:
                if self.sent >= self._stall_at:
                    self._stall_at = None
                    if self._closing.wait(self._stall_s):
                        raise _Closed
                    continue
                limit = min(limit, self._stall_at - self.sent)
            if self._cut_at is not None:
                if self.sent >= self._cut_at:
                    raise _Cut
                limit = min(limit, self._cut_at - self.sent)
            self.out.sendall(data[:limit])
            self.sent += limit
            data = data[limit:]


def _read_body(
    src: _Stream, head: _Head, write: Callable[[bytes], None], *, until_close: bool
) -> None:
    """Relay one message body (raw bytes, chunk framing included) to ``write``."""
    if "chunked" in (head.get("Transfer-Encoding") or "").lower():
        while True:
            size_line = src.readline()
            if not size_line:
                raise _Closed
            write(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, ended by an empty line
                    line = src.readline()
                    if not line:
                        raise _Closed
                    write(line)
                    if line in (b"\r\n", b"\n"):
                        return
            write(src.read_exact(size + 2))
    length = head.get("Content-Length")
    if length is not None:
        remaining = int(length)
        while remaining:
            chunk = src.read_some(min(remaining, 65536))
            if not chunk:
                raise _Closed
            write(chunk)
            remaining -= len(chunk)
    elif until_close:
        while chunk := src.read_some(65536):
            write(chunk)


def _error_response(status: int, method: str, target: str) -> bytes:
    code, message = _ERROR_CODES.get(status, ("InternalError", "Injected error."))
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{target.split('?')[0]}</Resource>"
        f"<RequestId>{request_id}</RequestId><HostId>faultproxy</HostId></Error>"
    ).encode()
    reason = {503: "Slow Down", 500: "Internal Server Error"}.get(status, "Error")
    headers = [
        ("x-amz-request-id", request_id),
        ("Date", formatdate(usegmt=True)),
        ("Content-Type", "application/xml"),
        ("Content-Length", str(0 if method == "HEAD" else len(body))),
        ("Server", "AmazonS3"),
    ]
    return _encode_head(f"HTTP/1.1 {status} {reason}", headers) + (
        b"" if method == "HEAD" else body
    )


class FaultProxy:
    """Relay 127.0.0.1:<port> -> ``upstream`` with faults armed on demand.

    Use as a context manager (or call ``close()``). ``endpoint`` is the URL to
    give the S3 client instead of the server's.
    """

    def __init__(self, upstream: tuple[str, int], *, idle_s: float = 60.0) -> None:
        self.upstream = upstream
        self._idle_s = idle_s
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._records: list[RequestRecord] = []
        self._connections = 0
        self._socks: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # daemon: a test that forgets close() must not hang interpreter exit
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="faultproxy-accept", daemon=True
        )
        self._acceptor.start()

    # -- arming faults ---------------------------------------------------------

    def _arm(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._faults.append(fault)

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (503 SlowDown, 500 InternalError) without forwarding them."""
        self._arm(_Fault("fail", count, method, path_contains, status=status))

    def cut_next_response(
        self,
        after_bytes: int = 0,
        count: int = 1,
        *,
        method: str | None = "GET",
        path_contains: str | None = None,
    ) -> None:
        """Forward the next ``count`` matching requests but close the connection after the response head and ``after_bytes`` body bytes (no effect if the body is shorter)."""
        self._arm(_Fault("cut", count, method, path_contains, after_bytes=after_bytes))

    def stall_next(
        self,
        seconds: float,
        count: int = 1,
        *,
        after_bytes: int | None = None,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Delay the next ``count`` matching responses by ``seconds``: before the head, or mid-body after ``after_bytes`` body bytes."""
        self._arm(
            _Fault("stall", count, method, path_contains, after_bytes=after_bytes, seconds=seconds)
        )

    def drop_next(
        self, count: int = 1, *, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Close the client connection on the next ``count`` matching requests without any response."""
        self._arm(_Fault("drop", count, method, path_contains))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Armed fault firings not yet consumed (0 means every armed fault fired)."""
        with self._lock:
            return sum(f.remaining for f in self._faults)

    # -- observing -------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    @property
    def connections(self) -> int:
        """Client connections accepted so far."""
        with self._lock:
            return self._connections

    def request_count(self, method: str | None = None) -> int:
        return sum(1 for r in self.requests if method is None or r.method == method)

    def reset_stats(self) -> None:
        with self._lock:
            self._records.clear()
            self._connections = 0

    # -- lifecycle -------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, shut every socket, join every thread."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._acceptor.join(timeout)
        self._listener.close()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in [self._acceptor, *threads] if t.is_alive()]
        if alive:
            raise RuntimeError(f"faultproxy threads did not stop: {alive}")

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(
                target=self._serve, args=(sock,), name="faultproxy-conn", daemon=True
            )
            with self._lock:
                self._connections += 1
                self._socks.add(sock)
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _take_fault(self, method: str, target: str) -> _Fault | None:
        with self._lock:
            for f in self._faults:
                if f.matches(method, target):
                    f.remaining -= 1
                    if f.remaining == 0:
                        self._faults.remove(f)
                    return f
        return None

    def _record(self, method: str, target: str, rng: str | None, kind: str | None) -> RequestRecord:
        rec = RequestRecord(method, target, rng, kind)
        with self._lock:
            self._records.append(rec)
        return rec

    def _serve(self, sock: socket.socket) -> None:
        client = _Stream(sock, self._closing, self._idle_s)
        try:
            while self._serve_one(client):
                pass
        except (_Closed, _Cut, ValueError, OSError):
            pass  # peer gone, fault fired, proxy closing or garbage: drop the connection
        finally:
            with self._lock:
                self._socks.discard(sock)
            sock.close()

    def _serve_one(self, client: _Stream) -> bool:
        """Handle one request on a client connection; False means close it."""
        head = client.read_head()
        if head is None:
            return False
        method, target = (head.start.split(" ") + ["", ""])[:2]
        fault = self._take_fault(method, target)
        kind = fault.kind if fault else None
        rec = self._record(method, target, head.get("Range"), kind)
        if kind == "drop":
            return False
        if (head.get("Expect") or "").lower() == "100-continue":
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = bytearray()
        _read_body(client, head, body.extend, until_close=False)
        keep_alive = (head.get("Connection") or "").lower() != "close"
        if fault is not None and fault.kind == "fail":
            rec.status = fault.status
            client.sendall(_error_response(fault.status, method, target))
            return keep_alive

        fwd = head.without("Connection", "Keep-Alive", "Expect", "Proxy-Connection")
        upstream = _Stream(
            socket.create_connection(self.upstream, timeout=5), self._closing, self._idle_s
        )
        with self._lock:
            self._socks.add(upstream.sock)
        sink = _BodySink(client, fault, self._closing)
        try:
            upstream.sendall(_encode_head(head.start, [*fwd, ("Connection", "close")]) + body)
            resp = upstream.read_head()
            while resp is not None and resp.start.split(" ")[1:2] == ["100"]:
                resp = upstream.read_head()
            if resp is None:
                raise _Closed
            if fault is not None and fault.kind == "stall" and fault.after_bytes is None:
                if self._closing.wait(fault.seconds):
                    raise _Closed
            rec.status = status = int(resp.start.split(" ")[1])
            framed = (
                resp.get("Content-Length") is not None
                or "chunked" in (resp.get("Transfer-Encoding") or "").lower()
            )
            no_body = method == "HEAD" or status in (204, 304)
            keep_alive = keep_alive and (framed or no_body)
            out = resp.without("Connection", "Keep-Alive")
            if not keep_alive:
                out.append(("Connection", "close"))
            client.sendall(_encode_head(resp.start, out))
            if not no_body:
                _read_body(upstream, resp, sink.write, until_close=True)
        finally:
            rec.body_bytes = sink.sent
            with self._lock:
                self._socks.discard(upstream.sock)
            upstream.sock.close()
        return keep_alive

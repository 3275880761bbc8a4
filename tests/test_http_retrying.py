"""The same retrying code path over fsspec's HTTP filesystem, against a real
local HTTP server (Range support and injected faults), no S3 involved."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from streamdag.readers.retry import RetryPolicy, make_fs
from streamdag.readers.retrying import RetryingReader, open_retrying
from streamdag.readers.transient import ObjectChangedError

pytestmark = pytest.mark.timeout(30)

DATA = random.Random(7).randbytes(200_003)
CHUNK = 32 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    faults: list[str]  # consumed by GETs in order: "503", "cut"
    ranges: list[str | None]
    lock: threading.Lock
    data: bytes = DATA
    etag: str = '"v1"'
    if_match: bool = True  # honour If-Match (412); False: a server that ignores it


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send_head(self, status: int, length: int, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        rng = self.headers.get("Range")
        with self.server.lock:
            self.server.ranges.append(rng)
            fault = self.server.faults.pop(0) if self.server.faults else None
        if self.path != "/data.bin":
            self._send_head(404, 0, {})
            return
        if fault == "503":
            self._send_head(503, 0, {})
            return
        data, etag = self.server.data, self.server.etag
        wanted = self.headers.get("If-Match")
        if self.server.if_match and wanted is not None and wanted != etag:
            self._send_head(412, 0, {})
            return
        start, end = 0, len(data)
        if rng:
            lo, hi = rng.split("=")[1].split("-")
            start, end = int(lo), min(int(hi) + 1 if hi else len(data), len(data))
        body = data[start:end]
        extra = {"ETag": etag}
        if rng:
            extra["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        self._send_head(206 if rng else 200, len(body), extra)
        if fault == "cut":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def http_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.faults, server.ranges, server.lock = [], [], threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _url(server: _Server, name: str = "data.bin") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def test_http_exact_bytes_through_cuts_and_503(http_server: _Server) -> None:
    http_server.faults += ["cut", "503", "503", "cut"]
    fs, path = make_fs(_url(http_server))
    r = RetryingReader(
        fs,
        path,
        chunk_size=CHUNK,
        read_ahead=0,
        policy=RetryPolicy(backoff_base=0.01, backoff_max=0.02),
    )
    out = bytearray()
    while chunk := r.read(5000):
        out += chunk
    assert bytes(out) == DATA
    assert r.retries == 4
    # a cut keeps the half received: the retry asks for the other half only
    half, end = CHUNK // 2, CHUNK - 1
    assert http_server.ranges[:5] == [
        f"bytes=0-{end}",
        f"bytes={half}-{end}",
        f"bytes={half}-{end}",
        f"bytes={half}-{end}",
        f"bytes={half + half // 2}-{end}",
    ]
    assert len(http_server.ranges) == -(-len(DATA) // CHUNK) + 4
    assert r.stats.bytes_fetched == len(DATA)


@pytest.mark.parametrize("if_match", [True, False])
def test_http_rewrite_between_ranges_fails(http_server: _Server, if_match: bool) -> None:
    """Refused by the server (412 on If-Match) or, if it ignores If-Match,
    caught by the response's new ETag: the new bytes are never passed on."""
    http_server.if_match = if_match
    fs, path = make_fs(_url(http_server))
    r = RetryingReader(fs, path, chunk_size=CHUNK, read_ahead=0)
    assert r.read(CHUNK) == DATA[:CHUNK]
    http_server.data, http_server.etag = bytes(len(DATA)), '"v2"'
    detail = "412 Precondition Failed" if if_match else 'got ETag "v2"'
    with pytest.raises(ObjectChangedError, match=f"data.bin: the object was replaced .*{detail}"):
        r.read(1)
    assert r.tell() == CHUNK and r.retries == 0


def test_http_404_fails_fast_with_the_url(http_server: _Server) -> None:
    url = _url(http_server, "missing.bin")
    stream = open_retrying(url, policy=RetryPolicy(backoff_base=60.0))
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        stream.read(1)
    assert http_server.ranges == ["bytes=0-262143"]  # one request, no retry


def test_storage_options_come_from_the_lister_through_single_input_nodes() -> None:
    from streamdag.datapipes.file_lister import FileLister

    opts = {"client_kwargs": {"endpoint_url": "http://127.0.0.1:1"}}
    lister = FileLister("s3://b/shards/", "*.tar", storage_options=opts)
    dp = lister.shuffle(buffer_size=4).sharding_filter().open_files(retry=True)
    assert dp.node.params["storage_options"] == opts
    assert dp.node.params["shards_ahead"] == 1


def test_close_interrupts_a_backoff(http_server: _Server) -> None:
    """close() wakes a fetch thread sleeping in a backoff (of ten minutes here)."""
    http_server.faults += ["503"] * 50
    fs, path = make_fs(_url(http_server))
    r = RetryingReader(
        fs,
        path,
        chunk_size=CHUNK,
        read_ahead=1,
        policy=RetryPolicy(max_retries=20, backoff_base=600.0, backoff_max=600.0),
        seed=0,
    )  # its first backoff is 8 minutes
    while r.retries == 0:  # the test's timeout bounds this wait
        time.sleep(0.01)
    threads = list(r._pool._threads) if r._pool else []
    r.close()
    for t in threads:
        t.join()  # the test's timeout fails a thread left sleeping
    assert threads and r.retries == 1 and len(http_server.ranges) == 1


def test_local_edge_cases(tmp_path: Any) -> None:
    import fsspec

    fs = fsspec.filesystem("file")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with RetryingReader(fs, str(empty)) as r:
        assert r.read() == b"" and r.size == 0
    full = tmp_path / "full"
    full.write_bytes(DATA)
    for ra in (0, 1, 4):
        with RetryingReader(fs, str(full), chunk_size=1000, read_ahead=ra) as r:
            assert r.read(10) == DATA[:10]
            assert r.readall() == DATA[10:]
            r.seek(-5, 2)
            assert r.read() == DATA[-5:]
            r.seek(1500)
            got = r.read(2000)  # raw read: up to the end of one chunk
            assert got and got == DATA[1500 : 1500 + len(got)]
            assert r.tell() == 1500 + len(got)
    with pytest.raises(ValueError):
        RetryingReader(fs, str(full), chunk_size=0)

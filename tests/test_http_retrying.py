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

from streamdag.readers.retrying import RetryingReader, RetryPolicy, make_fs, open_retrying

pytestmark = pytest.mark.timeout(30)

DATA = random.Random(7).randbytes(200_003)
CHUNK = 32 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    faults: list[str]  # consumed by GETs in order: "503", "cut"
    ranges: list[str | None]
    lock: threading.Lock


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

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        if self.path != "/data.bin":
            self._send_head(404, 0, {})
            return
        self._send_head(200, len(DATA), {})

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
        start, end = 0, len(DATA)
        if rng:
            lo, hi = rng.split("=")[1].split("-")
            start, end = int(lo), (int(hi) + 1 if hi else len(DATA))
        body = DATA[start:end]
        self._send_head(206 if rng else 200, len(body),
                        {"Content-Range": f"bytes {start}-{end - 1}/{len(DATA)}"} if rng else {})
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
    r = RetryingReader(fs, path, chunk_size=CHUNK, read_ahead=2,
                       policy=RetryPolicy(backoff_base=0.01, backoff_max=0.02))
    out = bytearray()
    while chunk := r.read(5000):
        out += chunk
    assert bytes(out) == DATA
    assert r.retries == 4
    assert len(http_server.ranges) == -(-len(DATA) // CHUNK) + 4
    assert all(rng and rng.startswith("bytes=") for rng in http_server.ranges)


def test_http_404_fails_fast_with_the_url(http_server: _Server) -> None:
    url = _url(http_server, "missing.bin")
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        open_retrying(url, policy=RetryPolicy(backoff_base=5.0))


def test_storage_options_come_from_the_lister_through_single_input_nodes() -> None:
    from streamdag.readers.file_lister import FileLister
    from streamdag.readers.retrying import open_files_retrying

    opts = {"client_kwargs": {"endpoint_url": "http://127.0.0.1:1"}}
    lister = FileLister("s3://b/shards/", "*.tar", storage_options=opts)
    dp = open_files_retrying(lister.shuffle(buffer_size=4).sharding_filter())
    assert dp.node.params["storage_options"] == opts
    assert dp.node.params["shards_ahead"] == 1


def test_close_interrupts_a_backoff(http_server: _Server) -> None:
    http_server.faults += ["503"] * 50
    fs, path = make_fs(_url(http_server))
    r = RetryingReader(fs, path, chunk_size=CHUNK, read_ahead=1,
                       policy=RetryPolicy(max_retries=20, backoff_base=2.0, backoff_max=2.0))
    deadline = time.monotonic() + 5
    while r.retries == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert r.retries >= 1  # now sleeping in a backoff of up to 2 s
    threads = list(r._pool._threads) if r._pool else []
    t0 = time.monotonic()
    r.close()
    for t in threads:
        t.join(1.0)
        assert not t.is_alive()
    assert time.monotonic() - t0 < 1.0


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
            assert got and got == DATA[1500:1500 + len(got)]
            assert r.tell() == 1500 + len(got)
    with pytest.raises(ValueError):
        RetryingReader(fs, str(full), chunk_size=0)

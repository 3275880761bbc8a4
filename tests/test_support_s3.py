"""The S3 test fixtures work against real s3fs, and pin down how s3fs reacts to faults.

The fault tests document s3fs 2026.9 / aiobotocore 3.10 / aiohttp 3.14
behaviour that streamdag's retry layer builds on (see docs/s3-notes.md). If an
upgrade changes one of them, the notes need the same update.
"""

from __future__ import annotations

import errno
import gc
import http.client
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import botocore.exceptions
import fsspec
import pytest
from fsspec.exceptions import FSTimeoutError

from tests.support import s3 as s3_support
from tests.support.faultproxy import FaultProxy
from tests.support.s3 import make_fs, upload_tree

# The fixtures, bound here so this module works with or without tests/conftest.py
# importing them (assignments, not imports: ruff F811 would flag the latter).
s3_server = s3_support.s3_server
s3_env = s3_support.s3_env
s3_storage_options = s3_support.s3_storage_options
s3_fs = s3_support.s3_fs
s3_bucket = s3_support.s3_bucket
s3_proxy = s3_support.s3_proxy

pytestmark = [pytest.mark.s3, pytest.mark.timeout(30)]

DATA = random.Random(0).randbytes(300_000)
NO_BOTO_RETRY = {"retries": {"total_max_attempts": 1}}  # isolate s3fs's own retries
_ENV_AT_IMPORT = os.environ.get("AWS_ENDPOINT_URL")


@pytest.fixture
def obj(s3_fs: Any, s3_bucket: str) -> str:
    path = f"{s3_bucket}/dir/obj.bin"
    s3_fs.pipe_file(path, DATA)
    return path


def proxied(proxy: FaultProxy, path: str, *, retries: int = 5, **config: Any) -> Any:
    """An s3fs on the proxy, with a warm keep-alive connection and clean stats."""
    fs = make_fs(proxy.endpoint, retries=retries, config_kwargs={**NO_BOTO_RETRY, **config})
    fs.info(path)
    proxy.reset_stats()
    return fs


def gets(proxy: FaultProxy) -> list[tuple[str | None, int | None, str | None]]:
    return [(r.range, r.status, r.fault) for r in proxy.requests if r.method == "GET"]


# -- fixtures --------------------------------------------------------------


def test_upload_list_read_back(s3_fs: Any, s3_bucket: str, tmp_path: Path) -> None:
    files = {"a.bin": DATA, "sub/b.txt": b"hello\n", "sub/deeper/c.bin": DATA[:1000]}
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    keys = upload_tree(s3_fs, tmp_path, f"s3://{s3_bucket}/shards")
    want = sorted(f"{s3_bucket}/shards/{rel}" for rel in files)
    assert [k.removeprefix("s3://") for k in keys] == want
    assert s3_fs.find(s3_bucket) == want
    for rel, data in files.items():
        path = f"{s3_bucket}/shards/{rel}"
        assert s3_fs.cat_file(path) == data
        assert s3_fs.cat_file(path, start=3, end=10) == data[3:10]  # end exclusive
        with s3_fs.open(path, "rb", block_size=4096) as f:
            f.seek(5)
            assert f.read(100) == data[5:105]


def test_storage_options_and_bare_urls(s3_storage_options: dict[str, Any], obj: str) -> None:
    with fsspec.open(f"s3://{obj}", "rb", **s3_storage_options) as f:
        assert f.read() == DATA
    # s3_env points AWS_ENDPOINT_URL etc. at moto, so option-less URLs work too.
    fs, path = fsspec.core.url_to_fs(f"s3://{obj}")
    assert fs.cat_file(path) == DATA


def test_env_is_restored_after_s3_tests() -> None:
    assert os.environ.get("AWS_ENDPOINT_URL") == _ENV_AT_IMPORT


def test_proxy_relays_with_keep_alive(s3_proxy: FaultProxy, s3_bucket: str) -> None:
    fs = make_fs(s3_proxy.endpoint)
    fs.pipe_file(f"{s3_bucket}/x", DATA)
    assert fs.ls(s3_bucket, detail=False) == [f"{s3_bucket}/x"]
    for _ in range(3):
        assert fs.cat_file(f"{s3_bucket}/x") == DATA
    assert s3_proxy.request_count("GET") >= 4
    assert s3_proxy.connections == 1  # one pooled connection reused throughout


# -- 5xx -------------------------------------------------------------------


def test_503_slowdown_is_retried_by_s3fs_itself(s3_proxy: FaultProxy, obj: str) -> None:
    fs = proxied(s3_proxy, obj)
    s3_proxy.fail_next(2, status=503, method="GET")
    assert fs.cat_file(obj) == DATA
    assert gets(s3_proxy) == [(None, 503, "fail"), (None, 503, "fail"), (None, 200, None)]


def test_503_when_retries_exhausted_is_oserror_ebusy(s3_proxy: FaultProxy, obj: str) -> None:
    fs = proxied(s3_proxy, obj, retries=2)
    s3_proxy.fail_next(5, status=503, method="GET")
    with pytest.raises(OSError) as info:
        fs.cat_file(obj)
    assert info.value.errno == errno.EBUSY
    assert isinstance(info.value.__cause__, botocore.exceptions.ClientError)
    assert s3_proxy.request_count("GET") == 2


def test_500_is_not_retried_by_s3fs_only_by_botocore(s3_proxy: FaultProxy, obj: str) -> None:
    fs = proxied(s3_proxy, obj)
    s3_proxy.fail_next(1, status=500, method="GET")
    with pytest.raises(OSError) as info:
        fs.cat_file(obj)
    assert info.value.errno == errno.EREMOTEIO  # InternalError, no s3fs retry
    assert s3_proxy.request_count("GET") == 1

    fs = make_fs(s3_proxy.endpoint, retries=1)  # botocore default: "legacy", 5 attempts
    s3_proxy.reset_stats()
    s3_proxy.fail_next(1, status=500, method="GET")
    assert fs.cat_file(obj) == DATA
    assert gets(s3_proxy) == [(None, 500, "fail"), (None, 200, None)]


# -- cut mid-body ----------------------------------------------------------


def test_cut_cat_file_refetches_whole_range(s3_proxy: FaultProxy, obj: str) -> None:
    fs = proxied(s3_proxy, obj)
    s3_proxy.cut_next_response(after_bytes=50_000)
    assert fs.cat_file(obj, start=1000, end=200_000) == DATA[1000:200_000]
    rng = "bytes=1000-199999"
    assert gets(s3_proxy) == [(rng, 206, "cut"), (rng, 206, None)]  # not resumed at 51000


def test_cut_surfaces_as_raw_client_payload_error(s3_proxy: FaultProxy, obj: str) -> None:
    fs = proxied(s3_proxy, obj, retries=1)
    s3_proxy.cut_next_response(after_bytes=50_000)
    with pytest.raises(aiohttp.ClientPayloadError, match="received 50000 of 300000") as info:
        fs.cat_file(obj)
    assert not isinstance(info.value, OSError)  # not translated: catch it explicitly


def test_cut_in_open_file_leaves_handle_usable(s3_proxy: FaultProxy, obj: str) -> None:
    fs = proxied(s3_proxy, obj, retries=1)
    with fs.open(obj, "rb", block_size=100_000) as f:
        head = f.read(1000)
        s3_proxy.cut_next_response(after_bytes=10_000)
        with pytest.raises(aiohttp.ClientPayloadError):
            f.read(150_000)
        assert f.tell() == 1000  # position unchanged: retry the read (or reopen + seek)
        assert head + f.read(150_000) == DATA[:151_000]
    assert [g[0] for g in gets(s3_proxy)][-2:] == ["bytes=101000-250999"] * 2


def test_cut_get_file_resumes_at_byte_offset(
    s3_proxy: FaultProxy, obj: str, tmp_path: Path
) -> None:
    fs = proxied(s3_proxy, obj)
    s3_proxy.cut_next_response(after_bytes=50_000)
    fs.get_file(obj, str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == DATA
    assert gets(s3_proxy) == [(None, 200, "cut"), ("bytes=50000-", 206, None)]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_cut_in_concurrent_cat_file_is_not_retried(s3_proxy: FaultProxy, obj: str) -> None:
    # Objects larger than chunksize (default: default_block_size, 50 MiB) take this path.
    fs = proxied(s3_proxy, obj, retries=5)
    s3_proxy.cut_next_response(after_bytes=10_000)
    with pytest.raises(aiohttp.ClientPayloadError):
        fs.cat_file(obj, chunksize=100_000)
    del fs
    gc.collect()  # s3fs leaks the failed response's connection: warn here, not later


# -- dropped connections and stalls ----------------------------------------


def test_drop_before_response(s3_proxy: FaultProxy, obj: str) -> None:
    fs = proxied(s3_proxy, obj, retries=1)
    s3_proxy.drop_next(1, method="GET")
    assert fs.cat_file(obj) == DATA  # aiohttp re-sends an idempotent request once
    s3_proxy.drop_next(2, method="GET")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        fs.cat_file(obj)
    assert [f for _, _, f in gets(s3_proxy)] == ["drop", None, "drop", "drop"]


def test_stall_before_headers_is_read_timeout(s3_proxy: FaultProxy, obj: str) -> None:
    fs = proxied(s3_proxy, obj, retries=1, read_timeout=0.5)
    s3_proxy.stall_next(1.5, method="GET")
    with pytest.raises(botocore.exceptions.ReadTimeoutError):  # an OSError/TimeoutError
        fs.cat_file(obj)
    fs = proxied(s3_proxy, obj, read_timeout=0.5)
    s3_proxy.stall_next(1.5, method="GET")
    assert fs.cat_file(obj) == DATA  # s3fs retries HTTPClientError
    assert [f for _, _, f in gets(s3_proxy)] == ["stall", None]


def test_stall_mid_body(s3_proxy: FaultProxy, obj: str) -> None:
    fs = proxied(s3_proxy, obj, retries=1, read_timeout=0.5)
    s3_proxy.stall_next(0.2, after_bytes=50_000, method="GET")
    assert fs.cat_file(obj) == DATA  # a stall shorter than read_timeout is harmless
    s3_proxy.stall_next(1.5, after_bytes=50_000, method="GET")
    with pytest.raises(FSTimeoutError) as info:
        fs.cat_file(obj)
    assert isinstance(info.value.__cause__, botocore.exceptions.ReadTimeoutError)
    fs = proxied(s3_proxy, obj, read_timeout=0.5)
    s3_proxy.stall_next(1.5, after_bytes=50_000, method="GET")
    assert fs.cat_file(obj) == DATA  # default retries: whole GET re-issued


# -- the proxy itself ------------------------------------------------------


class _ChunkedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # echo the body back, chunked
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(body), 7):
            piece = body[i : i + 7]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def chunked_upstream() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChunkedHandler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield ("127.0.0.1", server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_proxy_chunked_keep_alive_and_503(chunked_upstream: tuple[str, int]) -> None:
    with FaultProxy(chunked_upstream) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        for body in (b"first body, longer than one chunk", b"second"):
            conn.request("POST", "/echo", body=body)
            assert conn.getresponse().read() == body
        proxy.fail_next(1, status=503)
        conn.request("POST", "/echo", body=b"x")
        resp = conn.getresponse()
        assert resp.status == 503 and b"<Code>SlowDown</Code>" in resp.read()
        conn.close()
        assert proxy.connections == 1 and proxy.request_count() == 3


def test_proxy_close_is_bounded_during_a_stall(chunked_upstream: tuple[str, int]) -> None:
    proxy = FaultProxy(chunked_upstream)
    proxy.stall_next(60)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
        deadline = time.monotonic() + 5
        while proxy.pending_faults and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        proxy.close()  # raises if any thread is left running
        assert time.monotonic() - t0 < 2
        assert sock.recv(100) == b""  # connection closed, nothing sent

"""Pytest fixtures for S3 tests against a real S3-protocol server (moto) on 127.0.0.1.

Project rule: S3 tests talk to a real server over HTTP, the way s3fs tests
itself, never to mocks of s3fs/botocore. Make the fixtures visible to all tests
with one line in tests/conftest.py::

    from tests.support.s3 import *  # noqa: F403  (s3_server, s3_env, s3_storage_options, s3_fs, s3_bucket, s3_proxy)

Fixtures:

- ``s3_server`` (session) -> endpoint URL ``"http://127.0.0.1:<port>"``.
- ``s3_env`` (function) -> endpoint URL; dummy credentials, region, no-proxy
  and ``AWS_ENDPOINT_URL`` in os.environ for this test only (monkeypatch
  restores them), so bare ``s3://`` URLs and worker processes reach moto.
- ``s3_storage_options`` (function) -> fsspec ``storage_options`` dict for moto.
- ``s3_fs`` (function) -> a fresh, uncached ``s3fs.S3FileSystem`` on moto.
- ``s3_bucket`` (function) -> name of a new empty bucket, removed afterwards.
- ``s3_proxy`` (function) -> a ``FaultProxy`` in front of the server; build a
  client on it with ``make_fs(s3_proxy.endpoint, ...)``.

Helpers: ``storage_options(endpoint)``, ``make_fs(endpoint, retries=None,
**storage_options)``, ``upload_file(fs, local, url)``, ``upload_tree(fs,
local_dir, url_prefix)``, ``new_bucket_name()``. Mark S3 tests with
``@pytest.mark.s3``.

The server is ``python -m moto.server`` in a subprocess rather than moto's
in-process ThreadedMotoServer: a ``mock_aws`` anywhere else in the test process
resets moto's global backends (wiping our buckets), the server does not compete
for the test process's GIL, and forked/spawned DataLoader workers reach it
without inheriting a server thread. Startup costs about half a second.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.faultproxy import FaultProxy

__all__ = [
    "s3_server",
    "s3_env",
    "s3_storage_options",
    "s3_fs",
    "s3_bucket",
    "s3_proxy",
    "storage_options",
    "make_fs",
    "upload_file",
    "upload_tree",
    "new_bucket_name",
]

KEY = "testing"
SECRET = "testing"
REGION = "us-east-1"
_START_TIMEOUT_S = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_http(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)  # ignores *_PROXY env
    try:
        conn.request("GET", "/moto-api/")
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto on a free port; retry on a port race. Returns (process, endpoint)."""
    for _ in range(3):
        port = _free_port()
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers_http(port):
                return proc, f"http://127.0.0.1:{port}"
            time.sleep(0.05)
        _stop(proc)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"moto server did not start; log {log}:\n{tail}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server for the whole session; yields its endpoint URL."""
    proc, endpoint = _start_moto(tmp_path_factory.mktemp("moto") / "server.log")
    try:
        yield endpoint
    finally:
        _stop(proc)


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point AWS env config at moto for one test (restored afterwards)."""
    import s3fs

    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": s3_server,  # honoured by botocore >= 1.31
        "AWS_EC2_METADATA_DISABLED": "true",  # never probe 169.254.169.254
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(
            name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1,localhost"]))
        )
    yield s3_server
    # Instances created from the env (bare "s3://" URLs) are cached by fsspec.
    s3fs.S3FileSystem.clear_instance_cache()


def storage_options(endpoint: str, **extra: Any) -> dict[str, Any]:
    """fsspec storage_options for moto (or a proxy in front of it).

    Listings cache is off so a pipeline never sees a stale listing of objects
    uploaded by the test through another instance.
    """
    opts: dict[str, Any] = {
        "key": KEY,
        "secret": SECRET,
        # No region_name: s3fs.mkdir would send it as LocationConstraint, which
        # S3 (and moto) reject for us-east-1; botocore signs S3 as us-east-1.
        "client_kwargs": {"endpoint_url": endpoint},
        "use_listings_cache": False,
    }
    opts.update(extra)
    return opts


def make_fs(endpoint: str, *, retries: int | None = None, **extra: Any) -> Any:
    """A fresh (never cached) S3FileSystem on ``endpoint``.

    ``retries`` sets s3fs's own retry count (a class attribute, default 5, not a
    constructor argument); botocore's is ``config_kwargs={"retries": {...}}``.
    """
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **storage_options(endpoint, **extra))
    if retries is not None:
        fs.retries = retries
    return fs


@pytest.fixture
def s3_storage_options(s3_env: str) -> dict[str, Any]:
    return storage_options(s3_env)


@pytest.fixture
def s3_fs(s3_env: str) -> Any:
    return make_fs(s3_env)


def new_bucket_name() -> str:
    return f"streamdag-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_bucket(s3_fs: Any) -> Iterator[str]:
    """A new empty bucket (unique name, so no cross-test listing leaks)."""
    name = new_bucket_name()
    s3_fs.mkdir(name)
    yield name
    try:
        s3_fs.rm(name, recursive=True)
    except OSError:
        pass


@pytest.fixture
def s3_proxy(s3_server: str) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the moto server (closed afterwards)."""
    parts = urlsplit(s3_server)
    assert parts.hostname and parts.port
    with FaultProxy((parts.hostname, parts.port)) as proxy:
        yield proxy


def upload_file(fs: Any, local: str | os.PathLike[str], url: str) -> str:
    """Upload one local file to ``bucket/key`` and return that path."""
    fs.put_file(os.fspath(local), url)
    fs.invalidate_cache()
    return url


def upload_tree(fs: Any, local_dir: str | os.PathLike[str], url_prefix: str) -> list[str]:
    """Upload every file under ``local_dir`` keeping relative paths; returns sorted keys."""
    root = Path(local_dir)
    prefix = url_prefix.rstrip("/")
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    for p in paths:
        fs.put_file(os.fspath(p), f"{prefix}/{p.relative_to(root).as_posix()}")
    fs.invalidate_cache()
    return [f"{prefix}/{p.relative_to(root).as_posix()}" for p in paths]

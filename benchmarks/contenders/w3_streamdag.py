"""W3 streamdag from S3: the W2 pipeline with the shards in a moto server bucket
on 127.0.0.1, opened with ``open_files(mode="b", retry=True)`` (retrying, read-ahead
streams with their default sizes, docs/s3.md), run by the same reading service
as the W2 streamdag contender (2 worker processes), its reference.

``make`` (untimed setup) starts ``python -m moto.server`` on a free port,
uploads the W2 shards and stops the server at exit. The server is a child of
this process, so its memory counts in the process tree's PSS and its CPU in the
repetition's CPU/item.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.contenders.w2_streamdag import image_batches, run_in_workers, setup_imports
from benchmarks.workloads import Inputs

BUCKET = "streamdag-bench-w3"


def _start_moto() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    atexit.register(_stop, proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto server did not start")


def _stop(proc: subprocess.Popen) -> None:
    """Stop and reap the server: reaped, its CPU counts as the repetition's, not
    as others' load (an orphan would be reaped by init)."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _options(endpoint: str) -> dict[str, Any]:
    return {
        "key": "bench",
        "secret": "bench",
        "client_kwargs": {"endpoint_url": endpoint},
        "use_listings_cache": False,
    }


def make(inputs: Inputs) -> Callable[[], Iterator]:
    import s3fs

    sd = setup_imports()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    opts = _options(_start_moto())
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
    fs.mkdir(BUCKET)
    for shard in inputs.shards:
        fs.put_file(shard, f"{BUCKET}/shards/{Path(shard).name}")

    def epoch() -> Iterator:
        dp = (
            sd.FileLister(f"s3://{BUCKET}/shards/", masks="*.tar", storage_options=opts)
            .shuffle()
            .sharding_filter()
        )
        return run_in_workers(image_batches(dp.open_files(mode="b", retry=True), inputs), inputs)

    return epoch

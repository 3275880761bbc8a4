"""Files and a local HTTP server for the reader/IO ops ported from torchdata
(load_from_bz2/xz, extract, TFRecord, read_from_http, the on-disk cache)."""

from __future__ import annotations

import bz2
import functools
import importlib.util
import lzma
import struct
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class FileServer(ThreadingHTTPServer):
    """Serves the files of ``root`` (404 for others) and records the paths asked for."""

    daemon_threads = True
    root: Path
    hits: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits.append(self.path)
        target = self.server.root / self.path.lstrip("/")
        if not target.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def start_server(root: Path) -> FileServer:
    server = FileServer(("127.0.0.1", 0), _Handler)
    server.root, server.hits = root, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@functools.cache
def served(root: str) -> FileServer:
    """One server per folder for the whole test process (the resume and
    round-trip tables build their pipelines from a folder only)."""
    return start_server(Path(root))


# -- TFRecord files, written without TensorFlow ----------------------------
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, body: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(body)) + body


def feature(values: list[Any]) -> bytes:
    """A ``tf.train.Feature`` of bytes, floats or ints (by the first value)."""
    if values and isinstance(values[0], bytes):
        return _field(1, b"".join(_field(1, v) for v in values))
    if values and isinstance(values[0], float):
        return _field(2, _field(1, struct.pack(f"<{len(values)}f", *values)))
    return _field(3, _field(1, b"".join(_varint(v) for v in values)))


def _features(features: Mapping[str, bytes]) -> bytes:
    return b"".join(_field(1, _field(1, k.encode()) + _field(2, v)) for k, v in features.items())


def example(features: Mapping[str, list[Any]]) -> bytes:
    """A serialized ``tf.train.Example``."""
    return _field(1, _features({k: feature(v) for k, v in features.items()}))


def sequence_example(
    context: Mapping[str, list[Any]], lists: Mapping[str, list[list[Any]]]
) -> bytes:
    """A serialized ``tf.train.SequenceExample``."""
    feature_lists = b"".join(
        _field(1, _field(1, k.encode()) + _field(2, b"".join(_field(1, feature(f)) for f in v)))
        for k, v in lists.items()
    )
    return _field(1, _features({k: feature(v) for k, v in context.items()})) + _field(
        2, feature_lists
    )


def tfrecord(records: list[bytes]) -> bytes:
    """The TFRecord framing of ``records``."""
    from streamdag.readers.tfrecord import masked_crc

    out = []
    for record in records:
        length = struct.pack("<Q", len(record))
        out += [
            length,
            struct.pack("<I", masked_crc(length)),
            record,
            struct.pack("<I", masked_crc(record)),
        ]
    return b"".join(out)


def examples(n: int, start: int = 0) -> list[bytes]:
    return [
        example({"id": [start + i], "score": [0.5 * i, 1.0], "name": [f"n{i}".encode()]})
        for i in range(n)
    ]


@functools.cache
def io_files(root: str) -> Path:
    """``root``/td_io with compressed, TFRecord and served files (made once)."""
    d = Path(root) / "td_io"
    d.mkdir(exist_ok=True)
    (d / "a.txt.bz2").write_bytes(bz2.compress(b"bz one\nbz two\n"))
    (d / "b.txt.bz2").write_bytes(bz2.compress(b"bz three\n"))
    (d / "a.txt.xz").write_bytes(lzma.compress(b"xz one\nxz two\n"))
    if importlib.util.find_spec("crc32c") is not None:  # the tfrecord extra
        (d / "r1.tfrecord").write_bytes(tfrecord(examples(3)))
        (d / "r2.tfrecord").write_bytes(tfrecord(examples(2, start=3)))
    web = d / "web"
    web.mkdir(exist_ok=True)
    for i in range(4):
        (web / f"f{i}.txt").write_bytes(f"line {i}a\nline {i}b\n".encode())
    return d

"""check_hash (torchdata's ``HashChecker``): (path, data or stream) ->
the same pair, once the data's sha256/md5 matched ``hash_dict[path]``.

A stream is read to the end to hash it; with ``rewind`` it is given on
from its start: sought back where it can seek, else (an HTTP body) the
bytes read are given on as a ``BytesIO`` (torchdata failed there). A path
missing from ``hash_dict`` or a mismatch is an error (RuntimeError, as in
torchdata) naming the file."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

from ..core.policy import SKIP, not_skipped
from ..core.streams import close_quietly
from ..runtime.node import RuntimeNode
from ..runtime.policy import ErrorPolicy

HASH_TYPES = ("sha256", "md5")


class HashMismatch(RuntimeError):
    """The data of a file does not have the hash it should."""


def check_digest(path: str, digest: str, hash_dict: dict[str, str]) -> None:
    """Raise HashMismatch unless ``hash_dict[path] == digest``."""
    if path not in hash_dict:
        raise HashMismatch(f"no hash given for file {path!r} in hash_dict")
    if digest != hash_dict[path]:
        raise HashMismatch(
            f"the computed hash {digest} of {path!r} does not match the "
            f"expected hash {hash_dict[path]}: delete the file and retry"
        )


def file_digest(path: str, hash_type: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, hash_type).hexdigest()


class CheckHashNode(ErrorPolicy, RuntimeNode):
    """Stateless, one output per input."""

    def iterator(self) -> Iterator[tuple[str, Any]]:
        return filter(not_skipped, map(self._check, self.inputs[0].iterator()))

    def _check(self, item: Any) -> Any:
        if type(item) is not tuple or len(item) != 2:
            msg = f"check_hash expects (path, data or stream) pairs, got {type(item).__name__}"
            self.reraise(TypeError(msg), f"element {str(item)[:80]!r}")
        path, data = item
        p = self.params
        digest = hashlib.new(p["hash_type"])
        try:
            if isinstance(data, (bytes, bytearray, str)):
                digest.update(data.encode() if isinstance(data, str) else data)
            else:
                data = self._hashed_stream(data, digest)
            check_digest(path, digest.hexdigest(), p["hash_dict"])
        except Exception as exc:
            close_quietly(data)
            self.fail(exc, repr(path))
            return SKIP
        return path, data

    def _hashed_stream(self, stream: Any, digest: Any) -> Any:
        """Hash the rest of ``stream``; the stream to give on."""
        if not self.params["rewind"]:
            for chunk in stream:
                digest.update(chunk)
            return stream
        seekable = getattr(stream, "seekable", None)
        if seekable is not None and seekable():
            for chunk in stream:
                digest.update(chunk)
            stream.seek(0)
            return stream
        parts = []
        for chunk in stream:
            digest.update(chunk)
            parts.append(chunk)
        close_quietly(stream)
        return io.BytesIO(b"".join(parts))

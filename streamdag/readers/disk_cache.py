"""on_disk_cache / end_caching: torchdata's download-and-cache idiom.

    cache = urls.on_disk_cache(filepath_fn=to_path)
    files = cache.read_from_http().end_caching(mode="wb", same_filepath_fn=True)

In the graph both are plain nodes: ``end_caching`` reads the end of the
branch (its first input) and names its ``on_disk_cache`` node as its second
input. At run time the ``on_disk_cache`` node sorts the elements: one whose
file ``filepath_fn(element)`` is on disk (and passes ``hash_dict`` and
``extra_check_fn``) is noted as cached, the others go down the branch (the
download). ``end_caching`` writes what the branch yields to
``filepath_fn(metadata)`` and yields the paths written, then the cached
paths, in torchdata's order: written first, then cached, each in input order.

An element whose branch yields files other than ``filepath_fn(element)``
(an archive extracted) is cached as the list of those files, written once
all of them are (``<path>.torchdata_list``, the name torchdata uses, so a
cache made by torchdata is read as is).

Several workers may run the same pipeline over the same elements: the one
that creates ``<path>.promise`` (atomically) writes the file, the others wait
for the promise to go (``timeout``); a promise whose process on this host has
died is taken over. Files are written under a temporary name and renamed,
so an interrupted run never leaves a partial file that looks cached.

Resume: the cache node's state is its input's and the cached paths noted;
``end_caching``'s is its phase and position, and the files written for the
element in progress. The branch between them must yield its outputs as it
reads its input (no shuffle or prefetch there), as in torchdata."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..runtime.node import ResumableNode
from .hash_check import check_digest, file_digest

LIST_SUFFIX = ".torchdata_list"
PROMISE_SUFFIX = ".promise"
_HOST = socket.gethostname()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def _stale(promise: str) -> bool:
    """The promise was made by a process of this host that is gone."""
    try:
        with open(promise) as f:
            host, _, pid = f.read().rpartition(" ")
    except OSError:
        return False
    return host == _HOST and pid.isdigit() and not _alive(int(pid))


def claim(path: str) -> bool:
    """Create ``path``'s promise; False if another live process holds it."""
    promise = path + PROMISE_SUFFIX
    os.makedirs(os.path.dirname(promise) or ".", exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(promise, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _stale(promise):
                return False
            _unlink(promise)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{_HOST} {os.getpid()}")
        return True
    return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_atomically(path: str, data: Any, mode: str) -> None:
    """Write under a temporary name, then rename: readers see all or nothing."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


class OnDiskCacheNode(ResumableNode):
    """Passes on the elements to write; notes the cached ones for ``end_caching``."""

    def setup(self) -> None:
        super().setup()
        self.ended = False  # set by the end_caching node reading this one
        self.cached: list[tuple[str, str]] = []  # ("file" | "list", path)
        self.claimed: list[str] = []  # paths whose promise this node holds, oldest first

    def filepath(self, element: Any) -> str:
        fn = self.params["filepath_fn"]
        path = element if fn is None else fn(element)
        if not isinstance(path, str):
            raise TypeError(f"filepath_fn must return one path (str), got {type(path).__name__}")
        return path

    def iterator(self) -> Iterator[Any]:
        if not self.ended:
            raise RuntimeError("on_disk_cache: call end_caching() downstream before iterating")
        self.adopt_restored()
        return self._run()

    def adopt_restored(self) -> None:
        restored = self.take_restored()
        self.cached = [tuple(e) for e in restored["cached"]] if restored else []

    def _run(self) -> Iterator[Any]:
        for element in self.inputs[0].iterator():
            path = self.filepath(element)
            if os.path.exists(path + LIST_SUFFIX):
                self.cached.append(("list", path))
            elif self._valid(path) or not claim(path):
                self.cached.append(("file", path))  # on disk, or being written elsewhere
            else:
                self.claimed.append(path)
                yield element

    def _valid(self, path: str) -> bool:
        p = self.params
        if not os.path.exists(path):
            return False
        hashes = p["hash_dict"]
        if hashes is not None and (
            path not in hashes or file_digest(path, p["hash_type"]) != hashes[path]
        ):
            return False
        check = p["extra_check_fn"]
        return check is None or bool(check(path))

    def user_functions(self) -> list[Any]:
        return [f for f in (self.params["filepath_fn"], self.params["extra_check_fn"]) if f]

    def release(self, path: str) -> None:
        self.claimed.remove(path)
        _unlink(path + PROMISE_SUFFIX)

    def live_state(self) -> dict[str, Any]:
        return {"in": self.inputs[0].state(), "cached": list(self.cached)}

    def restore(self, state: Any) -> None:
        super().restore(state)
        if state is not None:
            self.inputs[0].restore(state["in"])

    def close(self) -> None:
        """Promises of files not written: give them back to other workers and runs."""
        for path in list(self.claimed):
            self.release(path)


class EndCachingNode(ResumableNode):
    """Writes the branch's (metadata, data) to files and yields their paths,
    then the cached paths."""

    def setup(self) -> None:
        super().setup()
        self.holder: OnDiskCacheNode = self.inputs[1]  # type: ignore[assignment]
        self.holder.ended = True
        p = self.params
        self._path_fn = (
            self.holder.params["filepath_fn"] if p["same_filepath_fn"] else p["filepath_fn"]
        )
        self._mode = p["mode"] if "w" in p["mode"] else "w" + p["mode"]

    def iterator(self) -> Iterator[str]:
        restored = self.take_restored()
        own = restored["own"] if restored else ["todo", 0, 0, None, []]
        self._phase, self._done, self._inner, self._record, files = own
        self._files = list(files)
        return self._run()

    def _run(self) -> Iterator[str]:
        holder = self.holder
        if self._phase == "todo":
            for item in self.inputs[0].iterator():
                path = self._write(item)
                self._note(path)
                yield path
            self._finish(keep=0)
            self._phase = "cached"
        else:
            holder.adopt_restored()
        while self._done < len(holder.cached):
            kind, path = holder.cached[self._done]
            self._wait(path)
            if kind == "file":
                self._done += 1
                yield path
                continue
            with open(path + LIST_SUFFIX) as f:
                inner = [line.rstrip("\n") for line in f if line.strip()]
            while self._inner < len(inner):
                self._inner += 1
                yield inner[self._inner - 1]
            self._done, self._inner = self._done + 1, 0

    def _write(self, item: Any) -> str:
        if type(item) is not tuple or len(item) != 2:
            raise TypeError(
                f"end_caching expects (metadata, data or stream) pairs, got {type(item).__name__}"
            )
        meta, data = item
        if not self.params["skip_read"] and not isinstance(data, (bytes, bytearray, str)):
            stream = data
            data = ("" if "t" in self._mode else b"").join(stream)
            stream.close()
        path = meta if self._path_fn is None else self._path_fn(meta)
        hashes = self.holder.params["hash_dict"]
        if hashes is not None:
            digest = hashlib.new(
                self.holder.params["hash_type"], data.encode() if isinstance(data, str) else data
            )
            check_digest(path, digest.hexdigest(), hashes)
        write_atomically(path, data, self._mode)
        return path

    def _note(self, path: str) -> None:
        """Match the file written to the element of the cache node it came from."""
        claimed = self.holder.claimed
        if not claimed:
            raise RuntimeError(
                "end_caching got an element the on_disk_cache node did not "
                "pass on: the branch between them must not buffer"
            )
        record = claimed[-1]
        if record != self._record:  # a new element: those before it are complete
            self._finish(keep=1)
            self._record, self._files = record, []
        if path == record:
            self._finish(keep=0)
        else:
            self._files.append(path)

    def _finish(self, keep: int) -> None:
        """Complete all elements in progress but the last ``keep``: write the
        list of files of the current one, give back the promises."""
        claimed = self.holder.claimed
        for record in claimed[: len(claimed) - keep]:
            if record == self._record and self._files:
                write_atomically(record + LIST_SUFFIX, "".join(f"{f}\n" for f in self._files), "w")
            self.holder.release(record)
        if self._record not in claimed:
            self._record, self._files = None, []

    def _wait(self, path: str) -> None:
        promise = path + PROMISE_SUFFIX
        deadline = time.monotonic() + self.params["timeout"]
        while os.path.exists(promise):
            if _stale(promise):
                raise RuntimeError(
                    f"{path!r} was being written by a process that died: "
                    f"delete {promise!r} and run again"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{path!r} is being written by another worker or run and "
                    f"was not ready in {self.params['timeout']} s (a stale "
                    f"{promise!r} from another host? delete it)"
                )
            time.sleep(0.01)

    def user_functions(self) -> list[Any]:
        return [self._path_fn] if self._path_fn is not None else []

    def live_state(self) -> dict[str, Any]:
        own = [self._phase, self._done, self._inner, self._record, list(self._files)]
        return {"own": own, "todo": self.inputs[0].state()}

    def state(self) -> Any:
        if self._live:
            return self.live_state()
        return (
            self._restored
            if self._restored is not None
            else {"own": None, "todo": self.inputs[0].state()}
        )

    def restore(self, state: Any) -> None:
        super().restore(None if state is None or state["own"] is None else state)
        if state is not None:
            self.inputs[0].restore(state["todo"])

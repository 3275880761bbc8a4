"""The Ray actor side of ``RayReadingService``: one actor per worker, hosting
the same ``WorkerLoop`` as a worker process, in a thread of its own.

The actor receives the worker part of the graph as its saved document
(``graph_io``), never as a pickle: it rebuilds the graph from plain data and
imports only streamdag, registered functions and ``trusted_modules``. User
code must be importable on the actor's node (``runtime_env`` or the image).

Two method groups, one thread each, so a waiting ``messages`` call never
holds back a command: ``command`` feeds the loop's queue, ``messages``
returns what the loop sent since the last call (waiting up to ``wait_s`` for
the first). Ray does not keep the order of calls to a threaded actor, and a
command with a large argument (a resume state) waits for the object store:
commands carry a sequence number and are handed to the loop in that order.
Messages go back as the call's return value, packed by ``ray_wire`` so that
the trainer reads a chunk's tensors and arrays from the object store without
copying them (on its node)."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from typing import Any

from ..core.node import Node
from ..graph_io.files import loads_node
from ..runtime.node import WorkerContext
from .init_fns import WorkerPipe
from .intra_op import build_one_thread
from .ray_wire import Packed, pack
from .worker import WorkerLoop, deferred, set_worker_info

#: A chunk costs about 12 ms of CPU across the trainer, Ray's daemons and the
#: actor (a ``messages`` call, a credit, the object store's bookkeeping;
#: measured on W2, docs/ray.md): chunks of up to 200 ms of work keep that
#: near 5%. A pass starts with short chunks (``WorkerLoop``), so the first
#: batch of an epoch does not wait for a whole one. The element cap stays the
#: process service's 1024, which bounds a chunk's memory as there.
CHUNK_SECONDS = 0.2
COMMANDS, MESSAGES = "commands", "messages"
CONCURRENCY_GROUPS = {COMMANDS: 1, MESSAGES: 1}


class RayWorkerLoop(WorkerLoop):
    """A worker loop sending longer chunks: each costs Ray calls."""

    chunk_seconds = CHUNK_SECONDS


class RayWorker:
    """One worker of a ``RayReadingService`` (wrapped by ``ray.remote`` when
    the pool starts, so that importing streamdag never imports Ray)."""

    def __init__(self, document: bytes, trusted_modules: tuple[str, ...], context: WorkerContext):
        import ray

        runtime = ray.get_runtime_context()
        self._where = {"node": runtime.get_node_id(), "ip": ray.util.get_node_ip_address()}
        self._where["pid"] = os.getpid()
        self._commands: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._out: queue.SimpleQueue[Packed] = queue.SimpleQueue()
        self._next = 0  # the sequence number of the next command for the loop
        self._held: dict[int, tuple] = {}  # commands that arrived before their turn
        self._thread = threading.Thread(
            target=_serve,
            args=(document, trusted_modules, context, self._commands, self._out),
            daemon=True,
            name=f"streamdag-ray-worker-{context.worker_id}",
        )
        self._thread.start()

    def where(self) -> dict[str, Any]:
        """The actor's node id, node IP address and process id."""
        return self._where

    def command(self, seq: int, command: tuple) -> None:
        self._held[seq] = command
        while self._next in self._held:
            self._commands.put(self._held.pop(self._next))
            self._next += 1

    def messages(self, wait_s: float) -> tuple[dict[str, Any], list[Packed]]:
        """Where this actor runs, and the loop's messages since the last call."""
        out = []
        try:
            out.append(self._out.get(timeout=wait_s))
            while True:
                out.append(self._out.get_nowait())
        except queue.Empty:
            return self._where, out


def _serve(
    document: bytes,
    trusted_modules: tuple[str, ...],
    context: WorkerContext,
    commands: queue.SimpleQueue[tuple],
    out: queue.SimpleQueue[Packed],
) -> None:
    set_worker_info(context)

    def send(message: tuple) -> None:
        out.put(pack(deferred(message)))

    def recv(block: bool) -> tuple | None:
        if block:
            return commands.get()
        try:
            return commands.get_nowait()
        except queue.Empty:
            return None

    pipe = _DocumentPipe(document, trusted_modules, context)
    pipe.warm()
    RayWorkerLoop(pipe, build_one_thread, send, recv, seed_globals=True).serve()  # type: ignore[arg-type]


class _DocumentPipe:
    """The ``WorkerPipe`` of the graph document, loaded as the actor starts
    (``warm``); an error in the document is reported by the first pass, like
    a node's."""

    def __init__(
        self, document: bytes, trusted_modules: tuple[str, ...], context: WorkerContext
    ) -> None:
        self.document, self.trusted_modules, self.context = document, trusted_modules, context
        self._pipe: WorkerPipe | None = None

    def for_context(self, context: WorkerContext) -> _DocumentPipe:
        """The same document for another virtual worker."""
        if context == self.context:
            return self
        return _DocumentPipe(self.document, self.trusted_modules, context)

    def warm(self) -> None:
        """Load the graph (importing its functions' modules) as the actor
        starts, before the first pass asks for it. An error is left to that
        pass, which reports it like a node's."""
        with contextlib.suppress(Exception):
            self._load()

    def for_epoch(self, base_seed: int, epoch: int) -> Node:
        return self._load().for_epoch(base_seed, epoch)

    def _load(self) -> WorkerPipe:
        if self._pipe is None:
            source = f"worker {self.context.worker_id}"
            spec = loads_node(self.document, self.trusted_modules, source=source)
            self._pipe = WorkerPipe(spec, self.context)
        return self._pipe

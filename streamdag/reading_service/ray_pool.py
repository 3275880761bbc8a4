"""The trainer's side of the Ray actors: the worker-pool interface of
``worker_service.py`` (send, recv, stop) over actor calls.

Each actor has one ``messages`` call outstanding at a time; ``recv`` waits on
them with ``ray.wait`` and sends the next as each returns, so at most the
chunks the worker loop's credits allow are in flight (``prefetch_factor`` per
virtual worker, plus the one the trainer is reading). An actor that dies is
replaced by a new one that resumes where the trainer's copy of its stream ends
(``ray_replay.py``), up to ``max_restarts`` times per actor; after that the
epoch fails with ``WorkerDiedError`` naming the worker, the actor, its node
and Ray's error. ``stop`` (also when the pool is garbage) kills the actors."""

from __future__ import annotations

import time
import weakref
from typing import Any

from ..errors import ParamError
from ..runtime.node import WorkerContext
from .errors import WorkerDiedError
from .ray_actor import COMMANDS, CONCURRENCY_GROUPS, MESSAGES, RayWorker
from .ray_replay import Replay
from .ray_wire import unpack
from .worker import DATA

#: how long an actor's ``messages`` call waits for the first message: the
#: trainer's ``recv`` waits longer by sending the next call
_WAIT_S = 1.0
#: how long a replacement actor may take to answer before the epoch fails (no
#: node can host it: its node was lost and no other has the resources)
RESTART_TIMEOUT_S = 30.0


class RayPool:
    """``size`` actors, created with ``options`` (``ray.remote`` options:
    resources, scheduling, runtime_env), each running the graph ``document``
    for one of ``contexts``; ``num_virtual`` streams (virtual workers) in all,
    each with its own ``prefetch_factor`` chunks ahead."""

    def __init__(
        self,
        document: bytes,
        trusted_modules: tuple[str, ...],
        contexts: list[WorkerContext],
        options: dict[str, Any],
        max_restarts: int,
        prefetch_factor: int,
        num_virtual: int,
    ) -> None:
        import ray

        self._ray = ray
        self.size = len(contexts)
        self.broken = False
        actor_class = ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(RayWorker)
        self._remote = actor_class.options(**options, max_restarts=0, max_task_retries=0)
        self._args = (document, trusted_modules)
        self._contexts = contexts
        self._max_restarts = max_restarts
        self._prefetch_factor = prefetch_factor
        self._num_virtual = num_virtual
        self._store_checked = 0  # elements in the largest chunk checked (_check_store)
        self._actors: list[Any] = []
        self._finalizer = weakref.finalize(self, _kill_all, ray, self._actors)
        self._seq = [0] * self.size
        self._replays = [Replay(c.worker_id, c.num_workers) for c in contexts]
        self._restarts = [0] * self.size
        self._where: list[dict[str, Any] | None] = [None] * self.size
        self._pending: dict[Any, int] = {}  # each actor's outstanding messages call
        self._restarting: dict[int, tuple[float, BaseException]] = {}  # deadline, cause
        for worker in range(self.size):
            self._actors.append(self._start(worker))

    def _start(self, worker: int) -> Any:
        actor = self._remote.remote(*self._args, self._contexts[worker])
        self._pending[actor.messages.options(concurrency_group=MESSAGES).remote(_WAIT_S)] = worker
        return actor

    @property
    def actors(self) -> list[Any]:
        return self._actors

    def send(self, worker: int, command: tuple) -> None:
        self._replays[worker].sent(command)
        self._submit(worker, command)

    def _submit(self, worker: int, command: tuple) -> None:
        seq, self._seq[worker] = self._seq[worker], self._seq[worker] + 1
        call = self._actors[worker].command.options(concurrency_group=COMMANDS)
        call.remote(seq, command)  # a dead actor fails it; the messages call tells

    def recv(self, timeout: float | None) -> list[tuple]:
        """Messages that arrived within ``timeout`` seconds (maybe none)."""
        ray = self._ray
        if self._restarting:
            left = min(deadline for deadline, _ in self._restarting.values()) - time.monotonic()
            timeout = max(0.0, left if timeout is None else min(timeout, left))
        ready, rest = ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if ready and rest:  # whatever else has arrived too
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        messages: list[tuple] = []
        for ref in ready:
            worker = self._pending.pop(ref)
            try:
                where, packed = ray.get(ref)
            except ray.exceptions.ActorUnavailableError:
                arrived = []  # the actor is restarting or unreachable for now: ask again
            except ray.exceptions.RayActorError as exc:
                self._replace(worker, exc)
                continue
            else:
                self._where[worker] = where
                self._restarting.pop(worker, None)
                arrived = [unpack(message) for message in packed]
            for message in arrived:
                self._replays[worker].received(message)
                if message[0] == DATA and len(message[3]) > self._store_checked:
                    self._check_store(message[3])
            messages.extend(arrived)
            actor = self._actors[worker]
            call = actor.messages.options(concurrency_group=MESSAGES).remote(_WAIT_S)
            self._pending[call] = worker
        now = time.monotonic()
        for worker, (deadline, error) in list(self._restarting.items()):
            if now >= deadline and self._where[worker] is None:
                self._fail(
                    worker,
                    f"was replaced, and the new actor did not start within "
                    f"{RESTART_TIMEOUT_S:.0f} s (no node with its resources?)",
                    error,
                )
        return messages

    def _replace(self, worker: int, error: BaseException) -> None:
        """Start a new actor for ``worker`` and send it what resumes the dead
        one's stream; raise once ``max_restarts`` replacements are used up."""
        if self._restarts[worker] >= self._max_restarts:
            self._fail(
                worker,
                f"died and was not restarted (max_restarts={self._max_restarts} used up)",
                error,
            )
        self._restarting[worker] = (time.monotonic() + RESTART_TIMEOUT_S, error)
        self._restarts[worker] += 1
        self._ray.kill(self._actors[worker])
        self._seq[worker] = 0
        self._where[worker] = None
        self._actors[worker] = self._start(worker)
        for command in self._replays[worker].commands():
            self._submit(worker, command)

    def _fail(self, worker: int, what: str, error: BaseException) -> None:
        """Stop the pool and raise: ``worker``'s actor ``what``, because of ``error``."""
        died = WorkerDiedError(
            f"{self.describe(worker)} {what}: {error}",
            worker_id=worker,
            pid=(self._where[worker] or {}).get("pid"),
        )
        self.broken = True
        self.stop()
        raise died from error

    def _check_store(self, items: list[Any]) -> None:
        """On the first chunk, and on each that holds more elements than any
        before (chunks grow as a pass starts): the chunks in flight must fit
        the trainer node's object store, where every actor's chunks arrive
        (each virtual worker's, where an actor runs several)."""
        self._store_checked = len(items)
        ray = self._ray
        here = ray.get_runtime_context().get_node_id()
        nodes = [n for n in ray.nodes() if n["NodeID"] == here]
        store = nodes[0]["Resources"].get("object_store_memory", 0) if nodes else 0
        try:
            streams = self._num_virtual
            label = "actors" if streams == self.size else "virtual workers"
            check_store(payload_bytes(items), self._prefetch_factor, streams, int(store), label)
        except ParamError:
            self.broken = True
            self.stop()
            raise

    def describe(self, worker: int) -> str:
        """Worker, actor and node, as far as known."""
        actor = self._actors[worker]
        where = self._where[worker]
        on = (
            f"on node {where['node']} ({where['ip']}), pid {where['pid']}"
            if where
            else "before it reported its node"
        )
        context = self._contexts[worker]
        return f"Ray actor {actor._actor_id.hex()} of worker {worker} (rank {context.rank}) {on}"

    def return_segments(self) -> None:
        """Chunks live in Ray's object store: freed when the trainer drops them."""

    def stop(self) -> None:
        """Kill every actor; idempotent."""
        self._pending.clear()
        self._finalizer()


def payload_bytes(value: Any) -> int:
    """The bytes of the arrays, tensors and byte strings in ``value``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(payload_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(payload_bytes(v) for v in value.values())
    nbytes = getattr(value, "nbytes", 0)
    return nbytes if isinstance(nbytes, int) else 0


def check_store(
    chunk_bytes: int, prefetch_factor: int, streams: int, store_bytes: int, label: str = "actors"
) -> None:
    """Raise when ``prefetch_factor + 1`` chunks per stream (``label``:
    actors, or virtual workers) exceed the store."""
    need = chunk_bytes * (prefetch_factor + 1) * streams
    if store_bytes and need > store_bytes:
        mib = 1 << 20
        raise ParamError(
            f"RayReadingService: a chunk holds about {chunk_bytes / mib:.1f} MiB; "
            f"{streams} {label} x (prefetch_factor={prefetch_factor} + 1) chunks need "
            f"{need / mib:.0f} MiB of object store, but this node's store has "
            f"{store_bytes / mib:.0f} MiB. Lower prefetch_factor, num_workers (and "
            "virtual_workers) or the "
            "batch size, or start Ray with a larger object_store_memory"
        )


def _kill_all(ray: Any, actors: list[Any]) -> None:
    if not ray.is_initialized():
        return
    for actor in actors:
        try:
            ray.kill(actor)
        except Exception:  # noqa: BLE001, S110 - already gone with its node or cluster
            pass
    actors.clear()

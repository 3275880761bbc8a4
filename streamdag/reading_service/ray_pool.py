"""The trainer's side of the Ray actors: the worker-pool interface of
``worker_service.py`` (send, recv, stop) over actor calls.

Each actor has one ``messages`` call outstanding at a time; ``recv`` waits on
them with ``ray.wait`` and sends the next as each returns, so at most the
chunks the worker loop's credits allow are in flight (``prefetch_factor`` per
worker, plus the one the trainer is reading). An actor that dies is replaced
by a new one that resumes where the trainer's copy of its stream ends
(``ray_replay.py``), up to ``max_restarts`` times per actor; after that the
epoch fails with ``WorkerDiedError`` naming the worker, the actor, its node
and Ray's error. ``stop`` (also when the pool is garbage) kills the actors."""

from __future__ import annotations

import weakref
from typing import Any

from ..runtime.node import WorkerContext
from .errors import WorkerDiedError
from .ray_actor import COMMANDS, CONCURRENCY_GROUPS, MESSAGES, RayWorker
from .ray_replay import Replay

#: how long an actor's ``messages`` call waits for the first message: the
#: trainer's ``recv`` waits longer by sending the next call
_WAIT_S = 1.0


class RayPool:
    """``size`` actors, created with ``options`` (``ray.remote`` options:
    resources, scheduling, runtime_env), each running the graph ``document``
    for one of ``contexts``."""

    def __init__(
        self,
        document: bytes,
        trusted_modules: tuple[str, ...],
        contexts: list[WorkerContext],
        options: dict[str, Any],
        max_restarts: int,
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
        self._actors: list[Any] = []
        self._finalizer = weakref.finalize(self, _kill_all, ray, self._actors)
        self._seq = [0] * self.size
        self._replays = [Replay() for _ in contexts]
        self._restarts = [0] * self.size
        self._where: list[dict[str, Any] | None] = [None] * self.size
        self._pending: dict[Any, int] = {}  # each actor's outstanding messages call
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
        ready, rest = ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if ready and rest:  # whatever else has arrived too
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        messages: list[tuple] = []
        for ref in ready:
            worker = self._pending.pop(ref)
            try:
                where, arrived = ray.get(ref)
            except ray.exceptions.ActorUnavailableError:
                arrived = []  # the actor is restarting or unreachable for now: ask again
            except ray.exceptions.RayActorError as exc:
                self._replace(worker, exc)
                continue
            else:
                self._where[worker] = where
            for message in arrived:
                self._replays[worker].received(message)
            messages.extend(arrived)
            actor = self._actors[worker]
            call = actor.messages.options(concurrency_group=MESSAGES).remote(_WAIT_S)
            self._pending[call] = worker
        return messages

    def _replace(self, worker: int, error: BaseException) -> None:
        """Start a new actor for ``worker`` and send it what resumes the dead
        one's stream; raise once ``max_restarts`` replacements are used up."""
        if self._restarts[worker] >= self._max_restarts:
            died = WorkerDiedError(
                f"{self.describe(worker)} died and was not restarted "
                f"(max_restarts={self._max_restarts} used up): {error}",
                worker_id=worker,
                pid=(self._where[worker] or {}).get("pid"),
            )
            self.broken = True
            self.stop()
            raise died from error
        self._restarts[worker] += 1
        self._ray.kill(self._actors[worker])
        self._seq[worker] = 0
        self._where[worker] = None
        self._actors[worker] = self._start(worker)
        for command in self._replays[worker].commands():
            self._submit(worker, command)

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


def _kill_all(ray: Any, actors: list[Any]) -> None:
    if not ray.is_initialized():
        return
    for actor in actors:
        try:
            ray.kill(actor)
        except Exception:  # noqa: BLE001, S110 - already gone with its node or cluster
            pass
    actors.clear()

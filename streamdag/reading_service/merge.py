"""The main side of one pass over the workers: their chunks merged into one
stream, and the position from which every worker can be resumed.

The streams merged are those of the virtual workers (``worker.py``): as
many as the workers by default, each run by worker ``v % num_workers``.
``in_order=True`` takes one element from each virtual worker in turn (those
whose stream ended drop out of the rotation), so the global order depends
only on what each virtual worker yields, never on timing nor on the number
of workers that run them. ``in_order=False`` takes elements
from whichever worker has them first (round robin among the ready ones): no
worker stalls the others, the order varies from run to run, and resume is
exact per worker but not in global order.

State: ``{"turn": next virtual worker, "workers": [{"state", "skip",
"ended", "next_pass"}, ...one per virtual worker]}``: a virtual worker
resumes from ``state`` (after the last chunk the main process used up; with
``next_pass``, the end of the previous pass, after which it starts the next
one) and drops ``skip`` elements it had already delivered. The state does
not depend on the number of workers: any number can resume it. A state
dealt from other ranks' (``elastic.py``) also has ``"virtual"``: each
virtual worker's ``[rank, world_size, v, num_virtual]`` in the run that
started the epoch (by default ``[this rank, world size, index, count]``).

``state_back(n)``: the state ``n`` elements before the last one taken (a
training loop holds up to ``BACK`` ahead of the one it trains on). The merge
keeps the virtual workers of the last ``BACK`` elements taken (one int per
element) and the start states of each virtual worker's chunks that hold its
last ``BACK`` elements (one reference per chunk), so the state is per
virtual worker, as any layout resumes it."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from itertools import islice
from typing import Any, Protocol

from ..runtime.skip_warnings import SkipWarnings
from .errors import WorkerError, WorkerTimeoutError
from .transport import Deferred
from .worker import CREDIT, DATA, RUN, STATS, THEN

#: how many elements back ``Merge.state_back`` can go
BACK = 8


class Pool(Protocol):
    size: int

    def send(self, worker: int, command: tuple) -> None: ...

    def recv(self, timeout: float | None) -> list[tuple]: ...


class Inbox:
    """The pool's messages sorted by pass. A pass queued behind the current
    one (THEN) starts in each worker when that worker's current pass ends, so
    its first messages may arrive while the current pass is still read: they
    wait here, its statistics too, so that ``stats`` (worker -> latest
    snapshot) never counts a pass the loop has not reached. Messages of
    older, abandoned passes are dropped, but for their statistics."""

    def __init__(self, pool: Pool, stats: dict[int, dict]) -> None:
        self.pool = pool
        self.size = pool.size
        self.stats = stats
        self._early: dict[int, list[tuple]] = {}

    def send(self, worker: int, command: tuple) -> None:
        self.pool.send(worker, command)

    def recv(self, gen: int, timeout: float | None) -> list[tuple]:
        """Messages of pass ``gen`` (DATA and ERROR), maybe none by ``timeout``."""
        for old in [g for g in self._early if g < gen]:
            del self._early[old]
        messages = self._early.pop(gen, None)
        if messages is None:
            messages = []
            for message in self.pool.recv(timeout):
                if message[1] > gen:
                    self._early.setdefault(message[1], []).append(message)
                else:
                    messages.append(message)
        mine = []
        for message in messages:
            if message[0] == STATS:
                self.stats[message[2]] = message[3]
            elif message[1] == gen:
                mine.append(message)
        return mine

    def clear(self) -> None:
        """Drop the messages read ahead for later passes (their elements may
        view shared memory): no pass will read them."""
        self._early.clear()


class _Worker:
    """What the main process knows about one virtual worker during a pass."""

    __slots__ = ("state", "skip", "ended", "next_pass", "items", "pos", "chunk", "queue", "history")

    def __init__(self, saved: dict | None) -> None:
        self.state = saved["state"] if saved else None
        self.skip = saved["skip"] if saved else 0
        self.ended = bool(saved and saved["ended"])
        self.next_pass = bool(saved and saved.get("next_pass"))
        self.items: list[Any] = []
        self.pos = 0
        self.chunk: tuple | None = None  # the message whose items are being taken
        self.queue: deque[tuple] = deque()
        #: (state, next_pass, elements) of the chunks used up last, oldest first
        self.history: deque[tuple[Any, bool, int]] = deque(maxlen=BACK + 1)

    def remember(self) -> None:
        """Keep the start of the chunk just used up, and the older ones as far
        as ``back`` may need them (``BACK`` elements), no further: a state
        per chunk held costs memory (a few KB)."""
        history = self.history
        history.append((self.state, self.next_pass, self.skip))
        while sum(n for _, _, n in islice(history, 1, None)) >= BACK:
            history.popleft()

    def back(self, count: int) -> dict | None:
        """This virtual worker's saved state ``count`` elements earlier; None
        where its history does not reach that far."""
        state, next_pass, skip, ended = self.state, self.next_pass, self.skip, self.ended
        history = list(self.history)
        while count > skip:
            if not history:
                return None
            count -= skip
            state, next_pass, skip = history.pop()
            ended = False
        return {"state": state, "skip": skip - count, "ended": ended, "next_pass": next_pass}


class Merge:
    """``skip_warnings``: the main process's, where the skipped-input warnings
    a worker sends with a chunk are issued when the loop starts on that chunk."""

    def __init__(
        self,
        inbox: Inbox,
        gen: int,
        saved: dict | None,
        *,
        in_order: bool,
        timeout: float | None,
        skip_warnings: SkipWarnings,
        num_virtual: int | None = None,
    ) -> None:
        self.inbox = inbox
        self.skip_warnings = skip_warnings
        self.gen = gen
        self.in_order = in_order
        self.timeout = timeout
        self.cancelled = False
        workers = saved["workers"] if saved else [None] * (num_virtual or inbox.size)
        self.workers = [_Worker(w) for w in workers]
        self.turn = saved["turn"] if saved else 0
        self.virtual: list | None = saved.get("virtual") if saved else None
        self.taken: deque[int] = deque(maxlen=BACK)  # the virtual worker of each

    def start(self, base_seed: int, epoch: int, fresh: bool, prefetch: int) -> None:
        """Every worker runs, ended ones too: restoring their final state keeps
        their nodes right for a later pass (e.g. under cycle); what they send
        is never read."""
        workers, size = self.workers, self.inbox.size
        origins = self.virtual
        for index in range(size):
            lanes = [
                (v, workers[v].state, workers[v].skip, workers[v].next_pass)
                + ((origins[v],) if origins else ())
                for v in range(index, len(workers), size)
            ]
            self.inbox.send(
                index, (RUN, self.gen, base_seed, epoch, fresh, len(workers), lanes, prefetch)
            )

    def start_behind(self, base_seed: int, epoch: int, prefetch: int) -> None:
        """Every worker starts this (fresh) pass when its current one ends."""
        for index in range(self.inbox.size):
            self.inbox.send(index, (THEN, self.gen, base_seed, epoch, prefetch, len(self.workers)))

    def drop_chunks(self) -> None:
        """Let go of the chunks received and not taken, once nothing reads
        this cancelled pass (no receive-ahead thread): their elements may
        view shared memory. The position stays: it is still the state of an
        epoch left early."""
        for worker in self.workers:
            worker.queue.clear()
            worker.items, worker.pos, worker.chunk = [], 0, None

    @property
    def finished(self) -> bool:
        """Whether every worker's stream ended and was read to its end."""
        return all(w.ended for w in self.workers)

    def state(self) -> dict:
        return self._saved(
            self.turn,
            [
                {"state": w.state, "skip": w.skip, "ended": w.ended, "next_pass": w.next_pass}
                for w in self.workers
            ],
        )

    def next_pass(self) -> dict:
        """The saved form of "every worker starts its next pass" (after this one ended)."""
        return self._saved(
            0,
            [
                {"state": w.state, "skip": 0, "ended": False, "next_pass": True}
                for w in self.workers
            ],
        )

    def state_back(self, count: int) -> dict | None:
        """The state ``count`` elements before the last one taken; None where
        this pass has not taken that many or ``count > BACK``."""
        taken = self.taken
        if count > len(taken):
            return None
        behind = [0] * len(self.workers)
        for index in list(taken)[len(taken) - count :]:
            behind[index] += 1
        workers = [w.back(n) for w, n in zip(self.workers, behind, strict=True)]
        if None in workers:
            return None
        return self._saved(taken[-count] if count else self.turn, workers)

    def _saved(self, turn: int, workers: list[dict]) -> dict:
        saved = {"turn": turn, "workers": workers}
        if self.virtual is not None:
            saved["virtual"] = self.virtual
        return saved

    def __iter__(self) -> Iterator[Any]:
        return self._ordered() if self.in_order else self._any_order()

    def _ordered(self) -> Iterator[Any]:
        workers, count = self.workers, len(self.workers)
        while True:
            for _ in range(count):
                if not workers[self.turn].ended:
                    break
                self.turn = (self.turn + 1) % count
            else:
                return
            index = self.turn
            worker = workers[index]
            if self._ready(index, worker, block=True):
                item = self._take(index, worker)
                self.turn = (index + 1) % count
                yield item

    def _any_order(self) -> Iterator[Any]:
        workers, count = self.workers, len(self.workers)
        while True:
            for step in range(count):
                index = (self.turn + step) % count
                worker = workers[index]
                if self._ready(index, worker, block=False):
                    item = self._take(index, worker)
                    self.turn = (index + 1) % count
                    yield item
                    break
            else:
                if all(w.ended for w in workers):
                    return
                self._receive()

    def _ready(self, index: int, worker: _Worker, block: bool) -> bool:
        """True when ``worker`` has an element to take; False when it has
        ended, or (not blocking) when its next chunk has not arrived. An error
        a worker sent is raised here, after the elements that preceded it."""
        while worker.pos == len(worker.items):
            if worker.ended:
                return False
            chunk = worker.chunk
            if chunk is not None and chunk[0] != DATA:
                raise _worker_error(chunk[4])
            if not worker.queue:
                if not block:
                    return False
                self._receive(index)
                continue
            chunk = worker.queue.popleft()
            items = chunk[3]
            if isinstance(items, Deferred):
                items = items.load()
            worker.chunk, worker.items, worker.pos = chunk, items, 0
            if not worker.items:
                self._finish(index, worker)
            self.skip_warnings.replay(chunk[-1])  # may raise (-W error): the chunk is taken
        return True

    def _take(self, index: int, worker: _Worker) -> Any:
        if self.cancelled:
            raise _cancelled()
        item = worker.items[worker.pos]
        worker.pos += 1
        worker.skip += 1
        self.taken.append(index)
        if worker.pos == len(worker.items):
            self._finish(index, worker)
        return item

    def _finish(self, index: int, worker: _Worker) -> None:
        """All elements of the current chunk were taken: move the resume point
        past it and return its credit. An error chunk stays current, to be
        raised by the next ``_ready``. The chunk's elements are let go: the
        last chunk of a pass would otherwise keep its batches (and their
        shared memory) alive until the next pass."""
        chunk = worker.chunk
        if chunk is None or chunk[0] != DATA:
            return
        worker.remember()
        worker.state, worker.skip, worker.chunk, worker.next_pass = chunk[4], 0, None, False
        worker.items, worker.pos = [], 0
        if chunk[5]:
            worker.ended = True
        else:
            self.inbox.send(index % self.inbox.size, (CREDIT, self.gen, 1, index))

    def _receive(self, waiting_for: int | None = None) -> None:
        """Wait for messages of this pass (older passes' are dropped)."""
        if self.cancelled:  # not read again: its chunks may have been dropped
            raise _cancelled()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            messages = self.inbox.recv(self.gen, left)
            for message in messages:
                self.workers[message[2]].queue.append(message)
            if messages:
                return
            if deadline is not None and time.monotonic() >= deadline:
                who = "any worker" if waiting_for is None else self._name(waiting_for)
                msg = (
                    f"no element from {who} within timeout={self.timeout} s (a node is "
                    "stuck or very slow; raise the timeout or find the slow node)"
                )
                raise WorkerTimeoutError(msg)

    def _name(self, index: int) -> str:
        """Virtual worker ``index`` as the user knows it: by its worker."""
        worker = f"worker {index % self.inbox.size}"
        if len(self.workers) == self.inbox.size:
            return worker
        return f"{worker} (virtual worker {index} of {len(self.workers)})"


def _cancelled() -> RuntimeError:
    return RuntimeError(
        "this epoch's iterator was ended by a newer iter() on the same "
        "loader (or by shutdown); iterate the new one"
    )


def _worker_error(info: dict) -> WorkerError:
    where = (
        f"{info['op']} node {info['name']!r}"
        if info["name"]
        else f"{info['op']} node {info['node_id']}"
        if info["op"]
        else "its pipeline"
    )
    virtual = info.get("virtual")
    lane = f"virtual worker {virtual[0]} of {virtual[1]}, " if virtual else ""
    msg = (
        f"worker {info['worker']} ({lane}rank {info['rank']}, pid {info['pid']}): {where} "
        f"{info['event']}\n\nOriginal traceback in the worker:\n{info['traceback']}"
    )
    err = WorkerError(
        msg,
        op=info["op"],
        name=info["name"],
        node_id=info["node_id"],
        source=info["source"],
        worker_id=info["worker"],
        rank=info["rank"],
        traceback=info["traceback"],
    )
    err.__cause__ = info["exc"]
    return err

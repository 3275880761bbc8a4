"""One worker's loop, the same in a process or a thread.

The worker runs its copy of the worker part of the graph and sends its
elements in chunks: a chunk closes after ``CHUNK_ITEMS`` elements or
``CHUNK_SECONDS`` of work, whichever comes first, so cheap elements share one
message and a slow element is not held back. A worker process also caps a
chunk's tensors and arrays in shared memory at about ``CHUNK_BYTES``, from the
shared bytes per element of its previous chunk (its first chunk is one
element): big elements that are quick to make (batches of images already in
memory) would otherwise fill a chunk of hundreds of megabytes that the main
process can use only once all of it is copied into shared memory. Elements
pickled inline (and states, which hold positions, not samples) do not count.
It may run ahead of the main process by ``credits`` chunks; the main process
returns a credit for each chunk it has used up. Each chunk carries the
graph's state after its last element: the main process resumes a worker from
the state of the last chunk it used up plus the number of elements it took
from the next one.

Protocol (tuples, first item the kind):
  main -> worker: (RUN, gen, base_seed, epoch, fresh, num_virtual,
                   [(v, state, skip, next_pass[, origin]), ...], credits)
                  (THEN, gen, base_seed, epoch, credits, num_virtual)
                  (CREDIT, gen, n, v)   (SHUTDOWN,)   (STATS, every_s, main_pid)
  worker -> main: (DATA, gen, v, items, state_after, ended, warnings)
                  (ERROR, gen, v, items, info, warnings)   (STATS, gen, worker, snapshot)
Elements come from virtual workers ``v`` of ``num_virtual`` (elastic resume,
docs/reading-services.md): a RUN names the ones this worker runs, each a
copy of the graph with ``WorkerContext(rank, world_size, v, num_virtual)``,
so a virtual worker's stream and state do not depend on which worker runs
it (``origin``, a state's virtual worker resumed on another rank: the
``[rank, world_size, v, num_virtual]`` of the run that made it, its
context in place of that default). The worker makes their chunks in turn, each within its own ``credits``
(a CREDIT names its virtual worker). With as many virtual workers as
workers, worker ``i`` runs virtual worker ``i`` alone. A RUN starts a pass
(abandoning any pass in progress) from each ``state`` (None: the start of
the epoch), dropping ``skip`` elements; with ``next_pass`` the state is the
end of the previous pass and the virtual worker starts the next one (cycle
in the main process). THEN queues a fresh pass of (base_seed, epoch)
behind the current one and any queued before it (with the virtual workers
``v % num_workers == worker``): the worker starts it as soon
as the passes before it end cleanly (at once when idle), so the next epoch's
first chunks are made while the main process still consumes this epoch's last
ones; a RUN or an error drops every queued pass. Several can be queued: a
resumed pass whose workers had all ended yields nothing, so the main process
takes the pass queued behind it and queues the next epoch's before the worker
has even finished the resumed one. ``gen`` tells the main process which pass a message belongs
to (statistics too: a snapshot of a queued pass waits until the main process
reads that pass). STATS (sent before the first RUN) switches statistics on:
the worker then sends a snapshot at most every ``every_s`` seconds between
chunks and before the chunk that ends a pass. ``warnings`` are the
skipped-input warnings the worker's nodes issued since the previous chunk
(``datapipes/skip_warnings.py``): the main process issues them when it takes
the chunk. An element that cannot be pickled ends the pass with an ERROR that
names it, after the elements before it, instead of killing the worker. An
error in one virtual worker ends the others the worker runs: each gets an
ERROR with the same info, so the main process raises it whichever it reads
first instead of waiting for their chunks."""

from __future__ import annotations

import os
import pickle
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import Any

from ..core.node import Node
from ..core.seeds import derive_seed, global_rng_states, seed_global_rngs, set_global_rng_states
from ..errors import NodeError, ResumeError
from ..runtime.graph import RuntimeGraph
from ..runtime.node import WorkerContext
from ..runtime.sources import describe as describe_element
from ..stats import sampler
from ..stats.sampler import StackSampler
from ..stats.snapshot import snapshot
from . import transport
from .init_fns import WorkerPipe

RUN, THEN, CREDIT, SHUTDOWN, STATS = "run", "then", "credit", "shutdown", "stats"
DATA, ERROR = "data", "error"
CHUNK_ITEMS = 1024
CHUNK_SECONDS = 0.005
CHUNK_BYTES = 4 * 1024 * 1024
_GLOBAL_RNG_SALT = 0x5EED

_local = threading.local()


def deferred(message: tuple) -> tuple:
    """``message`` with its elements pickled on their own when it is DATA and
    none of them needs shared memory (``transport.Deferred``), for services
    that pickle messages: the main process unpickles them when the loop
    takes the chunk, not while it waits for its turn."""
    if message[0] == DATA and (items := transport.defer(message[3])) is not None:
        return (*message[:3], items, *message[4:])
    return message


def get_worker_info() -> WorkerContext | None:
    """Inside a worker (process or thread) of a reading service: its rank,
    world size, worker id and number of workers. None elsewhere."""
    return getattr(_local, "context", None)


def set_worker_info(context: WorkerContext | None) -> None:
    _local.context = context


def global_rng_seed(base_seed: int, epoch: int, context: WorkerContext) -> int:
    """The seed of Python's, numpy's and torch's global RNGs in a worker process:
    distinct per (rank, worker), new each epoch."""
    return derive_seed(base_seed, epoch, _GLOBAL_RNG_SALT, context.shard_index + 1)


def describe(
    exc: BaseException, context: WorkerContext, event: str | None = None
) -> dict[str, Any]:
    """Plain data about an error, to raise it again in the main process.
    ``event``: what the node did, after its name (default: "raised" the error
    on its element)."""
    original = exc.__cause__ if isinstance(exc, NodeError) and exc.__cause__ else exc
    source = getattr(exc, "source", None)
    if event is None:
        on = f" (on {source})" if source else ""
        event = f"raised {type(original).__name__}: {original}{on}"
    info: dict[str, Any] = {
        "worker": context.worker_id,
        "rank": context.rank,
        "pid": os.getpid(),
        "op": getattr(exc, "op", ""),
        "name": getattr(exc, "name", None),
        "node_id": getattr(exc, "node_id", ""),
        "source": source,
        "event": event,
        "traceback": "".join(traceback.format_exception(original)),
        "exc": None,
    }
    try:
        pickle.loads(pickle.dumps(original))
        info["exc"] = original
    except Exception:  # noqa: BLE001 - an unpicklable exception travels as text only
        pass
    return info


class _Lane:
    """One virtual worker that a worker runs: its own copy of the graph, with
    ``WorkerContext(rank, world_size, v, num_virtual)``, so its shard, seeds
    and state do not depend on which worker runs it; and its own credits."""

    __slots__ = (
        "index",
        "context",
        "pipe",
        "graph",
        "spec",
        "epoch_key",
        "it",
        "credits",
        "rngs",
        "chunk_s",
    )

    def __init__(self, index: int, context: WorkerContext, pipe: WorkerPipe) -> None:
        self.index = index  # its place in the main process's merge (messages name it)
        self.context, self.pipe = context, pipe
        self.graph: RuntimeGraph | None = None
        self.spec: Node | None = None
        self.epoch_key: tuple[int, int] | None = None
        self.it: Iterator[Any] | None = None  # None: ended in this pass
        self.credits = 0
        self.rngs: Any = None  # its global RNGs' states, while others share the process
        self.chunk_s = CHUNK_SECONDS  # the work in its next chunk (WorkerLoop.chunk_seconds)

    def rng_seed(self) -> int:
        """What seeds its global RNGs in the epoch it runs."""
        assert self.epoch_key is not None
        return global_rng_seed(*self.epoch_key, self.context)


class WorkerLoop:
    """Serves commands until SHUTDOWN. ``send`` hands a message to the main
    process and returns the bytes of its tensors and arrays put in shared
    memory (None: not pickled, as between threads); ``recv(block)`` returns
    the next command, or None when not blocking and none is waiting. ``pipe`` is the worker's ``WorkerPipe``;
    ``build(spec, context)`` compiles the graph of one virtual worker when it
    is not the one running. Both run when a pass starts, so that a failure
    there is reported like any node error. A RUN names the virtual workers
    (lanes) this worker runs in the pass; it makes their chunks in turn,
    each lane within its own credits. A subclass may send longer chunks where
    each message costs more: up to ``chunk_seconds`` of work instead of
    ``CHUNK_SECONDS``. A pass then starts with chunks of ``CHUNK_SECONDS``, and
    each chunk may take twice the work of the one before, up to
    ``chunk_seconds``: the first batch of an epoch comes as soon as with short
    chunks, later ones share the cost of a message."""

    chunk_seconds: float | None = None

    def __init__(
        self,
        pipe: WorkerPipe,
        build: Callable[[Node, WorkerContext], RuntimeGraph],
        send: Callable[[tuple], int | None],
        recv: Callable[[bool], tuple | None],
        seed_globals: bool,
    ) -> None:
        self.context = pipe.context
        self._pipe = pipe
        self._build = build
        self._lanes: dict[tuple, _Lane] = {}  # (v, num_virtual, origin) -> lane
        self.send = send
        self.recv = recv
        self._seed_globals = seed_globals
        self._stats_every: float | None = None
        self._stats_due = 0.0
        self._stats_since = 0.0
        self._credit_wait_s = 0.0  # blocked with no credit left (reported since _stats_since)
        self._sampler: StackSampler | None = None
        self._own_times = False
        self._queued: deque[tuple] = deque()  # THENs behind the current pass, in order
        self._chunk_items = 1  # the most elements in the next chunk (_fit_chunks)

    def serve(self) -> None:
        try:
            cmd = self._command(True)
            while cmd is not None and cmd[0] != SHUTDOWN:
                if cmd[0] == STATS:
                    self._collect_stats(cmd[1], cmd[2])
                elif cmd[0] == THEN:  # idle: the pass it follows has ended
                    cmd = self._run_of(cmd)
                cmd = self.run(cmd) if cmd[0] == RUN else self._command(True)
        finally:
            self.close()

    def close(self) -> None:
        for lane in self._lanes.values():
            if lane.graph is not None:
                lane.graph.close()
        if self._sampler is not None:
            self._sampler = None
            sampler.release()

    def _collect_stats(self, every: float, main_pid: int) -> None:
        """Count elements; in a process of its own, also sample time (a thread
        worker's time is sampled by the main process's sampler)."""
        self._stats_every = every
        self._stats_since, self._credit_wait_s = perf_counter(), 0.0
        if self._sampler is None:
            self._sampler = sampler.acquire()
        self._own_times = os.getpid() != main_pid

    def _report_stats(self, gen: int, ended: bool) -> None:
        now = perf_counter()
        graphs = [lane.graph for lane in self._lanes.values() if lane.graph is not None]
        if graphs and (ended or now >= self._stats_due):
            self._stats_due = now + self._stats_every
            own = self._sampler if self._own_times else None
            stats = snapshot(graphs, own)
            stats["credit_wait"] = (self._credit_wait_s, now - self._stats_since)
            self.send((STATS, gen, self.context.worker_id, stats))

    def run(self, cmd: tuple) -> tuple | None:
        """One pass; returns the command that ended it early, if any."""
        _, gen, base_seed, epoch, fresh, num_virtual, saved, credits = cmd
        lanes: list[_Lane] = []
        try:
            for v, state, skip, next_pass, *origin in saved:
                lanes.append(self._lane(v, num_virtual, origin[0] if origin else None))
                self._start(lanes[-1], base_seed, epoch, fresh, state, skip, next_pass)
                lanes[-1].credits = credits
        except Exception as exc:  # noqa: BLE001 - reported to the main process
            failed = lanes[-1].context if lanes else self.context
            self._fail(gen, [v for v, *_ in saved], self._describe(exc, failed))
            return self._failed()
        self._drop_lanes_but(lanes)
        multiple = len(lanes) > 1
        turn = 0
        while True:
            live = [lane for lane in lanes if lane.it is not None]
            if not live:
                return self._run_of(self._queued.popleft()) if self._queued else self._command(True)
            interrupt = self._take_commands(gen, live)
            if interrupt is not None:
                return interrupt
            for step in range(len(lanes)):  # the next lane in turn that may make a chunk
                lane = lanes[(turn + step) % len(lanes)]
                if lane.it is not None and lane.credits > 0:
                    break
            turn = (turn + step + 1) % len(lanes)
            if multiple:
                self._enter(lane)
            items, ended, error = self._chunk(
                lane.it, min(self._chunk_items, CHUNK_ITEMS), lane.chunk_s
            )
            lane.chunk_s = min(2 * lane.chunk_s, self.chunk_seconds or CHUNK_SECONDS)
            if error is None:
                try:
                    state_after = self._state(lane)
                except Exception as exc:  # noqa: BLE001
                    error = exc
            if error is not None:
                info = self._describe(error, lane.context)
                info = self._send_chunk(ERROR, gen, lane, items, info) or info
            else:
                if self._stats_every is not None:  # a snapshot at the end of the pass
                    self._report_stats(gen, ended and len(live) == 1)
                info = self._send_chunk(DATA, gen, lane, items, state_after, ended)
            if info is not None:
                others = [other.index for other in live if other is not lane]
                self._fail(gen, others, info)
                return self._failed()
            lane.credits -= 1
            if ended:
                lane.it = None

    def _lane(self, v: int, num_virtual: int, origin: list[int] | None) -> _Lane:
        key = (v, num_virtual, tuple(origin or ()))
        lane = self._lanes.get(key)
        if lane is None:
            ctx = self.context
            context = (
                WorkerContext(*origin)
                if origin
                else WorkerContext(ctx.rank, ctx.world_size, v, num_virtual)
            )
            lane = self._lanes[key] = _Lane(v, context, self._pipe.for_context(context))
        return lane

    def _drop_lanes_but(self, lanes: list[_Lane]) -> None:
        """Close the graphs of virtual workers this worker no longer runs."""
        keep = {id(lane) for lane in lanes}
        for key, lane in list(self._lanes.items()):
            if id(lane) not in keep:
                if lane.graph is not None:
                    lane.graph.close()
                del self._lanes[key]

    def _enter(self, lane: _Lane) -> None:
        """Switch the process to ``lane`` (between two chunks): its worker info
        and, where seeded here, its global RNGs."""
        set_worker_info(lane.context)
        if self._seed_globals:
            set_global_rng_states(lane.rngs)

    def _fail(self, gen: int, virtuals: list[int], info: dict[str, Any]) -> None:
        """Send the error ``info`` to the main process as the end of the
        virtual workers ``virtuals`` (those of this worker still running,
        which stop with it): the main process raises it whichever of them it
        reads first."""
        for v in virtuals:
            self.send((ERROR, gen, v, [], info, []))

    def _send_chunk(
        self, kind: str, gen: int, lane: _Lane, items: list[Any], *rest: Any
    ) -> dict[str, Any] | None:
        """Send a DATA or ERROR message with the warnings held since the last
        one. An element that cannot be pickled (a generator, an open file, a
        lambda) would end a worker process: the elements before it are sent
        with an error naming it instead, and that error is returned."""
        graph = lane.graph
        held = graph.skip_warnings.take_held() if graph is not None else []
        worker = lane.index
        try:
            self._fit_chunks(len(items), self.send((kind, gen, worker, items, *rest, held)))
            return None
        except Exception:
            bad = _first_unpicklable(items)
            if bad is None or graph is None:  # not an element's fault
                raise
        index, error = bad
        info = self._unpicklable(graph, lane.context, items[index], error)
        self.send((ERROR, gen, worker, items[:index], info, held))
        return info

    def _fit_chunks(self, count: int, shared: int | None) -> None:
        """Chunks of as many elements as put about ``CHUNK_BYTES`` in shared
        memory in the chunk just sent (``shared`` bytes for ``count`` elements)."""
        if shared is None:
            self._chunk_items = CHUNK_ITEMS
        elif count:
            self._chunk_items = max(1, min(CHUNK_ITEMS, count * CHUNK_BYTES // max(shared, 1)))

    def _unpicklable(
        self, graph: RuntimeGraph, context: WorkerContext, item: Any, error: Exception
    ) -> dict[str, Any]:
        """The error for an element that cannot be pickled, named after the
        node that yields the worker's elements."""
        spec = graph.output.spec
        source = describe_element(item)
        exc = NodeError(str(error), op=spec.op, name=spec.name, node_id=spec.id, source=source)
        exc.__cause__ = error
        event = (
            f"yielded an element that cannot be pickled to send it to the main process: "
            f"{type(error).__name__}: {error} (on {source}). Yield plain data (numbers, "
            "strings, bytes, lists, dicts, arrays, tensors): read files and consume "
            "generators inside the node, or run it in MultiThreadingReadingService, "
            "which does not pickle"
        )
        return self._describe(exc, context, event)

    def _describe(
        self, exc: BaseException, context: WorkerContext, event: str | None = None
    ) -> dict[str, Any]:
        """``describe`` from this worker, naming the virtual worker where it
        is not the worker itself."""
        info = describe(exc, self.context, event)
        if context != self.context:
            info["virtual"] = (context.worker_id, context.num_workers)
        return info

    def _failed(self) -> tuple | None:
        """After an error the main process decides what runs next: no queued pass."""
        self._queued.clear()
        return self._command(True)

    def _command(self, block: bool) -> tuple | None:
        """The next command; a RUN abandons the passes queued before it."""
        cmd = self.recv(block)
        if cmd is not None and cmd[0] == RUN:
            self._queued.clear()
        return cmd

    def _run_of(self, then: tuple) -> tuple:
        """The RUN that starts a queued pass: fresh, from the start of its
        epoch, for this worker's virtual workers ``v % num_workers == worker``."""
        _, gen, base_seed, epoch, credits, num_virtual = then
        ctx = self.context
        lanes = [(v, None, 0, False) for v in range(ctx.worker_id, num_virtual, ctx.num_workers)]
        return (RUN, gen, base_seed, epoch, True, num_virtual, lanes, credits)

    def _start(
        self,
        lane: _Lane,
        base_seed: int,
        epoch: int,
        fresh: bool,
        state: Any,
        skip: int,
        next_pass: bool,
    ) -> None:
        set_worker_info(lane.context)
        if fresh or lane.epoch_key != (base_seed, epoch):
            if self._seed_globals:
                seed_global_rngs(global_rng_seed(base_seed, epoch, lane.context))
            graph = self._use(lane, lane.pipe.for_epoch(base_seed, epoch))
            graph.close()
            graph.start_epoch(base_seed, epoch)
            lane.epoch_key = (base_seed, epoch)
            if self._seed_globals:
                seed_global_rngs(global_rng_seed(base_seed, epoch, lane.context))
        graph = lane.graph
        assert graph is not None  # the first pass is fresh
        if state is not None:
            if self._seed_globals:
                set_global_rng_states(state["rngs"])
                state = state["graph"]
            graph.restore(state)
        if next_pass:  # state is the end of the previous pass: finish it, start the next
            for _ in graph.iterate():
                pass
        it = graph.iterate()
        for done in range(skip):
            if next(it, _END) is _END:
                msg = (
                    f"worker {lane.context.worker_id}: its pipeline ended after {done} "
                    f"elements while resuming to element {skip}; the pipeline or its data "
                    "changed since the state was saved, or is not deterministic"
                )
                raise ResumeError(msg)
        graph.skip_warnings.take_held()  # issued already, or of an abandoned pass
        lane.it, lane.chunk_s = it, CHUNK_SECONDS
        if self._seed_globals:
            lane.rngs = global_rng_states(lane.rng_seed())

    def _use(self, lane: _Lane, spec: Node) -> RuntimeGraph:
        """Run ``spec`` in ``lane`` from now on, building its graph unless it runs already."""
        if lane.graph is not None and spec is lane.spec:
            return lane.graph
        if lane.graph is not None:
            lane.graph.close()
        graph = self._build(spec, lane.context)
        graph.skip_warnings.hold()  # the main process issues them
        if self._sampler is not None:
            graph.counting = True
            self._sampler.watch(graph)
        lane.graph, lane.spec = graph, spec
        return graph

    def _state(self, lane: _Lane) -> Any:
        """The lane's graph state; in a worker process (which seeds the global
        RNGs), with those RNGs' states too, so a function drawing from them
        (``torch.randint`` in a map) resumes where it was. Threads share the
        global RNGs: there only ``map(fn, rng=True)`` draws reproducibly."""
        state = lane.graph.state()
        if not self._seed_globals:
            return state
        lane.rngs = global_rng_states(lane.rng_seed())
        return {"graph": state, "rngs": lane.rngs}

    def _take_commands(self, gen: int, live: list[_Lane]) -> tuple | None:
        """Apply waiting credits; block while no live lane has one left. A
        command other than a credit for this pass interrupts it."""
        by_virtual = {lane.index: lane for lane in live}
        while True:
            # every chunk it may make ahead made: the main process sets the pace
            block = all(lane.credits <= 0 for lane in live)
            waiting = perf_counter() if block else 0.0
            cmd = self._command(block)
            if block:
                self._credit_wait_s += perf_counter() - waiting
            if cmd is None:
                return None
            if cmd[0] == THEN:
                self._queued.append(cmd)
            elif cmd[0] != CREDIT:
                return cmd
            elif cmd[1] == gen and cmd[3] in by_virtual:
                by_virtual[cmd[3]].credits += cmd[2]

    def _chunk(
        self, it: Iterator[Any], most: int, seconds: float
    ) -> tuple[list[Any], bool, BaseException | None]:
        items: list[Any] = []
        append = items.append
        deadline = perf_counter() + seconds
        try:
            for item in it:
                append(item)
                if len(items) >= most or perf_counter() >= deadline:
                    return items, False, None
        except Exception as exc:  # noqa: BLE001 - sent after the elements before it
            return items, False, exc
        return items, True, None


def _first_unpicklable(items: list[Any]) -> tuple[int, Exception] | None:
    """The index of the first element that cannot be pickled, and why."""
    for index, item in enumerate(items):
        try:
            pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - pickle raises several types
            return index, exc
    return None


_END = object()

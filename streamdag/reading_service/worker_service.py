"""What the process and thread services share: splitting the graph into its
worker and main-process parts, the epoch lifecycle and the resume state.
Subclasses only say how to start a pool of workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Protocol

from ..core.node import Node, walk
from ..core.placement import (
    STREAM_OP,
    MainProcessPart,
    ReceiveAhead,
    find_boundary,
    has_sharding,
    unsharded_sources,
    warn_if_unsharded,
)
from ..core.plan import apply_rules
from ..errors import ParamError, ResumeError
from ..runtime.graph import RuntimeGraph
from ..runtime.node import WorkerContext
from ..stats import sampler
from ..stats.sampler import StackSampler
from ..stats.snapshot import snapshot
from .base import ReadingService
from .capabilities import CollectsStats, PreparesEpochs, Ranked, StatesBack
from .elastic import RANKS, deal
from .errors import WorkerTimeoutError
from .init_fns import InitFn, ResetFn, WorkerPipe
from .merge import Inbox, Merge
from .worker import STATS

STATS_EVERY_S = 0.5  # how often a worker sends its statistics, at most


class WorkerPool(Protocol):
    """``size`` workers, each serving ``WorkerLoop(pipe, build, send, recv,
    seed_globals).serve()`` (``worker.py``) for the ``WorkerPipe`` it was
    given, ``build(spec, context)`` compiling the graph of one of the
    virtual workers it runs. A pool carries commands to worker ``i`` and
    messages back and needs to know nothing of virtual workers (the loop's
    and the merge's business; virtual worker 0 always runs in worker 0)."""

    size: int
    broken: bool

    def send(self, worker: int, command: tuple) -> None: ...

    def recv(self, timeout: float | None) -> list[tuple]: ...

    def return_segments(self) -> None: ...

    def stop(self) -> None: ...


class WorkerService(ReadingService, Ranked, CollectsStats, PreparesEpochs, StatesBack):
    """Runs the worker part of the graph in ``num_workers`` workers and the
    main part over their merged stream. With ``num_workers=0`` the worker part
    runs in the calling thread (for debugging), under the same state format."""

    persistent = True
    #: torchdata's per-worker arguments (``init_fns.py``); set by subclasses
    worker_init_fn: InitFn | None = None
    worker_reset_fn: ResetFn | None = None
    worker_prefetch_cnt: int | None = None
    main_prefetch_cnt: int | None = None

    def __init__(
        self,
        num_workers: int,
        prefetch_factor: int,
        in_order: bool,
        timeout: float | None,
        virtual_workers: int | None = None,
    ) -> None:
        check_int("num_workers", num_workers, 0)
        if virtual_workers is not None:
            check_int("virtual_workers", virtual_workers, max(1, num_workers))
            if num_workers == 0:
                raise ParamError("virtual_workers needs num_workers >= 1")
        check_int("prefetch_factor", prefetch_factor, 1)
        if timeout is not None and (isinstance(timeout, bool) or timeout < 0):
            raise ParamError(f"timeout must be None, 0 (no limit) or seconds > 0, got {timeout!r}")
        self.num_workers = num_workers
        #: the shards of a fresh epoch, each run by worker ``v % num_workers``
        self.virtual_workers = virtual_workers or num_workers
        self.prefetch_factor = prefetch_factor
        self.in_order = in_order
        self.timeout = timeout or None
        self._rank, self._world = 0, 1
        self._sharded = False
        self._main: RuntimeGraph | None = None
        self._worker_spec: Node | None = None
        self._inline: RuntimeGraph | None = None
        self._pool: WorkerPool | None = None
        self._merge: Merge | None = None
        self._inbox: Inbox | None = None
        self._next: tuple[int, int] | None = None  # (base seed, epoch) announced as next
        self._behind: tuple[tuple[int, int], Merge] | None = None  # queued behind the current
        self._started_with: int | None = None  # virtual workers of a start_state() loaded
        self._gen = 0
        self._token: object | None = None
        self._sampler: StackSampler | None = None
        self._worker_stats: dict[int, dict] = {}  # the latest snapshot of each worker
        self._retired_stats: list[dict] = []  # the last ones of workers since stopped

    # -- the ReadingService interface and its capabilities -----------------
    def set_rank(self, rank: int, world_size: int) -> None:
        self._rank, self._world = rank, world_size

    def initialize(self, output: Node) -> None:
        self.shutdown()
        worker_spec = find_boundary(output) or output
        warn_if_unsharded(worker_spec, self._world * max(1, self.num_workers), type(self).__name__)
        # every element passes a sharding point: another split keeps the epoch
        self._sharded = not unsharded_sources(worker_spec)
        if not self._sharded and self.virtual_workers != self.num_workers:
            msg = (
                f"{self._label}: virtual_workers={self.virtual_workers} needs a "
                "sharding_filter on every path of the worker part: without one every "
                "virtual worker reads all of that data, so the epoch would hold it "
                f"{self.virtual_workers} times instead of {self.num_workers}"
            )
            raise ParamError(msg)
        spec = apply_rules(
            output, (MainProcessPart(worker_spec), ReceiveAhead(self.main_prefetch_cnt or 0))
        )
        self._main = RuntimeGraph(spec, WorkerContext(self._rank, self._world), stream=self)
        if has_sharding(worker_spec):  # the main part is downstream of the sharding point
            downstream = _downstream_of(spec, STREAM_OP)
            for node in self._main.nodes.values():
                node.per_worker_seed = node.spec.id in downstream and node.spec.op != STREAM_OP
        self._worker_spec = worker_spec
        if self.num_workers == 0:
            self._inline = RuntimeGraph(worker_spec, WorkerContext(self._rank, self._world))

    def epoch(self, base_seed: int, epoch: int, state: Any | None) -> Iterator[Any]:
        graph = self._require_graph()
        self._end_epoch()
        graph.close()
        graph.start_epoch(base_seed, epoch)
        self._started_with = None
        restored = None if state is None else self._unwrap(state)
        if restored is not None:
            graph.restore(restored)
        elif state is not None:  # the epoch's start (``start_state``), laid out as saved
            self._started_with = state.get("virtual_workers")
        self._token = token = object()
        return self._iterate(token, graph.iterate())

    def state(self) -> Any:
        return self._saved(self._require_graph().state())

    def state_back(self, count: int) -> Any:
        """Where the graph is the merged stream alone, the merge's state
        ``count`` elements back (each element the loader had is one of its)."""
        graph = self._require_graph()
        if self._merge is None or graph.output.spec.op != STREAM_OP:
            return None
        merge = self._merge.state_back(count)
        return None if merge is None else self._saved(merge)

    def start_state(self) -> Any:
        """A fresh epoch's start: its virtual workers, so that elements
        replayed from there follow the merged order that saved them."""
        if self.num_workers == 0:
            return None
        return self._saved(None) | {"virtual_workers": self.virtual_workers}

    def _saved(self, graph: Any) -> dict[str, Any]:
        return {
            "num_workers": self.num_workers,
            "world_size": self._world,
            "rank": self._rank,
            "graph": graph,
        }

    def shutdown(self) -> None:
        self._end_epoch()
        self._stop_pool()
        for graph in self._graphs():
            graph.close()
        # what the workers sent ahead goes now, not when the loader is garbage
        # (its elements may view shared memory); no thread reads it any more
        if self._merge is not None:
            self._merge.drop_chunks()
        if self._inbox is not None:
            self._inbox.clear()
        if self._sampler is not None:
            self._sampler = None
            sampler.release()

    def collect_stats(self) -> None:
        if self._sampler is not None:
            return
        self._sampler = sampler.acquire()
        for graph in self._graphs():
            graph.counting = True
            self._sampler.watch(graph)
        if self._pool is not None:  # workers started early (Ray's actors)
            self._request_stats()

    def stats_snapshots(self) -> list[dict[str, Any]]:
        if self._sampler is None:
            return []
        return [
            snapshot(self._graphs(), self._sampler),
            *self._retired_stats,
            *self._worker_stats.values(),
        ]

    # -- the stream source of the main-process graph -----------------------
    def open_stream(self, base_seed: int, epoch: int, fresh: bool, restored: Any) -> Iterator[Any]:
        if self._inline is not None:
            return _inline_pass(self._inline, base_seed, epoch, fresh, restored)
        previous = self._merge
        if previous is not None:
            previous.cancelled = True
            if not fresh and restored is None:  # the next pass of this epoch (cycle)
                restored = previous.next_pass()
        behind, self._behind = self._behind, None
        if (
            behind is not None
            and behind[0] == (base_seed, epoch)
            and fresh
            and restored is None
            and previous is not None
            and previous.finished
            and self._started_with is None
        ):
            merge = behind[1]  # started by each worker when its previous pass ended
        else:  # a pass queued for another epoch, if any, is abandoned by the new RUN
            merge = self._start_pass(base_seed, epoch, fresh, restored)
        self._merge = merge
        if fresh:
            self._queue_next()
        return iter(merge)

    def prepare_epoch(self, base_seed: int, epoch: int) -> None:
        """Persistent workers start the next epoch's pass as soon as they have
        made their last chunk of this one, so its first chunks are waiting
        when the loop asks (as DALI's reader runs on across epochs): the
        epoch boundary costs no shuffle-buffer fill. The pass is taken if the
        next epoch is this one from its start; otherwise the next pass's RUN
        abandons it (at most ``prefetch_factor`` chunks per worker of
        wasted work)."""
        self._next = (base_seed, epoch)
        if self._merge is not None and not self._merge.cancelled and self._behind is None:
            self._queue_next()

    def _queue_next(self) -> None:
        """Queue the announced next epoch behind the pass now running."""
        if self._next is None or not self.persistent or self._pool is None or self._pool.broken:
            return
        (base_seed, epoch), self._next = self._next, None
        merge = self._new_merge(None, self.virtual_workers)
        merge.start_behind(base_seed, epoch, self.prefetch_factor)
        self._behind = ((base_seed, epoch), merge)

    def _start_pass(self, base_seed: int, epoch: int, fresh: bool, restored: Any) -> Merge:
        self._ensure_pool()
        merge = self._new_merge(restored, self._started_with or self.virtual_workers)
        merge.start(base_seed, epoch, fresh, self.prefetch_factor)
        return merge

    def _new_merge(self, restored: Any, num_virtual: int) -> Merge:
        """The merge of the next pass (a new generation: older chunks are ignored)."""
        self._gen += 1
        return Merge(
            self._inbox,
            self._gen,
            restored,
            in_order=self.in_order,
            timeout=self.timeout,
            skip_warnings=self._require_graph().skip_warnings,
            num_virtual=num_virtual,
        )

    def _ensure_pool(self) -> None:
        """Start the workers unless they run."""
        if self._pool is None:
            spec = self._require_spec()
            self._pool = self._start_pool(
                [
                    WorkerPipe(
                        spec,
                        WorkerContext(self._rank, self._world, i, self.num_workers),
                        self.worker_init_fn,
                        self.worker_reset_fn,
                        self.worker_prefetch_cnt,
                    )
                    for i in range(self.num_workers)
                ]
            )
            self._inbox = Inbox(self._pool, self._worker_stats)
            if self._sampler is not None:
                self._request_stats()

    def _request_stats(self) -> None:
        """Ask every worker for its statistics, every ``STATS_EVERY_S``."""
        assert self._pool is not None
        for worker in range(self.num_workers):
            self._pool.send(worker, (STATS, STATS_EVERY_S, os.getpid()))

    def stream_state(self) -> Any:
        if self._inline is not None:
            return self._inline.state()
        return self._merge.state() if self._merge is not None else None

    # -- for subclasses ----------------------------------------------------
    def _start_pool(self, pipes: list[WorkerPipe]) -> WorkerPool:
        raise NotImplementedError

    @property
    def _label(self) -> str:
        return type(self).__name__

    # -- internals ---------------------------------------------------------
    def _iterate(self, token: object, it: Iterator[Any]) -> Iterator[Any]:
        """The epoch's elements; stops the epoch's workers when it ends, fails
        or is dropped, unless a newer epoch has taken over."""
        try:
            for item in it:
                yield item
                if self._token is not token:
                    raise RuntimeError(
                        "this epoch's iterator was ended by a newer iter() on "
                        "the same loader; iterate the new one"
                    )
        except WorkerTimeoutError:
            if self._pool is not None:
                self._pool.broken = True
            raise
        finally:
            if self._token is token:
                self._end_epoch()

    def _end_epoch(self) -> None:
        """Stop the epoch's pass. The merge is kept (cancelled) because its
        position is still the state: a loader whose iterator was dropped
        mid-epoch can save where it stopped. Workers that stay get back the
        shared memory the loop has dropped (between epochs no command would
        carry it) once their pass was read to its end: an epoch left early
        may still be read by a receive-ahead thread until the graph closes."""
        self._token = None
        merge, pool = self._merge, self._pool
        if merge is not None:
            merge.cancelled = True
        if pool is not None and (pool.broken or not self.persistent):
            self._stop_pool()
        elif pool is not None and merge is not None and merge.finished:
            pool.return_segments()

    def _stop_pool(self) -> None:
        pool, self._pool, self._behind = self._pool, None, None
        if pool is not None:
            pool.stop()
        self._retired_stats.extend(self._worker_stats.values())
        self._worker_stats.clear()

    def _graphs(self) -> list[RuntimeGraph]:
        return [g for g in (self._main, self._inline) if g is not None]

    def _unwrap(self, state: Any) -> Any:
        """The graph state in a saved service state. Each virtual worker (by
        default one per worker) resumes its own shard, so a state saved with
        other ``num_workers`` loads as long as both have workers and the graph
        is sharded: its virtual workers are dealt to this service's workers."""
        if isinstance(state, dict) and RANKS in state:  # saved on another world size
            return self._deal(state[RANKS])
        if not isinstance(state, dict) or "num_workers" not in state:
            raise ResumeError(
                f"{self._label}: not a state saved by a worker reading service: {str(state)[:200]}"
            )
        saved = (state["num_workers"], state.get("world_size", 1))
        if saved == (self.num_workers, self._world):
            return state["graph"]
        if saved[1] != self._world:
            why = (
                "A state of one rank covers that rank's shards only: to resume on "
                "another world size, give loader.load_state_dict the list of every "
                "old rank's state"
            )
        elif 0 in (saved[0], self.num_workers):
            why = (
                "A state of num_workers=0 (the worker part in the main process) and "
                "one of workers do not convert into each other"
            )
        elif not self._sharded:
            why = (
                "A source of the worker part reaches its output without a "
                "sharding_filter: every worker reads all of it, so another number of "
                "workers would change the epoch itself"
            )
        else:
            return state["graph"]
        msg = (
            f"{self._label}: the state was saved with num_workers={saved[0]} and "
            f"world size {saved[1]}, this service has num_workers={self.num_workers} "
            f"and world size {self._world}. {why}. Use the same numbers, or skip the "
            "rest of the saved epoch with loader.set_epoch(state['epoch'] + 1) "
            "instead of load_state_dict (a state saved between epochs loads into "
            "any number of workers)."
        )
        raise ResumeError(msg)

    def _deal(self, parts: list[Any]) -> Any:
        """This rank's virtual workers of every old rank's ``parts``
        (``elastic.py``): the graph must be the merged stream alone."""
        graph = self._require_graph()
        why = None
        if self.num_workers == 0:
            why = "it runs the worker part in the main process (num_workers=0)"
        elif graph.output.spec.op != STREAM_OP:
            why = (
                "its graph has a main-process part (main_process(), a main-placed op "
                "or main_prefetch_cnt), whose state is each rank's own"
            )
        elif not self._sharded:
            why = (
                "a source of the worker part reaches its output without a "
                "sharding_filter, so every rank reads all of it"
            )
        if why is not None:
            msg = (
                f"{self._label}: cannot resume a state saved on another world size: {why}. "
                "Resume on the same world size, or skip the rest of the saved epoch with "
                "loader.set_epoch(state['epoch'] + 1)"
            )
            raise ResumeError(msg)
        return deal(parts, self._rank, self._world, self._label)

    def _require_graph(self) -> RuntimeGraph:
        if self._main is None:
            raise RuntimeError(f"{self._label} used before initialize()")
        return self._main

    def _require_spec(self) -> Node:
        if self._worker_spec is None:
            raise RuntimeError(f"{self._label} used before initialize()")
        return self._worker_spec


def _inline_pass(
    graph: RuntimeGraph, base_seed: int, epoch: int, fresh: bool, restored: Any
) -> Iterator[Any]:
    if fresh:
        graph.close()
        graph.start_epoch(base_seed, epoch)
    if restored is not None:
        graph.restore(restored)
    return graph.iterate()


def _downstream_of(output: Node, op: str) -> set[str]:
    ids: set[str] = set()
    for node in walk(output):
        if node.op == op or any(i.id in ids for i in node.inputs):
            ids.add(node.id)
    return ids


def check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParamError(f"{key} must be an int >= {minimum}, got {value!r}")

"""DataLoader2: epochs, seeds and resumable state over a reading service."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from time import perf_counter
from typing import Any, Generic, TypeVar

from ..core.seeds import derive_seed, draw_base_seed
from ..core.shard_points import check_sharded_once
from ..datapipes.datapipe import DataPipe
from ..errors import ResumeError
from ..stats.progress import progress_bar
from ..stats.report import PipelineStats
from ..stats.report import build as build_stats
from ..stats.snapshot import by_id, by_position
from . import in_flight as flight
from .adapters import Adapters, adapt
from .base import ReadingService
from .capabilities import CollectsStats, PreparesEpochs, SpansRanks, StatesBack, require
from .elastic import rank_state
from .in_process import InProcessReadingService

T = TypeVar("T")
STATE_FORMAT = "streamdag-loader-state"
STATE_VERSION = 2  # 2: "replay"; version 1 states (no replay) still load


class DataLoader2(Generic[T]):
    """Iterate ``datapipe`` one epoch per ``iter()``.

    Each epoch has one base seed: ``derive(seed, epoch)`` when ``seed`` is
    given (identical (seed, epoch) gives an identical stream), else a fresh
    random one. ``state_dict()`` between two elements and ``load_state_dict()``
    in a new loader over the same pipeline resume exactly.

    ``datapipe_adapter_fn`` (torchdata's): a function ``pipe -> pipe`` or a
    list of them, applied in order before the service gets the pipe (e.g.
    ``streamdag.dataloader2.adapter.Shuffle(False)``). A reading service given
    in its place, as ``DataLoader2(dp, service)`` did before, is taken as the
    service.

    ``in_flight``: how many elements the training loop takes ahead of the one
    it trains on (Lightning's fetcher: 1), so that ``state_dict()`` describes
    the stream after the element the loop is on, not after the last one
    handed out (see ``state_dict``).

    ``stats=True`` collects per-node statistics (``stats()``); ``progress=True``
    shows a progress bar with elements/s and MB/s (and collects statistics).
    Both need a service that collects statistics (``CollectsStats``).

    ``pin_memory=True`` (torch DataLoader's) ends the pipe with
    ``pin_memory()``: a thread of the main process pins each batch's tensors,
    whatever the service, so ``.to("cuda", non_blocking=True)`` overlaps."""

    def __init__(
        self,
        datapipe: DataPipe[T],
        datapipe_adapter_fn: Adapters | ReadingService | None = None,
        reading_service: ReadingService | None = None,
        seed: int | None = None,
        *,
        in_flight: int = 0,
        stats: bool = False,
        progress: bool = False,
        pin_memory: bool = False,
    ) -> None:
        if not isinstance(datapipe, DataPipe):
            raise TypeError(f"DataLoader2 needs a DataPipe, got {datapipe!r}")
        if isinstance(datapipe_adapter_fn, ReadingService) and reading_service is None:
            datapipe_adapter_fn, reading_service = None, datapipe_adapter_fn
        datapipe = adapt(datapipe, datapipe_adapter_fn)
        if pin_memory and datapipe.node.op != "pin_memory":
            datapipe = datapipe.pin_memory()
        check_sharded_once(datapipe.node)  # here, before a worker service starts its workers
        self.datapipe = datapipe
        service = reading_service or InProcessReadingService()
        self._stats: CollectsStats | None = None  # the service, once it collects
        if stats or progress:
            flag = "stats=True" if stats else "progress=True"
            require(service, CollectsStats, f"collect statistics for DataLoader2({flag})")
        self.reading_service = service
        service.initialize(datapipe.node)
        if isinstance(service, CollectsStats) and (stats or progress):
            service.collect_stats()
            self._stats = service
        self._progress = progress
        self._in_flight = flight.count(in_flight)
        self._waited = self._outside = 0.0
        self._seed = seed
        self._next_epoch = 0
        self._pending: dict | None = None
        self._current: dict | None = None  # epoch, base seed, yielded, done
        self._drawn: tuple[int, int] | None = None  # (epoch, seed) drawn ahead
        self._epoch_it: Any = None  # weak reference to the service's iterator of the epoch
        self._closed = False

    def seed(self, seed: int) -> None:
        """Use ``seed`` for the following epochs."""
        self._seed = seed

    def set_epoch(self, epoch: int) -> None:
        """The next ``iter()`` runs epoch ``epoch``."""
        self._next_epoch = epoch

    def __iter__(self) -> Iterator[T]:
        if self._closed:
            raise RuntimeError("DataLoader2 was shut down")
        pending, self._pending = self._pending, None
        if pending is not None and not pending["done"]:
            epoch, base_seed, yielded = pending["epoch"], pending["seed"], pending["yielded"]
            graph_state, replay = pending["graph"], pending.get("replay", 0)
        else:
            epoch, base_seed, yielded, graph_state, replay = self._next_epoch, None, 0, None, 0
            if pending is not None:
                epoch = pending["epoch"] + 1
        if base_seed is None:
            base_seed = self._agree_seed(self._seed_of(epoch))
        self._drawn = None
        self._next_epoch = epoch + 1
        current = {
            "epoch": epoch,
            "seed": base_seed,
            "yielded": yielded,
            "done": False,
            "graph": _LIVE if replay else graph_state,
            "anchors": flight.Anchors(yielded - replay, graph_state),  # to rewind to
            "opened_at": yielded - replay,  # where the service's epoch iterator began
        }
        self._current = current
        it = self.reading_service.epoch(base_seed, epoch, graph_state)
        self._epoch_it = _weak(it)
        if replay:
            flight.replay(it, replay, epoch)
        self._announce_next_epoch()
        it = self._run_timed(it, current) if self._stats is not None else self._run(it, current)
        if self._in_flight:
            it = self._anchored(it, current)
        return progress_bar(it, self, epoch) if self._progress else it

    def _run(self, it: Iterator[T], current: dict) -> Iterator[T]:
        for item in it:
            current["yielded"] += 1
            current["graph"] = _LIVE
            yield item
        if self._closed:  # the service's iterator was closed by shutdown()
            raise RuntimeError("DataLoader2 was shut down during this epoch")
        if self._current is current:
            current["done"] = True

    def _anchored(self, it: Iterator[T], current: dict) -> Iterator[T]:
        """Between two elements, now and then a graph state to rewind to, so
        that a state taken with ``in_flight`` replays few elements."""
        clock, anchors, back = perf_counter, current["anchors"], self._in_flight
        due = clock()
        for item in it:
            yield item
            now = clock()
            if now >= due:
                anchors.add(current["yielded"], self.reading_service.state(), back)
                due = now + (clock() - now) * flight.SPACING

    def _announce_next_epoch(self) -> None:
        """Tell the service which epoch follows this one, with its seed, so
        that workers may start it as soon as they finish this one. A loader
        without a seed draws that seed now (ranks agree on it now too)."""
        service = self.reading_service
        if not isinstance(service, PreparesEpochs):
            return
        epoch = self._next_epoch
        if self._seed is None:
            self._drawn = (epoch, self._agree_seed(draw_base_seed()))
        service.prepare_epoch(self._seed_of(epoch), epoch)

    def _ranks(self) -> tuple[int, int]:
        """(this rank, world size); (0, 1) where the service is the only rank."""
        service = self.reading_service
        return service.ranks() if isinstance(service, SpansRanks) else (0, 1)

    def _agree_seed(self, seed: int) -> int:
        """The base seed every rank uses: ``seed`` where there is one rank."""
        service = self.reading_service
        return service.agree_seed(seed) if isinstance(service, SpansRanks) else seed

    def _seed_of(self, epoch: int) -> int:
        """The seed of ``epoch`` before ranks agree on it: derived from the
        loader's seed, else the one drawn ahead for it, else a new draw."""
        if self._seed is not None:
            return derive_seed(self._seed, epoch)
        if self._drawn is not None and self._drawn[0] == epoch:
            return self._drawn[1]
        return draw_base_seed()

    def stats(self, all_ranks: bool = False) -> PipelineStats:
        """Per-node statistics since the loader started, summed over this
        rank's workers; with ``all_ranks``, over every rank (a collective:
        call it on every rank). Needs ``DataLoader2(..., stats=True)``."""
        if self._stats is None:
            raise RuntimeError(
                "statistics are off: create the loader with DataLoader2(..., stats=True)"
            )
        output, service = self.datapipe.node, self.reading_service
        snapshots = self._stats.stats_snapshots()
        if all_ranks:  # nodes matched by position: each rank has ids of its own
            snapshots = by_position(snapshots, output)
            if isinstance(service, SpansRanks):
                snapshots = service.gather(snapshots)
            snapshots = by_id(snapshots, output)
        return build_stats(output, snapshots, self._waited, self._outside)

    def _run_timed(self, it: Iterator[T], current: dict) -> Iterator[T]:
        """``_run``, timing the wait for each element and the work between."""
        clock = perf_counter
        before = clock()
        for item in self._run(it, current):
            got = clock()
            self._waited += got - before
            yield item
            before = clock()
            self._outside += before - got

    def state_dict(self, in_flight: int | None = None) -> dict[str, Any]:
        """Plain data (msgpack/JSON-serializable): epoch, base seed, elements
        yielded and the graph's positions and RNG states.

        The state describes the stream after the element the loop is on: the
        last one handed out, less ``in_flight`` (default: the loader's) taken
        ahead. A pull that ended the epoch counts as one of those. A worker
        service says where each virtual worker was then (``StatesBack``: it
        resumes on another layout too); otherwise the state points at an
        earlier graph state with the elements to replay from it (a state per
        element would cost more than the element): one the loader keeps now
        and then when it has ``in_flight``, else that of the previous
        ``state_dict()`` call or of the epoch's start. Called by Lightning's
        fit loop (which holds one batch ahead) on a loader without
        ``in_flight``, ``in_flight`` is 1."""
        current = self._current
        # under torch.distributed, the rank that saved it: a job on another
        # world size loads the list of every rank's state
        ranks = self._ranks() if isinstance(self.reading_service, SpansRanks) else None
        rank = {} if ranks is None else {"rank": ranks[0], "world_size": ranks[1]}
        if current is None:
            return {
                "format": STATE_FORMAT,
                "version": STATE_VERSION,
                "epoch": self._next_epoch - 1,
                "seed": None,
                "yielded": 0,
                "done": True,
                "graph": None,
                "replay": 0,
                **rank,
            }
        graph = current["graph"]
        if graph is _LIVE:
            graph = None if current["done"] else self.reading_service.state()
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "epoch": current["epoch"],
            "seed": current["seed"],
            "yielded": current["yielded"],
            "done": current["done"],
            "graph": graph,
            "replay": 0,
            **rank,
        }
        if in_flight is None:
            in_flight = self._in_flight or flight.taken_ahead_by_caller()
        else:
            in_flight = flight.count(in_flight)
        back = in_flight - 1 if current["done"] and in_flight else in_flight
        if not back:
            return state
        graph = self._state_back(current, back)
        if graph is not None:
            return {**state, "yielded": state["yielded"] - back, "done": False, "graph": graph}
        # an earlier graph state and the elements to replay from it
        state = current["anchors"].rewound(state, back, in_flight)
        service = self.reading_service
        if state["graph"] is None and state["replay"] and isinstance(service, StatesBack):
            state["graph"] = service.start_state()  # the epoch's start, as laid out
        return state

    def _state_back(self, current: dict, back: int) -> Any:
        """The service's state ``back`` elements before the last one handed
        out, where it can tell (each virtual worker's own position, which
        resumes on another layout too); None otherwise."""
        service = self.reading_service
        if not isinstance(service, StatesBack) or back > current["yielded"] - current["opened_at"]:
            return None  # (elements of an earlier iterator are not the service's to go back over)
        return service.state_back(back)

    def load_state_dict(self, state: dict[str, Any] | list[dict[str, Any]]) -> None:
        """The next ``iter()`` continues from ``state``. Under
        torch.distributed, ``state`` may be the list of every old rank's
        state (saved by each rank at the same step): then the job may have
        another world size, and each remaining sample comes once (elastic
        resume, docs/reading-services.md)."""
        if isinstance(state, list):
            for part in state:
                self._check_state(part)
            state = rank_state(state, *self._ranks())
        self._check_state(state)
        self._pending = dict(state)
        self._current = None

    @staticmethod
    def _check_state(state: Any) -> None:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ResumeError(f"not a DataLoader2 state dict: {str(state)[:200]}")
        if state.get("version") not in (1, STATE_VERSION):
            raise ResumeError(
                f"DataLoader2 state version {state.get('version')} is not "
                f"supported (this streamdag reads versions 1 to {STATE_VERSION})"
            )

    def shutdown(self) -> None:
        """Stop workers and threads, and end the current epoch: whatever its
        iterator holds (elements read ahead, open files) is let go now, even
        if the loop still holds the iterator, which raises if used again.
        Idempotent."""
        if not self._closed:
            self._closed = True
            self.reading_service.shutdown()  # first: it stops what the iterator may wait on
            self._close_epoch()

    def _close_epoch(self) -> None:
        it = self._epoch_it() if self._epoch_it is not None else None
        self._epoch_it = None
        close = getattr(it, "close", None)
        if close is not None:
            with contextlib.suppress(ValueError):  # running (another thread): it ends itself
                close()

    def __enter__(self) -> DataLoader2[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


_LIVE = object()  # the graph state must be read from the running service


def _weak(it: Iterator[Any]) -> weakref.ref | None:
    """A weak reference to a service's epoch iterator, where it takes one:
    the loader must not keep an iterator the loop has dropped."""
    try:
        return weakref.ref(it)
    except TypeError:
        return None

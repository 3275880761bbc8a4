"""DistributedReadingService: one rank of a torch.distributed job.

Rank and world size come from torch.distributed (initialize the process group
first). Every epoch's base seed is rank 0's, broadcast to all ranks, so nodes
upstream of the sharding point agree everywhere.

Equal batch counts: a rank that runs out of data while others go on would
leave DDP's collectives waiting forever. Each rank pulls a round of
``sync_every`` elements ahead and the ranks learn the shortest and the
longest round with one ``all_reduce(MAX)`` of two integers. Then:

- ``even_batches=True`` (or ``"drop"``, the default): each yields the
  shortest round's count; a short round ends the epoch on every rank. The
  longer ranks' surplus (the difference in shard sizes) is dropped. To say
  how much, a rank that drops reads its surplus to the end after the epoch's
  last element, counts it (statistics, and one ``UnevenShardsWarning`` per
  epoch with the number) and discards it; so the epoch lasts as long as the
  longest shard takes to read, the surplus read in vain. (Not where a cycle()
  without a count could make the rest endless: the warning says so.)
- ``even_batches="pad"``: each yields the longest round's count. A rank that
  has run out tops up its rounds with its own epoch again from its start
  (pass 1, 2, ...: the inner service re-runs the epoch with the same seed, so
  these are the elements it yielded first, in the same order) until every
  rank has run out. Every element is yielded at least once; the repeats are
  counted. Re-running holds nothing in memory, and a position in a repeating
  pass is a resume state like any other. A round in which some rank tops up
  ends with a second collective, so a rank that cannot (its share of the
  epoch is empty, or its pipeline fails) stops the others instead of leaving
  them waiting.
- ``even_batches=False`` yields each rank's own shard in full; the training
  loop must then cope with uneven ends (e.g. DDP's ``join()``).

Cost of the rounds: one small CPU collective per ``sync_every`` elements
(tens of microseconds over gloo on one host), up to ``sync_every`` elements
held ahead per rank. A data error on one rank is announced to the others in
the same collective, so they fail too instead of waiting. The collectives run
on a gloo group of their own, created when the default group uses another
backend (NCCL), so they never touch the GPU stream."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta
from itertools import islice
from typing import Any

from ..core.node import Node, walk
from ..core.placement import find_boundary, warn_if_unsharded
from ..errors import ParamError, ResumeError
from .base import ReadingService
from .capabilities import (
    CollectsStats,
    PreparesEpochs,
    Ranked,
    SpansRanks,
    StatesBack,
    require,
)
from .elastic import RANKS
from .errors import UnevenShardsWarning
from .in_process import InProcessReadingService

_MODES = {True: "drop", "drop": "drop", "pad": "pad", False: None}


class DistributedReadingService(
    ReadingService, SpansRanks, CollectsStats, PreparesEpochs, StatesBack
):
    """Runs the graph on this rank with the service it wraps (in process by
    default); see the module's docstring for seeds and equal batch counts.

    ``timeout`` (torchdata's argument, seconds): how long the collectives of
    seeds and rounds wait for the other ranks, on the gloo group created when
    the default group uses another backend."""

    def __init__(
        self, timeout: float = 1800, *, even_batches: bool | str = True, sync_every: int = 1
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ParamError(f"timeout must be seconds > 0, got {timeout!r}")
        if isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1:
            raise ParamError(f"sync_every must be an int >= 1, got {sync_every!r}")
        if not isinstance(even_batches, bool | str) or even_batches not in _MODES:
            raise ParamError(
                f"even_batches must be True or 'drop' (stop with the shortest "
                f"rank), 'pad' (repeat to the longest) or False, got "
                f"{even_batches!r}"
            )
        self.timeout = timeout
        self.even_batches = even_batches
        self.sync_every = sync_every
        self._mode = _MODES[even_batches]
        self._inner: ReadingService = InProcessReadingService()
        self._group: Any = None
        self.rank, self.world_size = 0, 1
        self._seed_epoch = (0, 0)
        # the resume position: a pass, its (pass, inner state) before the
        # current round (None: its live position) and the elements since
        self._at: tuple[_Pass, tuple[int, Any] | None, int] | None = None
        self._token: object | None = None
        self._dropped = self._repeated = 0  # statistics, since the loader started
        self._endless = False
        self._read_past = False  # this epoch read elements it did not yield (dropped)

    def wrap(self, inner: ReadingService) -> None:
        """Run ``inner`` (e.g. a multiprocess service) on this rank: it must
        take the rank (``Ranked``)."""
        require(inner, Ranked, f"run under {type(self).__name__}")
        self._inner = inner

    def initialize(self, output: Node) -> None:
        dist = _distributed()
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if dist.get_backend() != "gloo" and self._group is None:
            self._group = dist.new_group(backend="gloo", timeout=timedelta(seconds=self.timeout))
        self._inner.set_rank(self.rank, self.world_size)
        self._endless = may_not_end(output)
        if isinstance(self._inner, InProcessReadingService):
            warn_if_unsharded(find_boundary(output) or output, self.world_size, type(self).__name__)
        self._inner.initialize(output)

    def agree_seed(self, seed: int) -> int:
        import torch

        tensor = torch.tensor([seed], dtype=torch.int64)
        _distributed().broadcast(tensor, src=0, group=self._group)
        return int(tensor.item())

    def prepare_epoch(self, base_seed: int, epoch: int) -> None:
        if isinstance(self._inner, PreparesEpochs):
            self._inner.prepare_epoch(base_seed, epoch)

    def ranks(self) -> tuple[int, int]:
        return self.rank, self.world_size

    def epoch(self, base_seed: int, epoch: int, state: Any | None) -> Iterator[Any]:
        inner_state, skip, number = None, 0, 0
        if isinstance(state, dict) and RANKS in state:  # for the inner service to deal
            inner_state, state = state, None
        if state is not None:
            if not isinstance(state, dict) or state.get("world_size") != self.world_size:
                saved = state.get("world_size") if isinstance(state, dict) else None
                msg = (
                    f"DistributedReadingService: the state was saved with world size "
                    f"{saved}, this job has {self.world_size}; one rank's state covers "
                    "its own shard only: give loader.load_state_dict the list of every "
                    "old rank's state (or start the next epoch with "
                    "loader.set_epoch(state['epoch'] + 1))"
                )
                raise ResumeError(msg)
            inner_state, skip, number = state["inner"], state["skip"], state.get("pass", 0)
            if number and self._mode != "pad":
                raise ResumeError(
                    "DistributedReadingService: the state was saved while this "
                    "rank repeated its elements under even_batches='pad'; "
                    "resume it with even_batches='pad'"
                )
        self._seed_epoch = (base_seed, epoch)
        own = None
        if number == 0:  # this rank's epoch, opened now (its workers start now)
            own = _Pass(self, 0, inner_state, self._open(inner_state))
        repeats = _Pass(self, number or 1, inner_state if number else None)
        self._at = (own or repeats, (number, inner_state) if skip else None, skip)
        self._read_past = False
        self._token = token = object()
        return self._run(own, repeats, skip, token)

    def state(self) -> Any:
        if self._at is None:
            raise RuntimeError("DistributedReadingService: no epoch has started")
        source, mark, skip = self._at
        number, inner = mark if mark is not None else source.position()
        return {"world_size": self.world_size, "pass": number, "inner": inner, "skip": skip}

    def state_back(self, count: int) -> Any:
        """The inner service's, where each element this rank yielded was the
        next of its own pass (no round held ahead, no repeats, nothing read
        and dropped after them)."""
        if self._at is None or not isinstance(self._inner, StatesBack):
            return None
        source, mark, skip = self._at
        if mark is not None or skip or source.number or self._read_past:
            return None
        inner = self._inner.state_back(count)
        return None if inner is None else {**self.state(), "inner": inner}

    def start_state(self) -> Any:
        inner = self._inner.start_state() if isinstance(self._inner, StatesBack) else None
        if inner is None:
            return None
        return {"world_size": self.world_size, "pass": 0, "inner": inner, "skip": 0}

    def collect_stats(self) -> None:
        require(self._inner, CollectsStats, "collect statistics")
        self._inner.collect_stats()

    def stats_snapshots(self) -> list[dict[str, Any]]:
        counts = {"dropped": self._dropped, "repeated": self._repeated}
        inner = self._inner.stats_snapshots() if isinstance(self._inner, CollectsStats) else []
        return [*inner, {"nodes": {}, "even_batches": counts}]

    def gather(self, snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every rank's snapshots: a collective, so every rank must call it."""
        if self.world_size == 1:
            return snapshots
        gathered: list[Any] = [None] * self.world_size
        _distributed().all_gather_object(gathered, snapshots, group=self._group)
        return [s for rank in gathered for s in rank]

    def shutdown(self) -> None:
        self._token = None
        self._inner.shutdown()

    def _open(self, inner_state: Any) -> Iterator[Any]:
        """A run of this epoch through the inner service, from ``inner_state``."""
        return self._inner.epoch(*self._seed_epoch, inner_state)

    def _run(self, own: _Pass | None, repeats: _Pass, skip: int, token: object) -> Iterator[Any]:
        source = own or repeats
        done = len(source.take(skip))
        if done < skip:
            raise ResumeError(
                f"rank {self.rank}: the pipeline ended after {done} elements "
                f"while resuming to element {skip}"
            )
        self._at = (source, None, 0)
        if self._mode is None:
            yield from source.rest()
            return
        size, pad = self.sync_every, self._mode == "pad"
        ended = own is None  # this rank's own elements are used up
        while True:
            mark = own.position() if own is not None and size > 1 and not ended else None
            try:
                round_ = [] if own is None or ended else own.take(size)
            except BaseException:
                self._agree(-1)  # tell the other ranks, so they do not wait for this one
                raise
            least, most = self._agree(len(round_))
            self._check(least)
            ended = ended or len(round_) < size
            count = most if pad else least
            extra, extra_mark = [], None
            if pad and most > least:  # some ranks top up this round: all learn if they could
                try:
                    if count > len(round_):
                        extra_mark = repeats.position()
                        extra = repeats.take(count - len(round_))
                except BaseException:
                    self._agree(-1)
                    raise
                self._check(self._agree(0)[0])
            for i, item in enumerate(round_[:count]):  # from pass 0: source is own
                # once the round is used up, the pass's own state is exact again
                self._at = (source, None, 0) if i + 1 == size else (source, mark, i + 1)
                yield item
                self._check_current(token)
            for j, item in enumerate(extra):
                self._at = (repeats, extra_mark, j + 1)
                self._repeated += 1
                yield item
                self._check_current(token)
            if count < size:
                self._read_past = len(round_) > count or not ended
                if not pad and own is not None:
                    self._count_dropped(own, len(round_) - count, ended)
                return

    def _count_dropped(self, own: _Pass, surplus: int, ended: bool) -> None:
        """Count what this rank will not yield: the rest of its last round
        and, read to its end and discarded, the rest of its epoch."""
        rest, unfinished = 0, None
        if not ended and self._endless:
            unfinished = "the rest was not read: a cycle() without a count may never end"
        elif not ended:
            rest, unfinished = own.drain()
        dropped = surplus + rest
        if not dropped and unfinished is None:
            return
        self._dropped += dropped
        number = f"{dropped} element{'' if dropped == 1 else 's'}"
        if unfinished is not None:
            number = f"at least {number} ({unfinished})"
        msg = (
            f"DistributedReadingService: rank {self.rank} dropped {number} at the end of "
            f"epoch {self._seed_epoch[1]}: with even_batches=True every rank stops when "
            "the shortest ends, so that all yield as many batches. even_batches='pad' "
            "repeats the shorter ranks' own elements instead; even_batches=False yields "
            "every rank's full shard (use DDP's join())"
        )
        warnings.warn(msg, UnevenShardsWarning, stacklevel=4)

    def _check_current(self, token: object) -> None:
        if self._token is not token:
            raise RuntimeError("this epoch's iterator was ended by a newer iter()")

    def _check(self, least: int) -> None:
        if least < 0:
            raise RuntimeError(
                f"rank {self.rank}: another rank's data pipeline failed "
                "(see its error); stopping this rank's epoch as well"
            )

    def _agree(self, count: int) -> tuple[int, int]:
        """The smallest and the largest ``count`` over all ranks (one
        all_reduce of two integers)."""
        import torch

        dist = _distributed()
        tensor = torch.tensor([-count, count], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self._group)
        return -int(tensor[0]), int(tensor[1])


class _Pass:
    """One run of this rank's epoch through the inner service: pass 0 is the
    epoch; under ``even_batches="pad"``, passes 1, 2, ... run it again from
    its start to top up the rounds of a rank that has run out."""

    def __init__(
        self,
        service: DistributedReadingService,
        number: int,
        state: Any,
        it: Iterator[Any] | None = None,
    ) -> None:
        self._service = service
        self.number = number
        self._state = state  # where it starts (None: the start of the epoch)
        self._it = it
        self._taken = 0

    def position(self) -> tuple[int, Any]:
        """(pass, inner state) after the last element taken."""
        return self.number, self._state if self._it is None else self._service._inner.state()

    def take(self, n: int) -> list[Any]:
        """The next ``n`` elements: fewer only where pass 0 ends; the
        repeating passes run the epoch again as often as needed."""
        out: list[Any] = []
        while len(out) < n:
            if self._it is None:
                self._it = self._service._open(self._state)
            got = list(islice(self._it, n - len(out)))
            self._taken += len(got)
            out += got
            if len(out) == n or self.number == 0:
                break
            if self._state is None and not self._taken:
                raise RuntimeError(
                    f"rank {self._service.rank}: even_batches='pad' has nothing to repeat: "
                    f"this rank's share of epoch {self._service._seed_epoch[1]} is empty. "
                    "Use more shards than ranks x workers, or even_batches=True"
                )
            self.number, self._state, self._it, self._taken = self.number + 1, None, None, 0
        return out

    def rest(self) -> Iterator[Any]:
        """The elements after the ones taken (pass 0)."""
        return self._it if self._it is not None else self._service._open(self._state)

    def drain(self) -> tuple[int, str | None]:
        """How many elements are left, reading them; and why the count
        stopped early, if it did."""
        left = 0
        try:
            for _ in self.rest():
                left += 1
        except Exception as exc:  # noqa: BLE001 - reported; these elements are dropped anyway
            return left, f"counting stopped at {type(exc).__name__}: {exc}"
        return left, None


def may_not_end(output: Node) -> bool:
    """Might an epoch of ``output`` have no end: a cycle() without a count
    that no header follows (a zip after it may still end: this errs on the
    side of "endless")."""
    endless: dict[str, bool] = {}
    for node in walk(output):
        forever = node.op == "cycle" and node.params.get("count") is None
        endless[node.id] = node.op != "header" and (
            forever or any(endless[i.id] for i in node.inputs)
        )
    return endless[output.id]


def _distributed() -> Any:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        msg = (
            "DistributedReadingService needs torch.distributed: call "
            "torch.distributed.init_process_group(...) on every rank before creating "
            "the DataLoader2"
        )
        raise RuntimeError(msg)
    return dist

"""DistributedReadingService: one rank of a torch.distributed job.

Rank and world size come from torch.distributed (initialize the process group
first). Every epoch's base seed is rank 0's, broadcast to all ranks, so nodes
upstream of the sharding point agree everywhere.

Equal batch counts (``even_batches=True``, the default): a rank that runs out
of data while others go on would leave DDP's collectives waiting forever, so
all ranks stop when the shortest one ends. Method: each rank pulls a round of
``sync_every`` elements ahead, the ranks agree on the smallest round with one
``all_reduce(MIN)`` of one integer, and each yields that many; a short round
ends the epoch on every rank. Cost: one small CPU collective per
``sync_every`` elements (tens of microseconds over gloo on one host), up to
``sync_every`` elements held ahead per rank, and the longer ranks' surplus
elements (fewer than the difference in shard sizes) are dropped for that
epoch. A data error on one rank is announced to the others in the same
collective, so they fail too instead of waiting. The collectives run on a
gloo group of their own, created when the default group uses another backend
(NCCL), so they never touch the GPU stream.

``even_batches=False`` yields each rank's own shard in full; the training loop
must then cope with uneven ends (e.g. DDP's ``join()``)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from ..core.node import Node
from ..errors import ParamError, ResumeError
from .base import ReadingService
from .in_process import InProcessReadingService
from .placement import find_boundary, warn_if_unsharded

_EXACT = object()  # the inner service's own state is the position


class DistributedReadingService(ReadingService):
    def __init__(self, even_batches: bool = True, sync_every: int = 1) -> None:
        if isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1:
            raise ParamError(f"sync_every must be an int >= 1, got {sync_every!r}")
        self.even_batches = even_batches
        self.sync_every = sync_every
        self._inner: ReadingService = InProcessReadingService()
        self._group: Any = None
        self.rank, self.world_size = 0, 1
        self._snap: Any = _EXACT
        self._offset = 0
        self._token: object | None = None

    def wrap(self, inner: ReadingService) -> None:
        """Run ``inner`` (e.g. a multiprocess service) on this rank."""
        self._inner = inner

    def initialize(self, output: Node) -> None:
        dist = _distributed()
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if dist.get_backend() != "gloo" and self._group is None:
            self._group = dist.new_group(backend="gloo")
        self._inner.set_rank(self.rank, self.world_size)
        if isinstance(self._inner, InProcessReadingService):
            warn_if_unsharded(find_boundary(output) or output, self.world_size,
                              type(self).__name__)
        self._inner.initialize(output)

    def agree_seed(self, seed: int) -> int:
        import torch

        tensor = torch.tensor([seed], dtype=torch.int64)
        _distributed().broadcast(tensor, src=0, group=self._group)
        return self._inner.agree_seed(int(tensor.item()))

    def prepare_epoch(self, base_seed: int, epoch: int) -> None:
        self._inner.prepare_epoch(base_seed, epoch)

    def epoch(self, base_seed: int, epoch: int, state: Any | None) -> Iterator[Any]:
        inner_state, skip = None, 0
        if state is not None:
            if not isinstance(state, dict) or state.get("world_size") != self.world_size:
                saved = state.get("world_size") if isinstance(state, dict) else None
                msg = (f"DistributedReadingService: the state was saved with world size "
                       f"{saved}, this job has {self.world_size}; each rank resumes its own "
                       "shard, so the world size must match (or start the next epoch with "
                       "loader.set_epoch(state['epoch'] + 1))")
                raise ResumeError(msg)
            inner_state, skip = state["inner"], state["skip"]
        self._snap, self._offset = (inner_state, skip) if skip else (_EXACT, 0)
        self._token = token = object()
        return self._run(self._inner.epoch(base_seed, epoch, inner_state), skip, token)

    def state(self) -> Any:
        inner = self._inner.state() if self._snap is _EXACT else self._snap
        return {"world_size": self.world_size, "inner": inner, "skip": self._offset}

    def collect_stats(self) -> None:
        self._inner.collect_stats()

    def stats_snapshots(self) -> list[dict[str, Any]]:
        return self._inner.stats_snapshots()

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

    def _run(self, it: Iterator[Any], skip: int, token: object) -> Iterator[Any]:
        for done in range(skip):
            if next(it, _EXACT) is _EXACT:
                raise ResumeError(f"rank {self.rank}: the pipeline ended after {done} elements "
                                  f"while resuming to element {skip}")
        self._snap, self._offset = _EXACT, 0
        if not self.even_batches:
            yield from it
            return
        size = self.sync_every
        while True:
            snap = self._inner.state() if size > 1 else _EXACT
            try:
                round_ = list(islice(it, size))
            except BaseException:
                self._agree(-1)  # tell the other ranks, so they do not wait for this one
                raise
            count = self._agree(len(round_))
            if count < 0:
                raise RuntimeError(f"rank {self.rank}: another rank's data pipeline failed "
                                   "(see its error); stopping this rank's epoch as well")
            self._snap, self._offset = snap, 0
            for i in range(count):
                self._offset = i + 1
                if i == size - 1:  # the round is used up: the inner state is exact again
                    self._snap, self._offset = _EXACT, 0
                yield round_[i]
                if self._token is not token:
                    raise RuntimeError("this epoch's iterator was ended by a newer iter()")
            if count < size:
                return

    def _agree(self, count: int) -> int:
        """The smallest ``count`` over all ranks (one all_reduce)."""
        import torch

        dist = _distributed()
        tensor = torch.tensor([count], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN, group=self._group)
        return int(tensor.item())


def _distributed() -> Any:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        msg = ("DistributedReadingService needs torch.distributed: call "
               "torch.distributed.init_process_group(...) on every rank before creating "
               "the DataLoader2")
        raise RuntimeError(msg)
    return dist

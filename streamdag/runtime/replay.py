"""Replay from checkpoints: how buffering nodes keep their state small.

A buffering node (shuffle, fork, prefetch, flatmap) is ahead of its consumer:
it has pulled items it has not yet passed on. Instead of copying those samples
into its state, it numbers every item it pulls and keeps its input's state
every ``every`` items. To restore, it resets the input to the newest
checkpoint at or before the oldest item it still needs and replays forward:
state stays positions and RNG states, and a resume re-reads fewer than
``every`` items plus the buffered window."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from ..errors import ResumeError

if TYPE_CHECKING:
    from .node import RuntimeNode


def restore_source(source: RuntimeNode, checkpoint: list | None) -> None:
    """Restore a replaying node's input at once, when the node itself is
    restored: every restore in the graph must land before any node starts
    (a fork hub gathers its branches' requests before its first pull)."""
    if checkpoint is not None:
        source.restore(checkpoint[1])


class Replayer:
    """Pulls from ``source``, counting items (``seq`` = items pulled so far)."""

    def __init__(self, source: RuntimeNode, every: int) -> None:
        self.source = source
        self.every = max(1, every)
        self.seq = 0
        self._first = 0
        self._it: Any = None
        self._ckpts: deque[tuple[int, Any]] = deque()
        self._lock = threading.Lock()  # prefetch reads checkpoints from another thread

    def start(self, checkpoint: list | None = None) -> None:
        """Begin pulling, from the beginning or from a saved ``[seq, state]``
        (the source must already have been restored to that state, see
        ``restore_source``)."""
        if checkpoint is not None:
            self.seq, state = checkpoint
            self._it = self.source.iterator()
        else:
            self._it = self.source.iterator()
            state = self.source.state()
        self._ckpts.clear()
        self._ckpts.append((self.seq, state))
        self._first = self.seq

    def pulled(self) -> int:
        """Items pulled since ``start`` (replayed ones included): a statistic."""
        return self.seq - self._first

    def resume(self, restored: dict | None, who: str) -> None:
        """Start fresh, or from ``restored["ckpt"]`` replayed up to item
        ``restored["next"]`` (the common state shape of buffering nodes)."""
        if restored is None:
            self.start()
        else:
            self.start(restored["ckpt"])
            self.skip_to(restored["next"], who)

    def pull(self) -> Any:
        """The next item; StopIteration when the input is exhausted."""
        self._mark()
        item = next(self._it)
        self.seq += 1
        return item

    def take(self, count: int) -> list[Any]:
        """The next ``count`` items (fewer at the end of the input) in one
        C-level slice, no work per item: for a node that reads its input in
        blocks of ``every`` items, which then each start at a checkpoint."""
        self._mark()
        items = list(islice(self._it, count))
        self.seq += len(items)
        return items

    def _mark(self) -> None:
        """Keep the input's state when item ``seq`` starts a new checkpoint."""
        if self.seq % self.every == 0 and self._ckpts[-1][0] != self.seq:
            state = self.source.state()
            with self._lock:
                self._ckpts.append((self.seq, state))

    def numbered(self) -> Iterator[tuple[int, Any]]:
        """``(number, item)`` for each item pulled, until the input ends (the
        numbers a buffering node keeps in its state)."""
        while True:
            seq = self.seq
            try:
                item = self.pull()
            except StopIteration:
                return
            yield seq, item

    def release(self) -> None:
        """Close and drop the input's iterator (its suspended generators hold the
        element they were at, e.g. a batch on shared memory); the checkpoints,
        and so the node's state, stay readable."""
        it, self._it = self._it, None
        close = getattr(it, "close", None)
        if close is not None:
            close()

    def checkpoint(self, needed: int) -> list:
        """The newest ``[seq, state]`` from which item number ``needed`` can be replayed."""
        with self._lock:
            best = self._ckpts[0]
            for ckpt in self._ckpts:
                if ckpt[0] > needed:
                    break
                best = ckpt
        return [best[0], best[1]]

    def forget_before(self, needed: int) -> None:
        """Drop checkpoints that no restore to ``needed`` or later can use."""
        with self._lock:
            while len(self._ckpts) > 1 and self._ckpts[1][0] <= needed:
                self._ckpts.popleft()

    def replay(self, target: int, who: str) -> Any:
        """The next item while replaying towards item ``target``: the input
        must not end before it."""
        try:
            return self.pull()
        except StopIteration:
            raise self.ended(target, who) from None

    def ended(self, target: int, who: str) -> ResumeError:
        """The error for an input that ended before item ``target`` while replaying."""
        msg = (
            f"{who}: input ended at item {self.seq} while replaying to item {target}; "
            "the pipeline upstream is not deterministic (a user function with "
            "unseeded randomness, or data that changed since the state was saved)"
        )
        return ResumeError(msg)

    def skip_to(self, seq: int, who: str) -> None:
        """Replay (discard) items until ``seq`` items have been pulled."""
        while self.seq < seq:
            self.replay(seq, who)

"""fork and demux: one input, several outputs, bounded buffers.

The hub node pulls from the input once per element and routes it to the
queues of its output branches (fork: to all; demux: to the one the classifier
names). As in torchdata, a fork output that falls more than ``buffer_size``
elements behind the leading one, or a demux whose outputs together hold more
than ``buffer_size`` elements waiting, raises ``BufferOverflowError`` (a
``BufferError``) instead of growing memory without bound; ``buffer_size=-1``
sets no bound."""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import BufferOverflowError, ParamError, ResumeError
from ..runtime.node import RuntimeNode
from ..runtime.replay import Replayer


class HubNode(RuntimeNode):
    """State: for each branch, the number of the last element it took, and a
    checkpoint of the input at or before the oldest element still queued.
    Restore replays from there and re-queues what each branch has not taken."""

    #: how often the input's state is kept (``buffer_size=-1``: no size to go by)
    _UNBOUNDED_EVERY = 256

    def setup(self) -> None:
        self.branches: dict[int, BranchNode] = {}
        self._requests: list[tuple[int, dict]] = []
        self.started = False

    def reset(self) -> None:
        self.started = False
        self._requests = []

    def route(self, item: Any) -> Any:
        raise NotImplementedError

    def start(self) -> None:
        size = self.params["buffer_size"]
        self._replay = Replayer(self.inputs[0], size // 4 if size >= 0 else self._UNBOUNDED_EVERY)
        self._queues = {i: deque() for i in self.branches}
        self._last = dict.fromkeys(self.branches, -1)
        self._done = False
        self._opened: set[int] = set()
        if self._requests:
            oldest = min((state for _, state in self._requests), key=lambda s: s["ckpt"][0])
            for index, state in self._requests:
                self._last[index] = state["last"][str(index)]
            self._requests = []
            self.inputs[0].restore(oldest["ckpt"][1])
            self._replay.start(oldest["ckpt"])
        else:
            self._replay.start()
        self._start_seq = self._replay.seq
        self.started = True

    def open(self, index: int) -> Iterator[Any]:
        if not self.started:
            self.start()
        if index in self._opened:
            msg = (
                f"{self.label}: branch {index} was iterated twice in one epoch (is it under "
                "cycle()? put cycle() before the fork/demux)"
            )
            raise RuntimeError(msg)
        self._opened.add(index)
        return self._drain(index)

    def _drain(self, index: int) -> Iterator[Any]:
        queue, last = self._queues[index], self._last
        while True:
            while queue:
                seq, item = queue.popleft()
                last[index] = seq
                yield item
            if self._done or not self._pull(index):
                return

    def _pull(self, puller: int) -> bool:
        replay = self._replay
        seq = replay.seq
        try:
            item = replay.pull()
        except StopIteration:
            self._done = True
            return False
        for branch in self.route(item):
            queue = self._queues.get(branch)
            if queue is None or seq <= self._last[branch]:
                continue
            queue.append((seq, item))
        size = self.params["buffer_size"]
        if size >= 0:
            self.check_buffer(puller, size)
        if seq % replay.every == 0:
            replay.forget_before(self._oldest_needed())
        return True

    def check_buffer(self, puller: int, size: int) -> None:
        raise NotImplementedError

    def overflow(self, what: str, size: int) -> BufferOverflowError:
        return BufferOverflowError(
            f"{self.label}: {what} more than buffer_size={size} elements (as torchdata's "
            f"BufferError). Consume the outputs in step (e.g. zip them), raise buffer_size, "
            f"or pass buffer_size=-1 for no bound"
        )

    def _oldest_needed(self) -> int:
        """The number of the oldest element some branch has yet to take."""
        return min(
            (q[0][0] if q else self._replay.seq for q in self._queues.values()),
            default=self._replay.seq,
        )

    def state(self) -> dict:
        needed = self._oldest_needed()
        return {
            "last": {str(i): v for i, v in self._last.items()},
            "ckpt": self._replay.checkpoint(needed),
        }

    def request_restore(self, index: int, state: dict) -> None:
        """Branches ask one by one; the hub restores when first iterated, from
        the oldest checkpoint asked for (a branch behind a shuffle may ask for
        an older one than its sibling)."""
        if self.started:
            if self._replay.seq != self._start_seq or any(self._queues.values()):
                msg = (
                    f"{self.label}: output {index} asked to be restored after the hub had "
                    "started pulling; nested fork/demux graphs of this shape cannot resume"
                )
                raise ResumeError(msg)
            self.started = False  # nothing pulled yet: start again with every request
        self._requests.append((index, state))


class ForkNode(HubNode):
    def setup(self) -> None:
        super().setup()
        how = self.params["copy"]
        self._copy = None if how is None else copy.copy if how == "shallow" else copy.deepcopy

    def route(self, item: Any) -> Any:
        return self._queues

    def check_buffer(self, puller: int, size: int) -> None:
        """The puller leads; an output more than ``size`` elements behind it overflows."""
        for branch, queue in self._queues.items():
            if len(queue) > size and branch != puller:
                raise self.overflow(f"output {branch} fell", size)

    def open(self, index: int) -> Iterator[Any]:
        it = super().open(index)
        return it if self._copy is None else map(self._copy, it)


class DemuxNode(HubNode):
    def setup(self) -> None:
        super().setup()
        self._classify: Callable[[Any], Any] = self.params["classifier_fn"]

    def route(self, item: Any) -> tuple[int, ...]:
        branch = self._classify(item)
        if branch is None and self.params["drop_none"]:
            return ()
        if (
            isinstance(branch, bool)
            or not isinstance(branch, int)
            or not (0 <= branch < self.params["num_instances"])
        ):
            msg = (
                f"{self.label}: classifier_fn returned {branch!r} for {item!r:.200}; "
                f"expected an int in [0, {self.params['num_instances']})"
                + (" or None (drop_none=True)" if self.params["drop_none"] else "")
            )
            raise ValueError(msg)
        return (branch,)

    def check_buffer(self, puller: int, size: int) -> None:
        """All outputs but the puller together hold at most ``size`` elements."""
        waiting = sum(len(queue) for branch, queue in self._queues.items() if branch != puller)
        if waiting > size:
            raise self.overflow("the outputs other than the one being read hold", size)

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["classifier_fn"]]


class BranchNode(RuntimeNode):
    """Output ``index`` of a fork or demux hub."""

    def setup(self) -> None:
        hub = self.inputs[0]
        if not isinstance(hub, HubNode):
            raise ParamError(f"{self.label}: input must be a fork or demux node, got {hub.label}")
        outputs = hub.opspec.outputs(hub.params)
        if self.params["index"] >= outputs:
            raise ParamError(
                f"{self.label}: index {self.params['index']} is out of range for "
                f"{hub.label} with {outputs} outputs"
            )
        hub.branches[self.params["index"]] = self
        self.hub = hub
        self._restored = None

    def reset(self) -> None:
        self._restored = None

    def iterator(self) -> Iterator[Any]:
        return self.hub.open(self.params["index"])

    def state(self) -> dict | None:
        return self.hub.state() if self.hub.started else self._restored

    def restore(self, state: dict | None) -> None:
        self._restored = state
        if state is not None:
            self.hub.request_restore(self.params["index"], state)

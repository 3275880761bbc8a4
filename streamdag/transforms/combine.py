"""zip, concat, mux and mux_longest: several inputs into one stream.

Each node that keeps a position (concat's current input, mux's round) starts
from the beginning every time ``iterator()`` is called, unless a state was
restored just before: under ``cycle`` every pass is a full pass."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

from ..runtime.counting import position_of
from ..runtime.node import ResumableNode, RuntimeNode
from ..runtime.replay import Replayer, restore_source

_REPLAY_EVERY = 32


class ZipNode(RuntimeNode):
    """Tuples of one element from each input; stops with the shortest input."""

    def iterator(self) -> Iterator[tuple[Any, ...]]:
        return zip(*[node.iterator() for node in self.inputs], strict=False)


class ConcatNode(ResumableNode):
    """All of the first input, then all of the second, ...

    State: the current input and its state only. The inputs before it are
    done for this pass and those after it have not started (their own state
    may still be the previous pass's, under ``cycle``): both start afresh."""

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self._current = 0 if restored is None else restored["current"]
        if self._current >= len(self.inputs):
            return iter(())
        # the current input starts now, not at the first pull: a state restored
        # into it is used up in this pass even if nothing is pulled (see cycle)
        return chain(self.inputs[self._current].iterator(), chain.from_iterable(self._next()))

    def _next(self) -> Iterator[Iterator[Any]]:
        """The inputs after the current one, each started as its turn comes."""
        while True:
            self._current += 1
            if self._current >= len(self.inputs):
                return
            yield self.inputs[self._current].iterator()

    def live_state(self) -> dict:
        current = self._current
        inner = self.inputs[current].state() if current < len(self.inputs) else None
        return {"current": current, "in": inner}

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        if state is not None and state["current"] < len(self.inputs):
            self.inputs[state["current"]].restore(state["in"])


class MuxLongestNode(ResumableNode):
    """Round robin that skips the inputs already exhausted and ends when all are."""

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self._turn, self._done = (
            (0, set()) if restored is None else (restored["turn"], set(restored["done"]))
        )
        return self._run([node.iterator() for node in self.inputs])

    def _run(self, its: list[Iterator[Any]]) -> Iterator[Any]:
        count, done = len(its), self._done
        while len(done) < count:
            for turn in range(self._turn, count):
                if turn in done:
                    continue
                try:
                    item = next(its[turn])
                except StopIteration:
                    done.add(turn)
                    continue
                self._turn = turn + 1
                yield item
            self._turn = 0

    def live_state(self) -> dict:
        return {
            "turn": self._turn,
            "done": sorted(self._done),
            "in": [node.state() for node in self.inputs],
        }

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        if state is not None:
            for node, sub in zip(self.inputs, state["in"], strict=True):
                node.restore(sub)


class MuxNode(ResumableNode):
    """Round robin in whole rounds, as torchdata: a round (one element of
    each input) is passed on only once every input gave its element, so the
    output ends with the last complete round and a partial one is dropped.

    State: the rounds pulled, how many elements of the last one were passed
    on, and for each input a checkpoint at or before that round; restore
    replays the round instead of saving its elements."""

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self._replays = [Replayer(node, _REPLAY_EVERY) for node in self.inputs]
        self._round: Iterator[Any] = iter(())
        self._rounds = 0
        if restored is None:
            for replay in self._replays:
                replay.start()
            return self._run()
        taken = restored["taken"]
        pending = taken < len(self.inputs)
        self._rounds = restored["rounds"] - pending
        for replay, ckpt in zip(self._replays, restored["ckpt"], strict=True):
            replay.start(ckpt)
        self._replay_to(self._rounds)
        if pending:
            self._round = iter(
                [replay.replay(self._rounds + 1, self.label) for replay in self._replays]
            )
            self._rounds += 1
            next(islice(self._round, taken, taken), None)
        return self._run()

    def _replay_to(self, rounds: int) -> None:
        """Replay the inputs up to ``rounds`` items each, one of each in turn
        as they were first read (a fork upstream buffers no more than then)."""
        while any(replay.seq < rounds for replay in self._replays):
            for replay in self._replays:
                if replay.seq < rounds:
                    replay.replay(rounds, self.label)

    def _run(self) -> Iterator[Any]:
        pulls = [replay.pull for replay in self._replays]
        while True:
            yield from self._round
            try:
                items = [pull() for pull in pulls]
            except StopIteration:
                return
            self._rounds += 1
            self._round = iter(items)
            if self._rounds % _REPLAY_EVERY == 0:
                for replay in self._replays:
                    replay.forget_before(self._rounds - 1)

    def live_state(self) -> dict:
        count = len(self.inputs)
        taken = position_of(self._round, count)
        needed = self._rounds - (taken < count)
        return {
            "rounds": self._rounds,
            "taken": taken,
            "ckpt": [replay.checkpoint(needed) for replay in self._replays],
        }

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        for node, ckpt in zip(self.inputs, state["ckpt"] if state else (), strict=False):
            restore_source(node, ckpt)

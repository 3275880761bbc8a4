"""shuffled_flatmap: flatmap's elements, drawn at random from the expansions
of up to ``buffer_size`` input elements at a time (torchdata's
ShuffledFlatMapper): the same elements as ``flatmap``, in an order from the
node's seed, without holding whole expansions in a shuffle buffer.

State: the buffered parts' input numbers and positions, the RNG state and an
input checkpoint at or before the oldest buffered part; a resume replays the
input from there and expands the buffered parts again."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from ..core.rng_state import decode_random_state, encode_random_state
from ..runtime.attribution import framed
from ..runtime.counting import Tally
from ..runtime.node import ResumableNode
from ..runtime.replay import Replayer, restore_source
from .columns import arity, selecting
from .flatmap import REPLAY_EVERY


class ShuffledFlatMapNode(ResumableNode):
    def setup(self) -> None:
        super().setup()
        fn, col = self.params["fn"], self.params["input_col"]
        fn = _columns if fn is None else framed(fn, self, arity(col))
        self.fn = fn if col is None else selecting(fn, col)
        self._pulls = Tally()

    def counted(self) -> tuple[int | None, int | None]:
        return self._pulls.value, None

    def iterator(self) -> Iterator[Any]:
        self._replay = replay = Replayer(self.inputs[0], REPLAY_EVERY)
        self._pulls.follow(replay.pulled)
        self._seqs: list[int] = []  # per buffered part: its input number,
        self._parts: list[list[Any]] = []  # its elements
        self._pos: list[int] = []  # and how many of them were yielded
        restored = self.take_restored()
        self._rng = random.Random()
        if restored is None:
            self._rng.seed(self.seed())
            replay.start()
        else:
            self._rng.setstate(decode_random_state(restored["rng"]))
            self._refill(restored)
        return self._run(self.params["buffer_size"])

    def _refill(self, restored: dict) -> None:
        """Expand the buffered parts again, replaying the input from the checkpoint."""
        replay, target = self._replay, restored["next"]
        replay.start(restored["ckpt"])
        wanted = {seq: pos for seq, pos in zip(restored["seqs"], restored["pos"], strict=True)}
        parts: dict[int, list[Any]] = {}
        while replay.seq < target:
            seq = replay.seq
            item = replay.replay(target, self.label)
            if seq in wanted:
                parts[seq] = list(self.fn(item))
        self._seqs = list(restored["seqs"])
        self._parts = [parts[seq] for seq in self._seqs]
        self._pos = list(restored["pos"])

    def _run(self, size: int) -> Iterator[Any]:
        seqs, parts, pos, replay = self._seqs, self._parts, self._pos, self._replay
        rand, fn = self._rng.random, self.fn
        ended = False
        while True:
            while len(parts) < size and not ended:
                seq = replay.seq
                try:
                    part = list(fn(replay.pull()))
                except StopIteration:
                    ended = True
                    break
                if part:
                    seqs.append(seq)
                    parts.append(part)
                    pos.append(0)
            if not parts:
                return
            j = int(rand() * len(parts))
            part, at = parts[j], pos[j]
            if at + 1 < len(part):
                pos[j] = at + 1
            else:  # used up: the last part takes its slot
                seqs[j], parts[j], pos[j] = seqs[-1], parts[-1], pos[-1]
                del seqs[-1], parts[-1], pos[-1]
                replay.forget_before(min(seqs, default=replay.seq))
            yield part[at]

    def live_state(self) -> dict:
        seqs = list(self._seqs)
        return {
            "rng": encode_random_state(self._rng.getstate()),
            "seqs": seqs,
            "pos": list(self._pos),
            "next": self._replay.seq,
            "ckpt": self._replay.checkpoint(min(seqs, default=self._replay.seq)),
        }

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        restore_source(self.inputs[0], state and state["ckpt"])

    def user_functions(self) -> list[Callable[..., Any]]:
        fn = self.params["fn"]
        return [fn] if fn is not None else []


def _columns(*values: Any) -> Any:
    """No ``fn``: the element (or its one ``input_col``), or a tuple of its columns."""
    return values[0] if len(values) == 1 else values

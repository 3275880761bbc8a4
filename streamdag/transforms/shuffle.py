"""shuffle: a seeded buffer shuffle. It starts emitting once ``initial``
elements are buffered and grows the buffer by pulling two elements per one
emitted until it holds ``buffer_size`` (as webdataset does), so the first
batch does not wait for a full buffer; then each new element joins the buffer
and a random one is emitted; the rest is shuffled at the end. State is the
buffer's item numbers and the RNG, never the samples.

``enabled=False`` (``set_shuffle(False)``) passes the input through untouched;
``seed`` (``set_seed(n)``) seeds the node from (n, epoch) instead of the
loader's seed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from ..core.rng_state import decode_random_state, encode_random_state
from ..core.seeds import derive_seed
from ..runtime.counting import Tally
from ..runtime.node import ResumableNode
from ..runtime.replay import Replayer, restore_source


class ShuffleNode(ResumableNode):
    """Resume replays the input from a checkpoint at or before the oldest
    buffered item: about ``buffer_size * ln(buffer_size)`` elements at most
    in expectation, bounded memory, exact order."""

    def setup(self) -> None:
        super().setup()
        self._pass = 0
        #: the input number of the element last yielded: a map(rng=True) the
        #: decode-late rule moved after this shuffle draws by it
        self.last_seq = 0
        self._pulls = Tally()
        self._outs = Tally()
        self._enabled = self.params["enabled"]

    def counted(self) -> tuple[int | None, int | None]:
        if not self._enabled:
            return None, None
        return self._pulls.value, self._outs.value

    def reset(self) -> None:
        super().reset()
        self._pass = 0

    def iterator(self) -> Iterator[Any]:
        if not self._enabled:
            return self.inputs[0].iterator()
        size = self.params["buffer_size"]
        initial = min(size, self.params["initial"] or self.opspec.params["initial"].default)
        self._replay = replay = Replayer(self.inputs[0], max(1, size // 4))
        self._pulls.follow(replay.pulled)
        self._outs.follow(lambda: replay.pulled() - len(self._buf))
        self._buf: list[Any] = []
        self._seqs: list[int] = []
        self._draining = False
        restored = self.take_restored()
        if restored is None:
            self._rng = random.Random(self._seed())
            self._pass += 1
            replay.start()
        else:
            self._pass = restored["pass"]
            self._rng = random.Random()
            self._rng.setstate(decode_random_state(restored["rng"]))
            self._refill(restored)
        return self._run(size, initial)

    @property
    def passes(self) -> int:
        """Passes started this epoch (a cycle re-reads the shuffle)."""
        return self._pass

    def _seed(self) -> int:
        fixed = self.params["seed"]
        if fixed is None:
            return self.seed(self._pass)
        return derive_seed(fixed, self.graph.epoch, self._pass)

    def _refill(self, restored: dict) -> None:
        """Rebuild the buffer by replaying the input from the checkpoint."""
        replay = self._replay
        replay.start(restored["ckpt"])
        slots = {seq: i for i, seq in enumerate(restored["seqs"])}
        self._buf = buf = [None] * len(slots)
        self._seqs = list(restored["seqs"])
        self._draining = restored["draining"]
        while replay.seq < restored["next"]:
            seq = replay.seq
            item = replay.replay(restored["next"], self.label)
            slot = slots.get(seq)
            if slot is not None:
                buf[slot] = item

    def _run(self, size: int, initial: int) -> Iterator[Any]:
        """Every branch depends on ``len(buf)`` only, and the state is taken
        only where this generator is suspended (after a yield): a restored
        buffer continues the fill, growth or steady phase exactly."""
        buf, seqs, replay, rand = self._buf, self._seqs, self._replay, self._rng.random
        pull, last = replay.pull, size - 1
        prune_at = replay.every
        if not self._draining:
            try:
                while len(buf) < last:  # filling up to `initial`, then growing: two in, one out
                    seqs.append(replay.seq)
                    buf.append(pull())
                    if len(buf) < size:
                        seqs.append(replay.seq)
                        buf.append(pull())
                    if len(buf) < initial:
                        continue
                    j = int(rand() * len(buf))
                    out = buf[j]
                    self.last_seq = seqs[j]
                    buf[j] = buf[-1]
                    seqs[j] = seqs[-1]
                    buf.pop()
                    seqs.pop()
                    yield out
                    prune_at -= 1
                    if not prune_at:
                        prune_at = replay.every
                        replay.forget_before(min(seqs))
                while True:  # full (`last` held): the same step without the append and pop
                    seq = replay.seq
                    item = pull()
                    j = int(rand() * size)
                    if j < last:
                        out = buf[j]
                        buf[j] = item
                        self.last_seq = seqs[j]
                        seqs[j] = seq
                    else:
                        out = item
                        self.last_seq = seq
                    yield out
                    prune_at -= 1
                    if not prune_at:
                        prune_at = replay.every
                        replay.forget_before(min(seqs, default=replay.seq))
            except StopIteration:
                if len(seqs) > len(buf):  # the pull that ended the input
                    seqs.pop()
            order = list(range(len(buf)))
            self._rng.shuffle(order)
            buf[:] = [buf[i] for i in order]
            seqs[:] = [seqs[i] for i in order]
            self._draining = True
        while buf:
            self.last_seq = seqs.pop()
            yield buf.pop()

    def live_state(self) -> dict:
        seqs = list(self._seqs)
        return {
            "pass": self._pass,
            "rng": encode_random_state(self._rng.getstate()),
            "seqs": seqs,
            "draining": self._draining,
            "next": self._replay.seq,
            "ckpt": self._replay.checkpoint(min(seqs, default=self._replay.seq)),
        }

    def state(self) -> Any:
        return super().state() if self._enabled else self.inputs[0].state()

    def restore(self, state: dict | None) -> None:
        if not self._enabled:
            self.inputs[0].restore(state)
            return
        super().restore(state)
        restore_source(self.inputs[0], state and state["ckpt"])

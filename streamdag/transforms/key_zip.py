"""zip_with_iter and zip_with_map: join each element with the element of a
reference pipe (or map) that has the same key (torchdata's IterKeyZipper and
MapKeyZipper)."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from ..runtime.node import ResumableTransform, RuntimeNode
from ..runtime.replay import Replayer, restore_source

_REPLAY_EVERY = 64


class _Joined:
    """``merge_fn(item, match)`` (or the pair), with the key in front if ``keep_key``."""

    def __init__(self, params: Any) -> None:
        self.merge = params["merge_fn"]
        self.keep_key = params["keep_key"]

    def __call__(self, key: Any, item: Any, match: Any) -> Any:
        out = self.merge(item, match) if self.merge is not None else (item, match)
        return (key, out) if self.keep_key else out


class ZipWithIterNode(ResumableTransform):
    """Reads the reference pipe (input 1) until it finds each element's key,
    holding the reference elements not yet matched (at most ``buffer_size``
    + 1; beyond that the oldest is dropped, with a warning, as in torchdata).

    State: the numbers of the held reference elements and a checkpoint of the
    reference pipe at or before the oldest; resume replays from there."""

    def setup(self) -> None:
        super().setup()
        self._key = self.params["key_fn"]
        self._ref_key = self.params["ref_key_fn"] or self._key
        self._join = _Joined(self.params)

    def user_functions(self) -> list[Callable[..., Any]]:
        p = self.params
        return [fn for fn in (p["key_fn"], p["ref_key_fn"], p["merge_fn"]) if fn is not None]

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self._replay = replay = Replayer(self.inputs[1], _REPLAY_EVERY)
        self._held: OrderedDict[Any, tuple[int, Any]] = OrderedDict()
        self._warned = False
        if restored is None:
            replay.start()
        else:
            replay.start(restored["ckpt"])
            keep = set(restored["held"])
            while replay.seq < restored["next"]:
                seq = replay.seq
                item = replay.replay(restored["next"], self.label)
                if seq in keep:
                    self._held[self._ref_key(item)] = (seq, item)
        return self._run(self.inputs[0].iterator())

    def _run(self, source: Iterator[Any]) -> Iterator[Any]:
        held, replay, limit = self._held, self._replay, self.params["buffer_size"]
        for item in source:
            key = self._key(item)
            if key not in held:
                while key not in held:
                    self._pull_ref(item, held, replay, limit)
                replay.forget_before(self._oldest())
            yield self._join(key, item, held.pop(key)[1])

    def _pull_ref(self, item: Any, held: OrderedDict, replay: Replayer, limit: int | None) -> None:
        seq = replay.seq
        try:
            ref = replay.pull()
        except StopIteration:
            raise BufferError(
                f"No matching key can be found from reference DataPipe for the "
                f"data {item}. Please consider increasing the buffer size."
            ) from None
        ref_key = self._ref_key(ref)
        if ref_key in held:
            raise ValueError("Duplicate key is found in reference DataPipe")
        if limit is not None and len(held) > limit:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    "Buffer reaches the upper limit, so reference key-data pair "
                    "begins to be removed from buffer in FIFO order. Please consider "
                    "increase buffer size.",
                    stacklevel=2,
                )
            held.popitem(last=False)
        held[ref_key] = (seq, ref)

    def _oldest(self) -> int:
        return next(iter(self._held.values()))[0] if self._held else self._replay.seq

    def live_state(self) -> dict:
        return {
            "next": self._replay.seq,
            "held": [seq for seq, _ in self._held.values()],
            "ckpt": self._replay.checkpoint(self._oldest()),
        }

    def restore(self, state: list | None) -> None:
        super().restore(state)
        restore_source(self.inputs[1], state and state[0] and state[0]["ckpt"])


class ZipWithMapNode(RuntimeNode):
    """Looks each element's key up in ``map_datapipe`` (a MapDataPipe, a
    mapping or a sequence). Stateless: the input's state is the state."""

    def setup(self) -> None:
        self._key = self.params["key_fn"]
        self._map = self.params["map_datapipe"]
        self._join = _Joined(self.params)

    def user_functions(self) -> list[Callable[..., Any]]:
        return [fn for fn in (self.params["key_fn"], self.params["merge_fn"]) if fn is not None]

    def iterator(self) -> Iterator[Any]:
        return map(self._zip, self.inputs[0].iterator())

    def _zip(self, item: Any) -> Any:
        key = self._key(item)
        try:
            match = self._map[key]
        except (KeyError, IndexError):
            raise KeyError(
                f"key_fn maps {item} to {key}, which is not a valid key in the given MapDataPipe."
            ) from None
        return self._join(key, item, match)

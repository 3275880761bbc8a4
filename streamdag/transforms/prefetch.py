"""prefetch(n): a background thread keeps up to n elements ready, so slow I/O
or decoding upstream overlaps with the consumer."""

from __future__ import annotations

import queue
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from ..runtime.counting import Tally
from ..runtime.node import ResumableNode
from ..runtime.replay import Replayer, restore_source

_END = object()
_POLL_S = 0.05


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class PrefetchNode(ResumableNode):
    """The thread runs ahead of the consumer; the state is the consumer's
    position plus an input checkpoint within ``n`` elements of it. The thread
    starts on the first ``next`` and is stopped and joined, and the elements
    it read ahead dropped, when the iterator is closed, garbage-collected, or
    the epoch is torn down."""

    def setup(self) -> None:
        super().setup()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pulls = Tally()

    def counted(self) -> tuple[int | None, int | None]:
        return self._pulls.value, None

    def iterator(self) -> Iterator[Any]:
        self.close()
        size = self.params["buffer_size"]
        self._replay = replay = Replayer(self.inputs[0], size)
        self._pulls.follow(replay.pulled)
        replay.resume(self.take_restored(), self.label)
        self._taken = replay.seq
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        return self._consume()

    def _thread_pull(self) -> Callable[[], Any]:
        """Called in the thread when it starts: the function it calls for each
        element (a subclass adds its per-element work, e.g. pinning, here)."""
        return self._replay.pull

    def _produce(self, out: queue.Queue[Any], stop: threading.Event) -> None:
        try:
            pull = self._thread_pull()
            while not stop.is_set():
                try:
                    item = pull()
                except StopIteration:
                    item = _END
                while not stop.is_set():
                    try:
                        out.put(item, timeout=_POLL_S)
                        break
                    except queue.Full:
                        continue
                if item is _END:
                    return
                self._replay.forget_before(self._taken)
        except BaseException as error:
            if stop.is_set():  # closed: no one takes it; let go of what its frames hold
                traceback.clear_frames(error.__traceback__)
                return
            out.put(_Failure(error))  # handed to the consumer, raised there

    def _consume(self) -> Iterator[Any]:
        out, stop = self._queue, self._stop
        self._thread = thread = threading.Thread(
            target=self._produce,
            args=(out, stop),
            daemon=True,
            name=f"streamdag-{self.spec.op}-{self.spec.id}",
        )
        thread.start()
        try:
            while True:
                try:
                    item = out.get(timeout=_POLL_S)
                except queue.Empty:
                    if stop.is_set():  # closed while a consumer (another thread) waits
                        return
                    continue
                if item is _END:
                    return
                if type(item) is _Failure:
                    raise item.error
                self._taken += 1
                yield item
        finally:
            self.close()

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        # unblock the thread, then drop what it read ahead (in the main process
        # of a worker service: batches on shared memory), which no one will take
        while thread.is_alive() or not self._queue.empty():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                thread.join(_POLL_S)
        self._replay.release()  # the thread is gone: nothing else pulls from it

    def live_state(self) -> dict:
        return {"next": self._taken, "ckpt": self._replay.checkpoint(self._taken)}

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        restore_source(self.inputs[0], state and state["ckpt"])

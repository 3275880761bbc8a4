"""threadpool_map: ``fn`` run on up to ``scheduled_tasks`` elements at once in
a thread pool, results in input order (torchdata's ThreadPoolMapper): worth
it for I/O-bound functions (downloads, remote reads), which release the GIL.

State: the number of results handed on and an input checkpoint at or before
it; the tasks in flight are not saved but computed again after a resume."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..runtime.attribution import framed
from ..runtime.counting import Tally
from ..runtime.node import ResumableNode
from ..runtime.replay import Replayer, restore_source
from .columns import arity, with_columns


class ThreadPoolMapNode(ResumableNode):
    def setup(self) -> None:
        super().setup()
        col = self.params["input_col"]
        fn = framed(self.params["fn"], self, arity(col))
        self.fn = fn if col is None else with_columns(fn, col, self.params["output_col"])
        self._pool: ThreadPoolExecutor | None = None
        self._pulls = Tally()

    def counted(self) -> tuple[int | None, int | None]:
        return self._pulls.value, None

    def iterator(self) -> Iterator[Any]:
        self.close()
        tasks = self.params["scheduled_tasks"]
        self._replay = replay = Replayer(self.inputs[0], tasks)
        self._pulls.follow(replay.pulled)
        replay.resume(self.take_restored(), self.label)
        self._taken = replay.seq
        self._pool = ThreadPoolExecutor(
            self.params["max_workers"], **(self.params["threadpool_kwargs"] or {})
        )
        return self._results(self._pool, tasks)

    def _results(self, pool: ThreadPoolExecutor, tasks: int) -> Iterator[Any]:
        pending: deque[Future[Any]] = deque()
        pull, submit, fn = self._replay.pull, pool.submit, self.fn
        try:
            while True:
                while len(pending) < tasks:
                    try:
                        pending.append(submit(fn, pull()))
                    except StopIteration:
                        break
                if not pending:
                    return
                result = pending.popleft().result()
                self._taken += 1
                self._replay.forget_before(self._taken)
                yield result
        finally:
            for future in pending:
                future.cancel()
            self.close()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def live_state(self) -> dict:
        return {"next": self._taken, "ckpt": self._replay.checkpoint(self._taken)}

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        restore_source(self.inputs[0], state and state["ckpt"])

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["fn"]]

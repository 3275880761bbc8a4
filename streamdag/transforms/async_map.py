"""async_map_batches' per-batch step: an ``async def`` function run on every
element of a batch at once (at most ``max_concurrency`` at a time) on the
node's own asyncio event loop, the results in the batch's order (torchdata's
BatchAsyncMapper). One output batch per input batch: no state of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from ..runtime.node import RuntimeNode
from .columns import columns, placing


class AsyncMapBatchNode(RuntimeNode):
    def setup(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def iterator(self) -> Iterator[list[Any]]:
        self.close()
        self._loop = asyncio.new_event_loop()
        return map(self._process, self.inputs[0].iterator())

    def _process(self, batch: list[Any]) -> list[Any]:
        assert self._loop is not None
        return self._loop.run_until_complete(self._gather(batch))

    async def _gather(self, batch: list[Any]) -> list[Any]:
        fn, col = self.params["async_fn"], self.params["input_col"]
        limit = asyncio.Semaphore(self.params["max_concurrency"])

        async def call(*args: Any) -> Any:
            async with limit:
                return await fn(*args)

        if col is None:
            return list(await asyncio.gather(*map(call, batch)))
        cols = columns(col)
        results = await asyncio.gather(*(call(*[e[c] for c in cols]) for e in batch))
        return list(map(placing(col, self.params["output_col"]), batch, results))

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["async_fn"]]

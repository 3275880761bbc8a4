"""The ``_worker_stream`` source of a main-process graph: the merged output
of the workers, pulled from the reading service the runtime graph was handed
(``RuntimeGraph(..., stream=service)``). Its state is the service's: each
worker's state and the merge position."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..runtime.graph import StreamSource
from ..runtime.node import ResumableNode


class WorkerStreamNode(ResumableNode):
    """``fresh`` tells the service whether this pass starts a new epoch (the
    workers reset their graphs) or re-reads within one (e.g. under cycle)."""

    def setup(self) -> None:
        super().setup()
        self._fresh = True

    def reset(self) -> None:
        super().reset()
        self._fresh = True

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        fresh, self._fresh = self._fresh, False
        return self._source().open_stream(self.graph.base_seed, self.graph.epoch, fresh, restored)

    def live_state(self) -> Any:
        return self._source().stream_state()

    def _source(self) -> StreamSource:
        source = self.graph.stream
        if source is None:
            raise RuntimeError(
                f"{self.label}: this graph was compiled without the reading "
                "service that feeds it (RuntimeGraph(..., stream=service)), "
                "or that service is gone"
            )
        return source

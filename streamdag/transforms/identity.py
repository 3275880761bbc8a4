"""Ops that pass elements through unchanged: ``set_length`` (a length for
``len()``) and ``fullsync`` (equal batch counts across ranks, which
``DistributedReadingService`` already guarantees with ``even_batches``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..runtime.node import RuntimeNode


class IdentityNode(RuntimeNode):
    def iterator(self) -> Iterator[Any]:
        return self.inputs[0].iterator()

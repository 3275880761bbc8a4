"""main_process: the boundary of the worker part (see ``core/placement.py``).
In process, and wherever it runs, it is the identity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..runtime.node import RuntimeNode


class MainProcessNode(RuntimeNode):
    def iterator(self) -> Iterator[Any]:
        return self.inputs[0].iterator()

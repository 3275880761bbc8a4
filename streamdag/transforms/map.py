"""map, filter and collate: stateless per-element nodes run as C ``map``/``filter``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..core.node import Node
from ..runtime.attribution import framed
from ..runtime.node import RuntimeNode
from ..runtime.torch_worker import torch_worker_info
from .columns import arity, selecting, with_columns


class MapNode(RuntimeNode):
    def __new__(cls, spec: Node, *args: Any, **kwargs: Any) -> Any:
        """``rng=True``: a node with positions of its own (``map_rng.py``);
        the plain map keeps its C ``map`` with no per-element work."""
        rng = spec.params.get("rng", False)
        if cls is not MapNode or rng is False:
            return super().__new__(cls)
        from .map_rng import RngMapNode, ShuffledRngMapNode

        return (RngMapNode if rng is True else ShuffledRngMapNode)(spec, *args, **kwargs)

    def setup(self) -> None:
        col = self.params["input_col"]
        fn = framed(self.params["fn"], self, arity(col))
        self.fn = fn if col is None else with_columns(fn, col, self.params["output_col"])

    def iterator(self) -> Iterator[Any]:
        return map(self.fn, self.inputs[0].iterator())

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["fn"]]


class FilterNode(RuntimeNode):
    def setup(self) -> None:
        col = self.params["input_col"]
        fn = framed(self.params["fn"], self, arity(col))
        self.fn = fn if col is None else selecting(fn, col)

    def iterator(self) -> Iterator[Any]:
        return filter(self.fn, self.inputs[0].iterator())

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["fn"]]


class CollateNode(RuntimeNode):
    """Batches (lists of samples) to tensors; default: torch's default_collate
    (numbers, arrays and tensors stacked; dicts, tuples and lists recursed).
    In a torch DataLoader worker, a collate function's ``torch.stack``
    results go straight into shared memory (``shared_batches.py``), as
    ``default_collate``'s do there."""

    def setup(self) -> None:
        fn = self.params["fn"]
        if fn is None:
            from torch.utils.data import default_collate as fn
        self.fn = framed(fn, self, always=True)

    def iterator(self) -> Iterator[Any]:
        fn = self.fn
        if self.params["fn"] is not None and torch_worker_info() is not None:
            from .shared_batches import stacking_into_shared_memory

            fn = stacking_into_shared_memory(fn)
        return map(fn, self.inputs[0].iterator())

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["fn"]] if self.params["fn"] else []

"""map, filter and collate: stateless per-element nodes run as C ``map``/``filter``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..core.params import check_callable, check_col
from ..core.registry import register_op
from ..errors import ParamError
from ..runtime.node import RuntimeNode, framed
from .columns import arity, selecting, with_columns


@register_op("map", params=("fn", "input_col", "output_col"))
class MapNode(RuntimeNode):
    passthrough = True

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        check_callable("map", "fn", params.get("fn"))
        check_col("map", "input_col", params.get("input_col"))
        check_col("map", "output_col", params.get("output_col"))
        if params.get("input_col") is None and params.get("output_col") is not None:
            raise ParamError("map: output_col needs input_col")

    @staticmethod
    def elementwise(params: Mapping[str, Any]) -> bool:
        return True

    def setup(self) -> None:
        col = self.params.get("input_col")
        fn = framed(self.params["fn"], self, arity(col))
        self.fn = fn if col is None else with_columns(fn, col, self.params.get("output_col"))

    def iterator(self) -> Iterator[Any]:
        return map(self.fn, self.inputs[0].iterator())

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["fn"]]


@register_op("filter", params=("fn", "input_col"))
class FilterNode(RuntimeNode):
    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        check_callable("filter", "fn", params.get("fn"))
        check_col("filter", "input_col", params.get("input_col"))

    def setup(self) -> None:
        col = self.params.get("input_col")
        fn = framed(self.params["fn"], self, arity(col))
        self.fn = fn if col is None else selecting(fn, col)

    def iterator(self) -> Iterator[Any]:
        return filter(self.fn, self.inputs[0].iterator())

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["fn"]]


@register_op("collate", params=("fn",))
class CollateNode(RuntimeNode):
    """Batches (lists of samples) to tensors; default: torch's default_collate
    (numbers, arrays and tensors stacked; dicts, tuples and lists recursed)."""

    passthrough = True

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        check_callable("collate", "fn", params.get("fn"), optional=True)

    def setup(self) -> None:
        fn = self.params.get("fn")
        if fn is None:
            from torch.utils.data import default_collate as fn
        self.fn = framed(fn, self, always=True)

    def iterator(self) -> Iterator[Any]:
        return map(self.fn, self.inputs[0].iterator())

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["fn"]] if self.params.get("fn") else []

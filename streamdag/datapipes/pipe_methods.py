"""The base of DataPipe's method mixins (transforms, readers, decoders): what
they use of DataPipe, declared once for type checkers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.node import Node
    from .datapipe import DataPipe


class PipeMethods:
    __slots__ = ()

    if TYPE_CHECKING:
        node: Node

        def _then(
            self,
            op: str,
            params: Mapping[str, Any],
            *others: DataPipe[Any],
            name: str | None = None,
        ) -> DataPipe[Any]: ...

        def _split_group(self, node: Node, groups: list[Any]) -> DataPipe[Any]: ...

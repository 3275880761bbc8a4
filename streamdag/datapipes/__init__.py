"""The DAG model (Node, DataPipe handle) and the transform nodes.

Importing this package registers every built-in op."""

from ..core.node import Node
from ..core.registry import register_op, registered_ops
from ..runtime.graph import RuntimeGraph
from ..runtime.node import ResumableNode, RuntimeNode, WorkerContext
from ..transforms import (  # noqa: F401 - registration side effects
    batch,
    cache,
    combine,
    cycle,
    flatmap,
    fork,
    header,
    iterable_wrapper,
    map,
    multiplexer,
    prefetch,
    sharding,
    shuffle,
)
from .datapipe import DataPipe, IterableWrapper, IterDataPipe, SampleMultiplexer, make_node

__all__ = [
    "DataPipe",
    "IterDataPipe",
    "IterableWrapper",
    "Node",
    "ResumableNode",
    "RuntimeGraph",
    "RuntimeNode",
    "SampleMultiplexer",
    "WorkerContext",
    "make_node",
    "register_op",
    "registered_ops",
]

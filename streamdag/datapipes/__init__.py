"""The facade: the ``DataPipe`` handle users hold, its functional methods,
``FileLister`` and custom readers. It builds spec nodes; nothing here runs."""

from ..core.node import Node
from ..core.registry import register_op, registered_ops
from ..runtime.graph import RuntimeGraph
from ..runtime.node import ResumableNode, ResumableTransform, RuntimeNode, WorkerContext
from .datapipe import DataPipe, IterableWrapper, IterDataPipe, SampleMultiplexer, make_node

__all__ = [
    "DataPipe",
    "IterDataPipe",
    "IterableWrapper",
    "Node",
    "ResumableNode",
    "ResumableTransform",
    "RuntimeGraph",
    "RuntimeNode",
    "SampleMultiplexer",
    "WorkerContext",
    "make_node",
    "register_op",
    "registered_ops",
]

"""The runtime layer: runtime nodes, the compiled graph, replay and counting."""

from .attribution import framed
from .graph import RuntimeGraph
from .node import ResumableNode, ResumableTransform, RuntimeNode, WorkerContext

__all__ = [
    "ResumableNode",
    "ResumableTransform",
    "RuntimeGraph",
    "RuntimeNode",
    "WorkerContext",
    "framed",
]

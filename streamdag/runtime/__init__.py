"""The runtime layer: runtime nodes, the compiled graph, replay and counting."""

from .attribution import framed
from .graph import RuntimeGraph
from .node import ResumableNode, RuntimeNode, WorkerContext

__all__ = ["ResumableNode", "RuntimeGraph", "RuntimeNode", "WorkerContext", "framed"]

"""streamdag: streaming data-pipeline DAGs for PyTorch.

Build a pipeline with the functional API, save and edit it as a graph, and run
it with a swappable reading service through ``DataLoader2``."""

from .datapipes import (
    DataPipe,
    IterableWrapper,
    IterDataPipe,
    Node,
    SampleMultiplexer,
    register_op,
)
from .errors import GraphFormatError, NodeError, ParamError, ResumeError, StreamdagError
from .graph_io import Graph, load, register_function, save
from .reading_service.base import ReadingService
from .reading_service.dataloader2 import DataLoader2
from .reading_service.in_process import InProcessReadingService

__all__ = [
    "DataLoader2",
    "DataPipe",
    "Graph",
    "GraphFormatError",
    "InProcessReadingService",
    "IterDataPipe",
    "IterableWrapper",
    "Node",
    "NodeError",
    "ParamError",
    "ReadingService",
    "ResumeError",
    "SampleMultiplexer",
    "StreamdagError",
    "load",
    "register_function",
    "register_op",
    "save",
]

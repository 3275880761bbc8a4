"""streamdag: streaming data-pipeline DAGs for PyTorch.

Build a pipeline with the functional API, save and edit it as a graph, and run
it with a swappable reading service through ``DataLoader2``."""

from .core.spec import OpSpec, Param
from .datapipes import (
    DataPipe,
    IterableWrapper,
    IterDataPipe,
    Node,
    ResumableNode,
    ResumableTransform,
    RuntimeNode,
    SampleMultiplexer,
    register_op,
)
from .datapipes.file_lister import FileLister
from .datapipes.reader import Reader, reader
from .decoders import decode_image, image_handler
from .errors import (
    BufferOverflowError,
    GraphFormatError,
    NodeError,
    ParamError,
    ResumeError,
    ShardingWarning,
    SkippedInputWarning,
    StreamdagError,
)
from .graph_io import Graph, load, register_function, save
from .readers import ReaderContext
from .reading_service.base import ReadingService
from .reading_service.dataloader2 import DataLoader2
from .reading_service.distributed import DistributedReadingService
from .reading_service.errors import (
    UnevenShardsWarning,
    WorkerDiedError,
    WorkerError,
    WorkerTimeoutError,
)
from .reading_service.in_process import InProcessReadingService
from .reading_service.multiprocessing import MultiProcessingReadingService
from .reading_service.multithreading import MultiThreadingReadingService
from .reading_service.ray_service import RayReadingService
from .reading_service.sequential import SequentialReadingService
from .reading_service.worker import get_worker_info

__all__ = [
    "BufferOverflowError",
    "DataLoader2",
    "DataPipe",
    "DistributedReadingService",
    "FileLister",
    "Graph",
    "GraphFormatError",
    "InProcessReadingService",
    "IterDataPipe",
    "IterableWrapper",
    "MultiProcessingReadingService",
    "MultiThreadingReadingService",
    "Node",
    "NodeError",
    "OpSpec",
    "Param",
    "ParamError",
    "Reader",
    "ReaderContext",
    "RayReadingService",
    "ReadingService",
    "ResumableNode",
    "ResumableTransform",
    "ResumeError",
    "RuntimeNode",
    "SampleMultiplexer",
    "SequentialReadingService",
    "ShardingWarning",
    "SkippedInputWarning",
    "StreamdagError",
    "UnevenShardsWarning",
    "WorkerDiedError",
    "WorkerError",
    "WorkerTimeoutError",
    "decode_image",
    "get_worker_info",
    "image_handler",
    "load",
    "reader",
    "register_function",
    "register_op",
    "save",
]

"""torchdata's ``torchdata.dataloader2`` names, so a port changes only the
import line: ``from streamdag.dataloader2 import DataLoader2,
MultiProcessingReadingService``. The same objects as ``streamdag``'s."""

from typing import Any

from ..datapipes.torchdata_names import DATALOADER2, not_provided
from ..reading_service.dataloader2 import DataLoader2
from .reading_service import (
    CheckpointableReadingServiceInterface,
    DistributedReadingService,
    InProcessReadingService,
    MultiProcessingReadingService,
    PrototypeMultiProcessingReadingService,
    ReadingServiceInterface,
    SequentialReadingService,
)

__all__ = [
    "CheckpointableReadingServiceInterface",
    "DataLoader2",
    "DistributedReadingService",
    "InProcessReadingService",
    "MultiProcessingReadingService",
    "PrototypeMultiProcessingReadingService",
    "ReadingServiceInterface",
    "SequentialReadingService",
]


def __getattr__(name: str) -> Any:
    raise not_provided(__name__, name, DATALOADER2)

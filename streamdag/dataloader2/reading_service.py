"""torchdata's ``torchdata.dataloader2.reading_service`` names. Every
streamdag service saves and restores its state, so torchdata's two
interfaces are one: ``ReadingService``."""

import warnings
from typing import Any

from ..reading_service.base import ReadingService
from ..reading_service.distributed import DistributedReadingService
from ..reading_service.in_process import InProcessReadingService
from ..reading_service.multiprocessing import MultiProcessingReadingService
from ..reading_service.sequential import SequentialReadingService

ReadingServiceInterface = ReadingService
CheckpointableReadingServiceInterface = ReadingService


def PrototypeMultiProcessingReadingService(  # noqa: N802 - torchdata's name
    *args: Any, **kwargs: Any
) -> MultiProcessingReadingService:
    """torchdata's deprecated alias: warns and returns a ``MultiProcessingReadingService``."""
    warnings.warn(
        "PrototypeMultiProcessingReadingService is deprecated (as in torchdata): "
        "use MultiProcessingReadingService",
        DeprecationWarning,
        stacklevel=2,
    )
    return MultiProcessingReadingService(*args, **kwargs)


__all__ = [
    "CheckpointableReadingServiceInterface",
    "DistributedReadingService",
    "InProcessReadingService",
    "MultiProcessingReadingService",
    "PrototypeMultiProcessingReadingService",
    "ReadingServiceInterface",
    "SequentialReadingService",
]

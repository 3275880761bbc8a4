"""torchdata's ``torchdata.dataloader2.random``: the ``SeedGenerator`` a
``reset_fn(datapipe, worker_info, seed_generator)`` receives. Its seeds derive
from streamdag's (seed, epoch, global worker), so they differ from torchdata's
numbers but are as reproducible for a given ``seed=``."""

from ..reading_service.seed_generator import SeedGenerator

__all__ = ["SeedGenerator"]

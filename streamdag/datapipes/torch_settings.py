"""The one object torch's DataLoader sets things on for a DataPipe: apart
from the rest (it imports torch) and importable, so a pipe carrying it
pickles into spawned workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import IterDataPipe


class LoaderSettings(IterDataPipe):
    """What torch's DataLoader sets on the pipe: its ``shuffle=`` (None: the
    pipe's own shuffles hold), the seed of the coming epoch, and this copy's
    place among all of them (torch's global worker id is
    ``worker_id * world_size + rank``)."""

    def __init__(self) -> None:
        self.shuffle: bool | None = None
        self.seed: int | None = None
        self.instances: tuple[int, int] | None = None  # (how many, this one)

    def set_shuffle(self, shuffle: bool = True) -> LoaderSettings:
        self.shuffle = shuffle
        return self

    def set_seed(self, seed: int) -> LoaderSettings:
        self.seed = seed
        return self

    def apply_sharding(self, num_of_instances: int, instance_id: int) -> None:
        self.instances = (num_of_instances, instance_id)

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("LoaderSettings holds a DataLoader's settings; it yields nothing")

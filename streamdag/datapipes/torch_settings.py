"""The one object torch's DataLoader sets things on for a DataPipe: apart
from the rest (it imports torch) and importable, so a pipe carrying it
pickles into spawned workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import IterDataPipe


class LoaderSettings(IterDataPipe):
    """What torch's DataLoader sets on the pipe: its ``shuffle=`` (None: the
    pipe's own shuffles hold) and the seed of the coming epoch."""

    def __init__(self) -> None:
        self.shuffle: bool | None = None
        self.seed: int | None = None

    def set_shuffle(self, shuffle: bool = True) -> LoaderSettings:
        self.shuffle = shuffle
        return self

    def set_seed(self, seed: int) -> LoaderSettings:
        self.seed = seed
        return self

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("LoaderSettings holds a DataLoader's settings; it yields nothing")

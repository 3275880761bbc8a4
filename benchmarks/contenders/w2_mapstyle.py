"""W2 anchor: torch DataLoader over a map-style Dataset of the extracted files.

The common baseline: random access to one file per sample, a full random
permutation instead of a shuffle buffer, batching in the workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from torch.utils.data import Dataset

from benchmarks.transforms import collate_images, image_sample
from benchmarks.workloads import Inputs


class ExtractedFiles(Dataset):
    def __init__(self, root: str, keys: list[str]) -> None:
        self.root, self.keys = Path(root), keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> tuple:
        stem = self.root / self.keys[i]
        return image_sample(
            stem.with_suffix(".jpg").read_bytes(), stem.with_suffix(".cls").read_bytes()
        )


def make(inputs: Inputs) -> Callable[[], Iterable]:
    import torch
    from torch.utils.data import DataLoader

    def epoch() -> Iterable:
        return DataLoader(
            ExtractedFiles(inputs.files_dir, inputs.keys),
            batch_size=inputs.image_batch,
            shuffle=True,
            generator=torch.Generator().manual_seed(inputs.seed),
            num_workers=inputs.num_workers,
            collate_fn=collate_images,
        )

    return epoch

"""W2 anchor: the webdataset library in a torch DataLoader(num_workers=N).

Shards are shuffled (deterministically) and split by worker; the shuffle buffer
sits after the transform and batching runs in the workers, as in the workload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.transforms import collate_images, image_sample
from benchmarks.workloads import Inputs


def _sample(s: dict) -> tuple:
    return image_sample(s["jpg"], s["cls"])


def dataset(inputs: Inputs) -> Any:
    """The workload's webdataset pipeline: collated batches, for ``DataLoader(batch_size=None)``."""
    import webdataset as wds

    return (
        wds.WebDataset(
            inputs.shards,
            shardshuffle=len(inputs.shards),
            detshuffle=True,
            seed=inputs.seed,
            nodesplitter=None,
            workersplitter=wds.split_by_worker,
        )
        .map(_sample)
        .shuffle(inputs.shuffle_buffer)
        .batched(inputs.image_batch, collation_fn=collate_images)
    )


def make(inputs: Inputs) -> Callable[[], Iterable]:
    import webdataset  # noqa: F401  (ImportError -> reported "unavailable")
    from torch.utils.data import DataLoader

    def epoch() -> Iterable:
        return DataLoader(dataset(inputs), batch_size=None, num_workers=inputs.num_workers)

    return epoch

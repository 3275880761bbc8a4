"""W2 anchor: the webdataset library in a torch DataLoader(num_workers=2).

Shards are shuffled (deterministically) and split by worker; the shuffle buffer
sits after the transform and batching runs in the workers, as in the workload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from benchmarks.transforms import collate_images, image_sample
from benchmarks.workloads import Inputs


def _sample(s: dict) -> tuple:
    return image_sample(s["jpg"], s["cls"])


def make(inputs: Inputs) -> Callable[[], Iterable]:
    import webdataset as wds
    from torch.utils.data import DataLoader

    def epoch() -> Iterable:
        ds = (
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
        return DataLoader(ds, batch_size=None, num_workers=inputs.num_workers)

    return epoch

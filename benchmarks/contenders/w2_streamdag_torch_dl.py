"""W2 streamdag through torch's own DataLoader: the graph of ``w2_streamdag``
as a torch ``IterableDataset``, ``DataLoader(dp, batch_size=None,
num_workers=2)`` (the pipe batches and collates itself, the common torchdata
pattern). Compare with ``w2_streamdag`` (DataLoader2 and streamdag's
multiprocessing service) from the same run."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.contenders.w2_streamdag import image_batches, setup_imports
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    sd = setup_imports()
    import torch
    from torch.utils.data import DataLoader

    def epoch() -> Iterator:
        shards = sd.FileLister(inputs.shard_dir, masks="*.tar").shuffle().sharding_filter()
        dp = image_batches(shards.open_files(mode="rb"), inputs)
        generator = torch.Generator().manual_seed(inputs.seed)
        return iter(
            DataLoader(dp, batch_size=None, num_workers=inputs.num_workers, generator=generator)
        )

    return epoch

"""W4 anchor: a plain generator in a torch IterableDataset, DataLoader(num_workers=2).

Files are split by worker; the DataLoader batches 512 lines in each worker and
the identity collate keeps the batch a list of token lists.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Iterator

from torch.utils.data import IterableDataset, get_worker_info

from benchmarks.transforms import tokenize
from benchmarks.workloads import Inputs


class EnglishTokens(IterableDataset):
    def __init__(self, files: list[str]) -> None:
        self.files = files

    def __iter__(self) -> Iterator[list[int]]:
        info = get_worker_info()
        files = self.files if info is None else self.files[info.id :: info.num_workers]
        for path in files:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                for line in f:
                    record = json.loads(line)
                    if record["lang"] == "en":
                        yield tokenize(record["text"])


def _identity(batch: list) -> list:
    return batch


def make(inputs: Inputs) -> Callable[[], Iterable]:
    from torch.utils.data import DataLoader

    def epoch() -> Iterable:
        return DataLoader(
            EnglishTokens(inputs.text_files),
            batch_size=inputs.text_batch,
            num_workers=inputs.num_workers,
            collate_fn=_identity,
        )

    return epoch

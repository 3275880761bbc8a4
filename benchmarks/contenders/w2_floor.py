"""W2 floor: one process decoding and cropping every JPEG from memory, nothing else.

No reading, no workers, no shuffle: the cost of the shared transform plus
batching. The harness reports it x the worker count: ideal use of every worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.transforms import collate_images, image_sample
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    files = Path(inputs.files_dir)
    samples = [
        ((files / f"{k}.jpg").read_bytes(), (files / f"{k}.cls").read_bytes()) for k in inputs.keys
    ]

    def epoch() -> Iterator:
        n = inputs.image_batch
        for start in range(0, len(samples), n):
            yield collate_images([image_sample(j, c) for j, c in samples[start : start + n]])

    return epoch

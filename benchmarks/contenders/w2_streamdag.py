"""W2 streamdag: the workload's pipeline as DataPipes, run by 2 worker processes
(the service docs/reading-services.md recommends for Pillow image pipelines);
``w2_streamdag_threads`` runs the same graph in 2 worker threads,
``w2_streamdag_v4`` in 2 processes over 4x as many virtual workers (what
elastic resume costs, docs/reading-services.md).

Shard files (not samples) are shuffled and split across workers; members are
grouped into samples, decoded by extension with the shared transform, shuffled
in a 1000-sample buffer and batched and collated in the workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.transforms import collate_images, decode_image, decode_label
from benchmarks.workloads import Inputs


def decode_field(key: str, data: bytes) -> Any:
    """A webdataset-style decode handler: (field name, raw bytes) -> value, None if not ours."""
    if key.endswith("jpg"):
        return decode_image(data)
    if key.endswith("cls"):
        return decode_label(data)
    return None


def to_pair(sample: dict) -> tuple:
    """A decoded sample dict -> (image, label), whether field names carry the dot or not."""
    image = label = None
    for key, value in sample.items():
        if key.endswith("jpg"):
            image = value
        elif key.endswith("cls"):
            label = value
    return image, label


def image_batches(opened: Any, inputs: Inputs) -> Any:
    """The W2/W3 chain after the shard files are opened: samples -> batches."""
    return (
        opened.load_from_tar()
        .webdataset()
        .decode(decode_field)
        .map(to_pair, pure=True)  # pure: the shuffle buffers JPEGs, not decoded images
        .shuffle(buffer_size=inputs.shuffle_buffer)
        .batch(inputs.image_batch)
        .collate(collate_images)
    )


def run_in_workers(
    dp: Any, inputs: Inputs, threads: bool = False, virtual_per_worker: int = 1
) -> Iterator:
    """One epoch of ``dp`` through DataLoader2 with the workload's number of
    worker processes (or threads), each running ``virtual_per_worker``
    virtual workers."""
    import streamdag as sd

    virtual = inputs.num_workers * virtual_per_worker
    if threads:
        reading_service = sd.MultiThreadingReadingService(
            num_threads=inputs.num_workers, virtual_workers=virtual
        )
    else:
        reading_service = sd.MultiProcessingReadingService(
            num_workers=inputs.num_workers, virtual_workers=virtual
        )
    loader = sd.DataLoader2(dp, reading_service=reading_service, seed=inputs.seed)
    try:
        yield from loader
    finally:
        loader.shutdown()


def setup_imports() -> Any:
    """streamdag, and fsspec, which its file nodes import on first use where
    the other libraries import theirs with themselves: imports are untimed setup."""
    import fsspec  # noqa: F401

    import streamdag as sd

    return sd


def make(
    inputs: Inputs, threads: bool = False, virtual_per_worker: int = 1
) -> Callable[[], Iterator]:
    sd = setup_imports()

    def epoch() -> Iterator:
        shards = sd.FileLister(inputs.shard_dir, masks="*.tar").shuffle().sharding_filter()
        batches = image_batches(shards.open_files(mode="rb"), inputs)
        return run_in_workers(batches, inputs, threads, virtual_per_worker)

    return epoch

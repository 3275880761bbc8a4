"""W2 anchor: a DALI CPU pipeline (webdataset reader, decoder, crop, resize), one
thread per worker of the run.

DALI reads the tars through the index files the data step wrote (what DALI's
``wds2idx`` tool makes), shuffles with a 1000-sample buffer and runs its own
JPEG decoder and resize kernels (bilinear, antialiased): same geometry as the
shared Pillow transform, not bit-identical pixels. Labels arrive as the raw
``.cls`` bytes and are parsed in Python, as a DALI user would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.transforms import IMAGE_SIZE
from benchmarks.workloads import Inputs


def build_pipeline(
    inputs: Inputs, device: str, device_id: int | None, fancy_upsampling: bool = False
):
    """The reader -> decode -> centre-crop -> resize -> CHW pipeline; device "cpu" or
    "mixed" (``fancy_upsampling``: 4:2:0 chroma as libjpeg-turbo, as streamdag's node)."""
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali import math as dmath

    @pipeline_def(
        batch_size=inputs.image_batch,
        num_threads=inputs.num_workers,
        device_id=device_id,
        seed=inputs.seed + 1,
    )
    def pipe():
        jpegs, labels = fn.readers.webdataset(
            paths=inputs.shards,
            index_paths=[s[: -len(".tar")] + ".idx" for s in inputs.shards],
            ext=["jpg", "cls"],
            random_shuffle=True,
            initial_fill=inputs.shuffle_buffer,
            name="reader",
        )
        images = fn.decoders.image(
            jpegs, device=device, output_type=types.RGB, jpeg_fancy_upsampling=fancy_upsampling
        )
        shape = images.shape(dtype=types.FLOAT)
        side = dmath.min(shape[0], shape[1])
        images = fn.crop(images, crop_h=side, crop_w=side)
        images = fn.resize(
            images, size=[IMAGE_SIZE, IMAGE_SIZE], interp_type=types.INTERP_LINEAR, antialias=True
        )
        return fn.transpose(images, perm=[2, 0, 1]), labels

    return pipe()


def epoch_batches(pipe, total: int, to_cpu: bool) -> Iterator:
    """Run the pipeline for one epoch of ``total`` samples, as (uint8 tensor, int64 tensor)."""
    import numpy as np
    import torch

    done = 0
    while done < total:
        images, labels = pipe.run()
        n = min(len(labels), total - done)
        if to_cpu:
            images = images.as_cpu()
        batch = torch.from_numpy(np.array(images.as_tensor())[:n])
        ids = torch.tensor([int(bytes(np.array(labels[i]))) for i in range(n)], dtype=torch.int64)
        done += n
        yield batch, ids


def make(inputs: Inputs) -> Callable[[], Iterator]:
    import nvidia.dali  # noqa: F401  (ImportError -> reported "unavailable")

    total = len(inputs.keys)  # the extracted files are exactly the samples of the shards

    def epoch() -> Iterator:
        pipe = build_pipeline(inputs, device="cpu", device_id=None)
        pipe.build()
        yield from epoch_batches(pipe, total, to_cpu=False)

    return epoch

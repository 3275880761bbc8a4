"""W5 anchor: a standalone DALI pipeline on the GPU: fn.readers.webdataset ->
fn.decoders.image(device="mixed") -> crop -> resize, as W2's DALI anchor but
decoding with nvJPEG (with the fancy chroma upsampling streamdag's node asks
for); images stay on the GPU (DLPack), labels are parsed from the raw ``.cls``
bytes.

One pipeline serves every epoch of a repetition, as a DALI user keeps it: the
first epoch pays its build and CUDA start-up, later ones run in steady state
(the reader's epochs are exact: 8000 samples are 125 full batches)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.contenders.w2_dali import build_pipeline
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    import numpy as np
    import nvidia.dali  # noqa: F401  (ImportError -> reported "unavailable")
    import torch

    if not torch.cuda.is_available():
        raise ImportError("W5 needs CUDA (run it on the device machine)")
    total = len(inputs.keys)
    pipes: list = []  # built by the first (timed) epoch

    def epoch() -> Iterator:
        if not pipes:
            pipe = build_pipeline(inputs, device="mixed", device_id=0, fancy_upsampling=True)
            pipe.build()
            pipes.append(pipe)
        pipe = pipes[0]
        done = 0
        while done < total:
            images, labels = pipe.run()
            n = min(len(labels), total - done)
            batch = torch.from_dlpack(images.as_tensor())[:n]
            ids = torch.tensor(
                [int(bytes(np.array(labels[i]))) for i in range(n)], dtype=torch.int64
            )
            done += n
            yield batch, ids
        torch.cuda.synchronize()

    return epoch

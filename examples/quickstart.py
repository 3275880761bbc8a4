"""Quickstart: build a pipeline over generated data, run two epochs through
DataLoader2, see where the time went, stop mid-epoch and resume exactly from
a saved state.

Run with `make demo`."""

from __future__ import annotations

import json
from itertools import islice

import numpy as np

import streamdag as sd


def make_samples(count: int = 1000) -> list[dict]:
    """Synthetic 'images' (8x8x3 uint8) with labels, made deterministically."""
    rng = np.random.default_rng(0)
    return [
        {"image": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8).tolist(), "label": i % 10}
        for i in range(count)
    ]


def to_tensor_pair(sample: dict) -> tuple[np.ndarray, int]:
    image = np.asarray(sample["image"], dtype=np.uint8).transpose(2, 0, 1)  # HWC -> CHW
    return image, sample["label"]


def is_not_label_9(pair: tuple[np.ndarray, int]) -> bool:
    return pair[1] != 9


def build_pipeline(samples: list[dict]) -> sd.DataPipe:
    return (
        # the samples are never changed in place: no deep copy each epoch (torchdata's default)
        sd.IterableWrapper(samples, deepcopy=False, name="samples")
        .shuffle(buffer_size=256, name="shuffle")
        .map(to_tensor_pair, name="to_tensor")
        .filter(is_not_label_9, name="drop_9")
        .batch(64, name="batch")
        .collate(name="collate")
    )


def main() -> None:
    dp = build_pipeline(make_samples())
    loader = sd.DataLoader2(dp, seed=42, stats=True)
    for epoch in range(2):
        batches = list(loader)
        images, labels = batches[0]
        print(
            f"epoch {epoch}: {len(batches)} batches; first batch images {tuple(images.shape)} "
            f"{images.dtype}, labels {labels[:8].tolist()}"
        )
    print(loader.stats().table())  # per node: elements in/out, CPU time, the bottleneck

    # Stop after 5 batches, save the state as JSON, resume in a fresh loader.
    loader.set_epoch(2)
    head = list(islice(iter(loader), 5))
    saved = json.dumps(loader.state_dict())
    resumed = sd.DataLoader2(dp, seed=42)
    resumed.load_state_dict(json.loads(saved))
    tail = list(resumed)
    reference = sd.DataLoader2(dp, seed=42)
    reference.set_epoch(2)
    full = list(reference)
    same = all(a[1].equal(b[1]) for a, b in zip(head + tail, full, strict=True))
    print(
        f"resumed after 5 batches from a {len(saved)}-byte JSON state: "
        f"{len(head)} + {len(tail)} batches, identical to an uninterrupted epoch: {same}"
    )
    for each in (loader, resumed, reference):
        each.shutdown()


if __name__ == "__main__":
    main()

"""Worker-to-main throughput of big tensors, on CPU: streamdag against torch.

``python -m benchmarks.worker_transfer [--batches 100] [--workers 2] [--reps 3]``

The batches of ``benchmarks.pinned_copy`` (dicts of a uint8 image tensor,
64x3x224x224 = 9.6 MB, and a label tensor) are ready in memory; each loader
hands them from its worker processes to the main process, whose loop reads one
byte of each batch. So the figure is the hand-off alone: the copy into shared
memory in the worker, the message, the mapping in the main process. torch
``DataLoader(batch_size=None, num_workers=N)`` over the same list and
streamdag's ``IterableWrapper(deepcopy=False).sharding_filter()`` under
``MultiProcessingReadingService(N)`` run alternately, after one warm-up epoch
each, so a busy machine slows both alike; the ratio of each pair is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterable

from torch.utils.data import DataLoader

import streamdag as sd
from benchmarks.pinned_copy import Batch, _Batches, make_batches


def consume(batches: Iterable[Batch]) -> int:
    """Read one byte of each batch: the batch must have arrived, nothing more."""
    count = 0
    for batch in batches:
        count += 1 + 0 * int(batch["image"][0, 0, 0, 0])
    return count


def rate(loader: Iterable[Batch], expect: int) -> float:
    start = time.perf_counter()
    count = consume(loader)
    elapsed = time.perf_counter() - start
    if count != expect:
        raise RuntimeError(f"got {count} batches, expected {expect}")
    return count / elapsed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.worker_transfer", description=__doc__)
    p.add_argument("--batches", type=int, default=100, help="batches per epoch")
    p.add_argument("--batch-size", type=int, default=64, help="224x224 uint8 images per batch")
    p.add_argument("--workers", type=int, default=2, help="worker processes (>= 1)")
    p.add_argument("--reps", type=int, default=3, help="timed epochs per loader")
    args = p.parse_args(argv)
    batches = make_batches(args.batches, args.batch_size)
    megabytes = sum(t.nbytes for b in batches for t in b.values()) / len(batches) / 1e6
    torch_loader = DataLoader(_Batches(batches), batch_size=None, num_workers=args.workers)
    pipe = sd.IterableWrapper(batches, deepcopy=False).sharding_filter()  # read-only batches
    service = sd.MultiProcessingReadingService(num_workers=args.workers)
    rates: dict[str, list[float]] = {"torch DataLoader": [], "streamdag DataLoader2": []}
    with sd.DataLoader2(pipe, reading_service=service) as loader:
        for rep in range(args.reps + 1):
            for name, contender in zip(rates, (torch_loader, loader), strict=True):
                value = rate(contender, len(batches))
                if rep:  # the first epoch warms up
                    rates[name].append(value)
    print(f"{args.batches} batches of {megabytes:.1f} MB, workers={args.workers}, batches/s:")
    for name, values in rates.items():
        runs = " ".join(f"{v:.0f}" for v in values)
        print(f"  {name}: {runs} (median {statistics.median(values):.0f})")
    ratios = [s / t for t, s in zip(*rates.values(), strict=True)]
    print("  streamdag / torch, per pair: " + " ".join(f"{r:.2f}x" for r in ratios))


if __name__ == "__main__":
    main()

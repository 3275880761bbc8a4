"""What keeping the order costs when batch times vary: workers whose batches
take ``--batch-ms`` times a lognormal jitter (sleeping, so a 2-core machine
can run 14 of them), drained in order with ``prefetch_factor`` 2 and 4, out of
order, and by torch's ``DataLoader`` (in order, ``prefetch_factor=2``).

    python -m benchmarks.lockstep --workers 2,14 --jitter 0,0.1,0.2,0.3

In order, the loop takes one batch from each worker in turn, so a worker
that is ahead by ``prefetch_factor`` batches waits for the slowest: the more
workers, the likelier one of them is slow at any moment. Batch times are the
same for every contender (seeded by batch index); rates are the best of
``--reps`` runs, as a fraction of the ideal (workers / batch time)."""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Iterator

import torch

import streamdag as sd

CONTENDERS = ("in order, prefetch 2", "in order, prefetch 4", "out of order", "torch DataLoader")


class Batches:
    """Batch ``i`` sleeps for ``seconds`` x a mean-one lognormal of sigma
    ``jitter``, drawn from ``i``: the same times for every contender."""

    def __init__(self, seconds: float, jitter: float) -> None:
        self.seconds, self.jitter = seconds, jitter

    def __call__(self, i: int) -> int:
        draw = random.Random(i).gauss(0.0, self.jitter)
        time.sleep(self.seconds * math.exp(draw - self.jitter**2 / 2))
        return i


class _TorchBatches(torch.utils.data.IterableDataset):
    def __init__(self, make: Batches, total: int) -> None:
        self.make, self.total = make, total

    def __iter__(self) -> Iterator[int]:
        info = torch.utils.data.get_worker_info()
        for i in range(info.id, self.total, info.num_workers):
            yield self.make(i)


def drain(contender: str, make: Batches, workers: int, total: int) -> float:
    """Batches per second, worker start-up included."""
    t0 = time.perf_counter()
    if contender == "torch DataLoader":
        loader = torch.utils.data.DataLoader(
            _TorchBatches(make, total), batch_size=None, num_workers=workers
        )
        got = sorted(loader)
    else:
        service = sd.MultiProcessingReadingService(
            workers,
            prefetch_factor=4 if contender.endswith("4") else 2,
            in_order=contender != "out of order",
        )
        dp = sd.IterableWrapper(range(total)).sharding_filter().map(make)
        with sd.DataLoader2(dp, reading_service=service) as loader:
            got = sorted(loader)
    if got != list(range(total)):
        raise AssertionError(f"{contender}: wrong batches")
    return total / (time.perf_counter() - t0)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lockstep", description=__doc__)
    p.add_argument("--workers", default="2,14", help="worker counts")
    p.add_argument("--jitter", default="0,0.1,0.2,0.3", help="lognormal sigmas of batch time")
    p.add_argument("--batch-ms", type=float, default=74.0, help="mean batch time (W2's: ~74)")
    p.add_argument("--batches", type=int, default=38, help="batches per worker")
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args(argv)
    make_seconds = args.batch_ms / 1000
    print("| workers | jitter | " + " | ".join(CONTENDERS) + " |")
    print("|---:|---:|" + "---:|" * len(CONTENDERS))
    for workers in (int(n) for n in args.workers.split(",")):
        ideal = workers / make_seconds
        for jitter in (float(s) for s in args.jitter.split(",")):
            make = Batches(make_seconds, jitter)
            total = workers * args.batches
            cells = []
            for contender in CONTENDERS:
                rate = max(drain(contender, make, workers, total) for _ in range(args.reps))
                cells.append(f"{rate / ideal:.2f}")
            print(f"| {workers} | {jitter:g} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

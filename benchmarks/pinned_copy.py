"""Copy-bound loop: host-to-device batches/s with and without pinned memory.

``python -m benchmarks.pinned_copy [--batches 200] [--workers 0] [--reps 3]``

The data is ready in memory (a list of batches), and the loop only moves each
batch to the GPU with ``non_blocking=True`` and runs one small kernel on it,
so throughput is set by the host-to-device path: pinning (a memcpy into
page-locked memory) and the DMA. Contenders, over the same batches:

- torch ``DataLoader(pin_memory=True)`` (the reference),
- streamdag ``DataLoader2(pin_memory=True)``,
- streamdag ``DataLoader2`` without pinning (pageable copies),
- streamdag ``to_device("cuda")`` (copies ahead on a side stream).

``--workers N`` runs the loaders with N worker processes (torch's
``num_workers``, streamdag's ``MultiProcessingReadingService``); 0 runs them
in the main process. Each figure is the median of ``--reps`` timed epochs
after one warm-up epoch. ``--device cpu`` is a smoke test of the script."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable

import torch
from torch.utils.data import DataLoader, Dataset

import streamdag as sd

Batch = dict[str, torch.Tensor]


class _Batches(Dataset[Batch]):
    """torch's view of the same list: one ready batch per index."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> Batch:
        return self.batches[index]


def make_batches(count: int, batch_size: int) -> list[Batch]:
    gen = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.randint(
                0, 256, (batch_size, 3, 224, 224), dtype=torch.uint8, generator=gen
            ),
            "label": torch.arange(batch_size) + i,
        }
        for i in range(count)
    ]


def consume(batches: Iterable[Batch], device: str) -> int:
    """The copy-bound loop: move, one small kernel, wait for the GPU at the end."""
    total, count = None, 0
    for batch in batches:
        image = batch["image"].to(device, non_blocking=True)
        label = batch["label"].to(device, non_blocking=True)
        step = image[:, 0, 0, 0].sum() + label.sum()
        total = step if total is None else total + step
        count += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return count


def contenders(
    batches: list[Batch], workers: int, device: str, loaders: list[sd.DataLoader2[Batch]]
) -> dict[str, Callable[[], Iterable[Batch]]]:
    """Epoch factories; the streamdag loaders are added to ``loaders`` (to shut down)."""

    def service() -> sd.ReadingService:
        if workers:
            return sd.MultiProcessingReadingService(num_workers=workers)
        return sd.InProcessReadingService()

    def streamdag(pin: bool, ahead: bool = False) -> Callable[[], Iterable[Batch]]:
        pipe = sd.IterableWrapper(batches, deepcopy=False)  # the batches are read-only here
        if workers:
            pipe = pipe.sharding_filter()
        if ahead:
            pipe = pipe.to_device(device)
        loader = sd.DataLoader2(pipe, reading_service=service(), pin_memory=pin)
        loaders.append(loader)
        return lambda: loader

    torch_loader = DataLoader(
        _Batches(batches), batch_size=None, num_workers=workers, pin_memory=True
    )
    return {
        "torch DataLoader(pin_memory=True)": lambda: torch_loader,
        "streamdag DataLoader2(pin_memory=True)": streamdag(True),
        "streamdag DataLoader2 (not pinned)": streamdag(False),
        f"streamdag to_device({device!r})": streamdag(False, ahead=True),
    }


def measure(make: Callable[[], Iterable[Batch]], device: str, reps: int, expect: int) -> float:
    """Median batches/s of ``reps`` epochs, after a warm-up epoch."""
    rates = []
    for rep in range(reps + 1):
        start = time.perf_counter()
        count = consume(make(), device)
        elapsed = time.perf_counter() - start
        if count != expect:
            raise RuntimeError(f"got {count} batches, expected {expect}")
        if rep:
            rates.append(count / elapsed)
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pinned_copy", description=__doc__)
    p.add_argument("--batches", type=int, default=200, help="batches per epoch")
    p.add_argument("--batch-size", type=int, default=64, help="224x224 uint8 images per batch")
    p.add_argument("--workers", type=int, default=0, help="worker processes (0: main process)")
    p.add_argument("--reps", type=int, default=3, help="timed epochs per contender")
    p.add_argument("--device", default="cuda", help="cpu: a smoke test of the script")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("needs CUDA (or --device cpu for a smoke test)")
    batches = make_batches(args.batches, args.batch_size)
    megabytes = sum(t.nbytes for b in batches for t in b.values()) / len(batches) / 1e6
    print(
        f"{args.batches} batches of {megabytes:.1f} MB, workers={args.workers}, "
        f"device={args.device}, median of {args.reps} epochs"
    )
    loaders: list[sd.DataLoader2[Batch]] = []
    try:
        rates = {
            name: measure(make, args.device, args.reps, len(batches))
            for name, make in contenders(batches, args.workers, args.device, loaders).items()
        }
    finally:
        for loader in loaders:
            loader.shutdown()
    reference = rates["torch DataLoader(pin_memory=True)"]
    unpinned = rates["streamdag DataLoader2 (not pinned)"]
    print("| contender | batches/s | GB/s | / torch pinned | / streamdag not pinned |")
    print("|---|---|---|---|---|")
    for name, rate in rates.items():
        print(
            f"| {name} | {rate:.1f} | {rate * megabytes / 1e3:.2f} | "
            f"{rate / reference:.2f}x | {rate / unpinned:.2f}x |"
        )


if __name__ == "__main__":
    main()

"""W7: a ResNet-50 training step (SGD, bf16 autocast, channels_last) fed by each loader.

``python -m benchmarks.w7_train --workers 14 --feed all [--steps 200] [--warmup 20]``

Feeds, all over W2's shards (``--data``, default the large set) and W2's
per-sample transform (decode, centre crop, 224x224 uint8):

- ``webdataset``: webdataset in torch ``DataLoader(num_workers=N, pin_memory=True,
  persistent_workers=True)``;
- ``streamdag``: W2's graph in ``MultiProcessingReadingService(N)``,
  ``DataLoader2(pin_memory=True)``;
- ``streamdag-dali``: the workers read and batch the JPEG bytes,
  ``decode_images(backend="dali", device="gpu")`` decodes them in the main
  process (W5's graph); needs CUDA and DALI, skipped otherwise.

The loop never synchronizes inside the timed steps, as a training loop would
not: the CPU queues a step's kernels and moves on to ``next(loader)``, so time
blocked there is time the GPU would starve. Per feed it prints training
images/s over the timed steps, the data wait (time blocked in ``next`` plus
issuing the host-to-device copy, over the timed wall time), the CPU cores the
process tree used (CPU time / wall) and the time to the first batch.
``--device cpu --model tiny --data smoke --steps 3 --batch 8`` is a smoke test
of the plumbing on a machine without a GPU (``smoke``: 64 images, made in seconds).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from benchmarks import data
from benchmarks.cpu import tree_cpu
from benchmarks.workloads import Inputs, build_inputs, spec_for

FEEDS = ("webdataset", "streamdag", "streamdag-dali")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Skipped(Exception):
    """A feed that cannot run here (no CUDA, library missing): reported, not raised."""


def endless(make_epoch: Callable[[], Any]) -> Iterator:
    """Batches across epochs, as training sees them: an epoch's end costs what it costs."""
    while True:
        yield from make_epoch()


def feed_webdataset(inputs: Inputs, pin: bool) -> tuple[Iterator, Callable[[], None]]:
    from torch.utils.data import DataLoader

    from benchmarks.contenders.w2_webdataset import dataset

    loader = DataLoader(
        dataset(inputs),
        batch_size=None,
        num_workers=inputs.num_workers,
        pin_memory=pin,
        persistent_workers=True,
    )
    return endless(lambda: loader), lambda: None


def _streamdag(dp: Any, inputs: Inputs, pin: bool) -> tuple[Iterator, Callable[[], None]]:
    import streamdag as sd

    rs = sd.MultiProcessingReadingService(num_workers=inputs.num_workers, persistent_workers=True)
    loader = sd.DataLoader2(dp, reading_service=rs, seed=inputs.seed, pin_memory=pin)
    return endless(lambda: loader), loader.shutdown


def feed_streamdag(inputs: Inputs, pin: bool) -> tuple[Iterator, Callable[[], None]]:
    from benchmarks.contenders.w2_streamdag import image_batches, setup_imports

    sd = setup_imports()
    shards = sd.FileLister(inputs.shard_dir, masks="*.tar").shuffle().sharding_filter()
    return _streamdag(image_batches(shards.open_files(mode="rb"), inputs), inputs, pin)


def feed_streamdag_dali(inputs: Inputs, pin: bool) -> tuple[Iterator, Callable[[], None]]:
    import torch

    if not torch.cuda.is_available():
        raise Skipped("needs CUDA: DALI decodes on the GPU")
    try:
        import nvidia.dali  # noqa: F401
    except ImportError as e:
        raise Skipped(f"needs DALI: pip install 'streamdag[dali]' ({e})") from e
    from benchmarks.contenders.w2_streamdag import setup_imports
    from benchmarks.contenders.w5_streamdag import build

    setup_imports()
    return _streamdag(build(inputs), inputs, pin=False)  # batches arrive on the GPU


MAKERS = {
    "webdataset": feed_webdataset,
    "streamdag": feed_streamdag,
    "streamdag-dali": feed_streamdag_dali,
}


def make_model(name: str) -> Any:
    import torch

    if name == "tiny":  # smoke tests: the loop's plumbing, no real compute
        return torch.nn.Sequential(
            torch.nn.AvgPool2d(8),
            torch.nn.Conv2d(3, 8, 3),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(8, 1000),
        )
    try:
        import torchvision
    except ImportError as e:
        raise SystemExit(
            f"--model resnet50 needs torchvision: pip install torchvision ({e})"
        ) from e
    return torchvision.models.resnet50(weights=None)


def train(feed: str, inputs: Inputs, args: argparse.Namespace) -> dict:
    """Warm up, then time ``args.steps`` training steps fed by ``feed``."""
    import torch

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = cuda  # fixed shapes: pick the fastest kernels once
    model = make_model(args.model).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255

    t_build = time.perf_counter()
    batches, shutdown = MAKERS[feed](inputs, pin=cuda)
    try:
        first_batch = None
        wait = 0.0
        for step in range(args.warmup + args.steps):
            if step == args.warmup:  # the timed part starts with the GPU idle
                if cuda:
                    torch.cuda.synchronize()
                wait, cpu0, t0 = 0.0, tree_cpu(), time.perf_counter()
            t = time.perf_counter()
            images, labels = next(batches)
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            wait += time.perf_counter() - t
            if first_batch is None:
                first_batch = time.perf_counter() - t_build
            x = ((images.float() - mean) / std).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = loss_fn(model(x), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        cpu = tree_cpu() - cpu0
    finally:
        shutdown()
    return {
        "feed": feed,
        "images_per_s": args.steps * inputs.image_batch / wall,
        "data_wait": wait / wall,
        "cores": cpu / wall,
        "first_batch_s": first_batch,
        "loss": loss.item(),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.w7_train", description=__doc__)
    p.add_argument("--feed", default="all", choices=(*FEEDS, "all"))
    p.add_argument("--workers", type=int, default=14, help="loader worker processes")
    p.add_argument("--steps", type=int, default=200, help="timed training steps")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke test)")
    p.add_argument("--model", default="resnet50", choices=("resnet50", "tiny"))
    p.add_argument("--data", default="large", choices=("quick", "full", "large", "smoke"))
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.workers < 1:
        p.error("--steps and --workers must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: pass --device cpu (with --model tiny) for a smoke test")
    quick = args.data == "quick"
    manifest = data.ensure(spec_for(quick, "full" if quick else args.data))
    inputs = replace(
        build_inputs(manifest, quick), num_workers=args.workers, image_batch=args.batch
    )
    print(
        f"W7: {args.model}, batch {args.batch}, {args.workers} workers, {args.steps} steps "
        f"after {args.warmup}, device {args.device}, data {manifest['spec']['name']}",
        flush=True,
    )
    print("| feed | images/s | data wait | CPU cores | first batch | status |")
    print("|---|---:|---:|---:|---:|---|")
    for feed in FEEDS if args.feed == "all" else (args.feed,):
        print(_row(feed, inputs, args), flush=True)
    return 0


def _row(feed: str, inputs: Inputs, args: argparse.Namespace) -> str:
    try:
        r = train(feed, inputs, args)
    except Skipped as e:
        return f"| {feed} | - | - | - | - | skipped: {e} |"
    return (
        f"| {feed} | {r['images_per_s']:,.0f} | {r['data_wait']:.1%} | {r['cores']:.1f} | "
        f"{r['first_batch_s']:.2f} s | ok |"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

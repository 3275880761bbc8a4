"""DDP on the GPUs of one host: torchrun, NCCL, one rank per GPU, JPEGs decoded by DALI on each rank's GPU.

Each rank reads its share of the tar shards with worker processes
(``SequentialReadingService(DistributedReadingService(), MultiProcessingReadingService(N))``:
``sharding_filter`` splits the files over rank x worker); the workers batch
the JPEG bytes and ``decode_images(backend="dali", device="gpu")`` decodes
them in the rank's process on its own GPU; a ResNet-50 (bf16 autocast,
channels_last) takes the step. ``even_batches`` (on by default) gives every
rank the same number of batches, so uneven shards cannot hang NCCL.
Checkpoints, ``--kill-at``/``--kill-rank`` and ``--resume`` work as in
train_ddp.py: a resumed run trains on exactly the batches of an
uninterrupted one.

    torchrun --nproc-per-node 8 examples/train_ddp_gpu.py
    torchrun --nproc-per-node 8 examples/train_ddp_gpu.py --kill-at 300 --kill-rank 3
    torchrun --nproc-per-node 8 examples/train_ddp_gpu.py --resume
    # without GPUs (gloo, Pillow in the workers): the same loop and checks
    torchrun --nproc-per-node 2 examples/train_ddp_gpu.py --device cpu --decode cpu --model tiny

Generates JPEG shards (``--size`` pixels square, a ``.cls`` label) into
``--data`` if it has none. ``--steps-log`` gets per rank ``rank{r}.jsonl``
(one line per step: step, epoch, loss, sample keys) and ``rank{r}.summary.json``
(images/s, first batch, CPU cores, peak RSS, GPU memory in use, batches per
epoch), which rank 0 also prints as a table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from _ddp_common import first_attempt, prepare_folders, restore, save_checkpoint, write_shard
from PIL import Image
from torch.nn.parallel import DistributedDataParallel

import streamdag as sd

CLASSES = 10


def make_shards(folder: Path, shards: int, per_shard: int, size: int) -> None:
    """Deterministic webdataset shards: ``<shard>_<i>.jpg`` (a noisy image
    whose colour follows its label) and ``<shard>_<i>.cls``."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        rng = np.random.default_rng(s)
        samples = []
        for i in range(per_shard):
            label = int(rng.integers(0, CLASSES))
            pixels = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
            pixels[..., label % 3] += np.uint8(20 * label)
            jpg = io.BytesIO()
            Image.fromarray(pixels).save(jpg, format="JPEG", quality=90)
            samples.append(
                (f"{s:04d}_{i:05d}", {"jpg": jpg.getvalue(), "cls": str(label).encode()})
            )
        write_shard(folder / f"shard-{s:04d}.tar", samples)


def encoded(sample: dict[str, Any]) -> tuple[bytes, int, str]:
    """(JPEG bytes, label, key): what the workers batch for the GPU decoder."""
    return sample[".jpg"], int(sample[".cls"]), sample["__key__"].rsplit("/", 1)[-1]


def decoded(sample: dict[str, Any], crop: int) -> tuple[np.ndarray, int, str]:
    """(CHW uint8 centre crop, label, key), decoded by Pillow in a worker."""
    data, label, key = encoded(sample)
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    top, left = (image.shape[0] - crop) // 2, (image.shape[1] - crop) // 2
    return image[top : top + crop, left : left + crop].transpose(2, 0, 1).copy(), label, key


def build_pipe(args: argparse.Namespace, device_id: int | None) -> sd.DataPipe:
    samples = (
        sd.FileLister(args.data, masks="*.tar")
        .shuffle()  # the same shard order on every rank (same seed upstream of the split)
        .sharding_filter()  # then each rank x worker takes its shards
        .open_files(mode="b")
        .load_from_tar()
        .webdataset()
    )
    if args.decode == "cpu":
        return (
            samples.map(partial(decoded, crop=args.crop))
            .shuffle(buffer_size=64)
            .batch(args.batch_size)
            .collate()
        )
    # the workers batch bytes; the rank's process decodes them on its own GPU
    batches = samples.map(encoded).shuffle(buffer_size=64).batch(args.batch_size)
    return batches.decode_images(backend="dali", device="gpu", device_id=device_id, crop=args.crop)


def make_model(name: str) -> torch.nn.Module:
    if name == "tiny":  # the loop's plumbing, no real compute
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(8, CLASSES),
        )
    try:
        import torchvision
    except ImportError as e:
        raise SystemExit(
            f"--model resnet50 needs torchvision: pip install torchvision ({e})"
        ) from e
    return torchvision.models.resnet50(weights=None, num_classes=CLASSES)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default="ddp-gpu-example/shards", help="tar shards (made if none)"
    )
    parser.add_argument("--ckpt", default="ddp-gpu-example/ckpt")
    # not --log: torchrun would take it for an abbreviation of its --log-dir
    parser.add_argument("--steps-log", default="ddp-gpu-example/logs")
    # shards are split over rank x worker: keep several per worker (8 GPUs x 16 workers: 128)
    parser.add_argument("--shards", type=int, default=256)
    parser.add_argument("--per-shard", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="side of the generated JPEGs")
    parser.add_argument("--crop", type=int, default=224, help="centre crop fed to the model")
    parser.add_argument("--batch-size", type=int, default=64, help="per rank")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4, help="worker processes per rank")
    parser.add_argument("--model", default="resnet50", choices=("resnet50", "tiny"))
    parser.add_argument("--decode", default="dali", choices=("dali", "cpu"))
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--ckpt-every", type=int, default=100, help="steps between checkpoints")
    parser.add_argument("--kill-at", type=int, help="one rank exits abruptly at this step")
    parser.add_argument("--kill-rank", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="from the last checkpoint")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: pass --device cpu --decode cpu (--model tiny)")
    if args.decode == "dali" and args.device == "cpu":
        parser.error("--decode dali decodes on the GPU: pass --decode cpu with --device cpu")
    return args


def main() -> None:
    args = parse_args()
    cuda = args.device == "cuda"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:  # before anything touches CUDA: NCCL, the model and DALI all use this GPU
        torch.cuda.set_device(local_rank)
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    # rank, world: torchrun's environment; NCCL is told its GPU, not left to guess
    dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    rank = dist.get_rank()
    data, ckpt, log = Path(args.data), Path(args.ckpt), Path(args.steps_log)
    if rank == 0 and not any(data.glob("*.tar")):
        make_shards(data, args.shards, args.per_shard, args.size)
    prepare_folders(rank, ckpt, log, args.resume)

    torch.manual_seed(0)  # the same initial model on every rank
    model = make_model(args.model).to(device, memory_format=torch.channels_last)
    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    service = sd.SequentialReadingService(
        sd.DistributedReadingService(),  # even_batches=True: equal batch counts on every rank
        sd.MultiProcessingReadingService(args.workers),
    )
    pipe = build_pipe(args, local_rank if cuda else None)
    pinned = cuda and args.decode == "cpu"  # DALI's batches are on the GPU already
    loader = sd.DataLoader2(pipe, reading_service=service, seed=0, pin_memory=pinned)
    step, first_epoch = restore(ckpt, rank, model, optim, loader) if args.resume else (0, 0)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)

    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    first_batch = t_first = None
    images_seen, batches, gpu_used = 0, {}, 0.0
    with loader, StepLog(log / f"rank{rank}.jsonl") as steps:
        for epoch in range(first_epoch, args.epochs):
            batches[epoch] = 0
            for images, labels, keys in loader:
                if t_first is None:
                    t_first = time.perf_counter()
                    first_batch = t_first - t0
                else:
                    images_seen += len(keys)  # timed from the first batch on
                step += 1
                batches[epoch] += 1
                if step == args.kill_at and rank == args.kill_rank and first_attempt():
                    os._exit(1)  # a kill: no cleanup, no checkpoint
                x = images.to(device, non_blocking=True).float().div_(255).sub_(0.5)
                x = x.contiguous(memory_format=torch.channels_last)
                y = torch.as_tensor(labels).to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                    loss = torch.nn.functional.cross_entropy(ddp(x), y)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                steps.add(step, epoch, loss, keys)
                if step % args.ckpt_every == 0:
                    save_checkpoint(ckpt, rank, step, model, optim, loader)
            if cuda:  # this GPU's memory in use (the rank's torch, DALI, CUDA context)
                free, total = torch.cuda.mem_get_info(device)
                gpu_used = max(gpu_used, (total - free) / 2**30)
        if cuda:
            torch.cuda.synchronize()
        t_end = time.perf_counter()
    # the workers have exited: their CPU time is in RUSAGE_CHILDREN now
    wall = time.perf_counter() - t0
    summary = {
        "rank": rank,
        "device": str(device),
        "images_per_s": images_seen / (t_end - t_first) if t_first else 0.0,
        "first_batch_s": first_batch,
        "cpu_cores": (_cpu_seconds() - cpu0) / wall,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "gpu_used_gib": gpu_used,
        "batches_per_epoch": batches,
    }
    (log / f"rank{rank}.summary.json").write_text(json.dumps(summary) + "\n")
    report(log)
    dist.destroy_process_group()


class StepLog:
    """One JSON line per step, written one step late: ``loss.item()`` then
    waits for the previous step only, so the CPU stays a step ahead of the GPU."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a")  # noqa: SIM115 (closed by __exit__)
        self.pending: dict[str, Any] | None = None

    def add(self, step: int, epoch: int, loss: torch.Tensor, keys: list[str]) -> None:
        self.write()
        self.pending = {"step": step, "epoch": epoch, "loss": loss.detach(), "keys": list(keys)}

    def write(self) -> None:
        if self.pending is not None:
            line = {**self.pending, "loss": self.pending["loss"].item()}
            self.file.write(json.dumps(line) + "\n")
            self.file.flush()  # a killed rank keeps what it logged
            self.pending = None

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.write()
        self.file.close()


def _cpu_seconds() -> float:
    """User + system CPU of this rank and its reaped workers."""
    return sum(
        u.ru_utime + u.ru_stime
        for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def report(log: Path) -> None:
    """Rank 0 prints every rank's summary, read from the ranks' files once all
    are written (a barrier: every rank calls it; the ranks share a host, so
    their log folder). Not ``all_gather_object``:
    gloo's threads release a collective's tensors after the call returns, and
    releasing tensors made in Python while the interpreter exits aborts the
    rank ("terminate called without an active exception"); a barrier holds
    none."""
    dist.barrier()
    if dist.get_rank() != 0:
        return
    rows = [
        json.loads((log / f"rank{r}.summary.json").read_text())
        for r in range(dist.get_world_size())
    ]
    print(
        "| rank | device | images/s | first batch | CPU cores | peak RSS | GPU used | batches/epoch |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['rank']} | {r['device']} | {r['images_per_s']:,.0f} | {r['first_batch_s']:.2f} s "
            f"| {r['cpu_cores']:.1f} | {r['peak_rss_gib']:.2f} GiB | {r['gpu_used_gib']:.2f} GiB "
            f"| {list(r['batches_per_epoch'].values())} |"
        )
    total = sum(r["images_per_s"] for r in rows)
    print(f"{total:,.0f} images/s in all, {total / len(rows):,.0f} per rank", flush=True)


if __name__ == "__main__":
    main()

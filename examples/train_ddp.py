"""DDP training from tar shards with torchrun, per-rank checkpoints, kill and resume.

Each rank reads its share of the shards (``sharding_filter`` splits the files
over rank x worker) through ``SequentialReadingService(DistributedReadingService(),
MultiProcessingReadingService(2))`` and trains a tiny model wrapped in
``DistributedDataParallel`` (gloo, CPU). Every ``--ckpt-every`` steps each rank
saves its checkpoint; ``--crash-at STEP`` kills one rank there (``os._exit``);
``--resume`` restarts every rank from the last checkpoint all ranks hold and
trains on exactly the batches the uninterrupted run would have.

    torchrun --nproc-per-node 2 examples/train_ddp.py --crash-at 20
    torchrun --nproc-per-node 2 examples/train_ddp.py --resume

Generates its shards (8 x 64 samples: an 8x8x3 ``.npy`` and a ``.cls`` label)
into ``--data`` if that folder has none. ``--steps-log`` gets one JSON line per step
and rank (``rank{r}.jsonl``: step, epoch, loss, the keys of the samples trained on).
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from _ddp_common import first_attempt, prepare_folders, restore, save_checkpoint, write_shard
from torch.nn.parallel import DistributedDataParallel

import streamdag as sd


def make_shards(folder: Path, shards: int, per_shard: int) -> None:
    """Deterministic webdataset shards: ``<shard>_<i>.npy`` (8x8x3 uint8
    image whose brightness follows its label) and ``<shard>_<i>.cls``."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        rng = np.random.default_rng(s)
        samples = []
        for i in range(per_shard):
            label = int(rng.integers(0, 10))
            image = np.full((8, 8, 3), label * 25, np.uint8)
            image += rng.integers(0, 20, (8, 8, 3), dtype=np.uint8)
            npy = io.BytesIO()
            np.save(npy, image)
            samples.append(
                (f"{s:04d}_{i:05d}", {"npy": npy.getvalue(), "cls": str(label).encode()})
            )
        write_shard(folder / f"shard-{s:04d}.tar", samples)


def to_example(sample: dict[str, Any]) -> tuple[np.ndarray, int, str]:
    """A decoded sample as (CHW float image, label, key within its shard)."""
    image = sample[".npy"].transpose(2, 0, 1).astype(np.float32) / 255.0
    return image, sample[".cls"], sample["__key__"].rsplit("/", 1)[-1]


def build_pipe(data: Path, batch_size: int) -> sd.DataPipe:
    return (
        sd.FileLister(str(data), masks="*.tar")
        .shuffle()  # the same shard order on every rank (same seed upstream of the split)
        .sharding_filter()  # then each rank x worker takes its shards
        .open_files(mode="b")
        .load_from_tar()
        .webdataset()
        .decode()
        .map(to_example)
        .shuffle(buffer_size=64)
        .batch(batch_size)
        .collate()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ddp-example/shards", help="tar shards (made if none)")
    parser.add_argument("--ckpt", default="ddp-example/ckpt")
    # not --log: torchrun would take it for an abbreviation of its --log-dir
    parser.add_argument("--steps-log", default="ddp-example/logs", help="one JSON line per step")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--per-shard", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="worker processes per rank")
    parser.add_argument("--ckpt-every", type=int, default=5, help="steps between checkpoints")
    parser.add_argument("--crash-at", type=int, help="one rank exits abruptly at this step")
    parser.add_argument("--crash-rank", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="from the last checkpoint")
    args = parser.parse_args()

    dist.init_process_group("gloo")  # rank, world size, address: torchrun's environment
    rank = dist.get_rank()
    torch.set_num_threads(1)
    data, ckpt, log = Path(args.data), Path(args.ckpt), Path(args.steps_log)
    if rank == 0 and not any(data.glob("*.tar")):
        make_shards(data, args.shards, args.per_shard)
    prepare_folders(rank, ckpt, log, args.resume)  # a barrier: the shards are there

    torch.manual_seed(0)  # the same initial model on every rank
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 3, 10))
    optim = torch.optim.SGD(model.parameters(), lr=0.05)
    service = sd.SequentialReadingService(
        sd.DistributedReadingService(), sd.MultiProcessingReadingService(args.workers)
    )
    loader = sd.DataLoader2(build_pipe(data, args.batch_size), reading_service=service, seed=0)
    step, first_epoch = restore(ckpt, rank, model, optim, loader) if args.resume else (0, 0)
    ddp = DistributedDataParallel(model)

    with loader, open(log / f"rank{rank}.jsonl", "a") as out:
        # a checkpoint taken after an epoch's last batch resumes an empty
        # epoch, then the next one: the loop needs no special case
        for epoch in range(first_epoch, args.epochs):
            for images, labels, keys in loader:
                step += 1
                if step == args.crash_at and rank == args.crash_rank and first_attempt():
                    os._exit(1)  # a kill: no cleanup, no checkpoint
                loss = torch.nn.functional.cross_entropy(ddp(images), labels)
                optim.zero_grad()
                loss.backward()
                optim.step()
                line = {"step": step, "epoch": epoch, "loss": loss.item(), "keys": list(keys)}
                out.write(json.dumps(line) + "\n")
                out.flush()
                if step % args.ckpt_every == 0:
                    save_checkpoint(ckpt, rank, step, model, optim, loader)
            if rank == 0:
                print(f"epoch {epoch} done at step {step}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

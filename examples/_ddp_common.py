"""Helpers shared by the DDP examples (train_ddp.py, train_ddp_gpu.py): their
shards, and checkpoints.

DistributedReadingService's state is per rank: it holds this rank's position
in its own shard (and the world size), not a global one, so every rank must
save and reload its own loader state. The model and the optimizer are the
same on every rank under DDP; each rank saves them too so that its file alone
restores it (with a large model, save them once, e.g. with
torch.distributed.checkpoint: the loader state is plain data and goes in as
it is). A kill can land while one rank has written step s and another has
not: each rank keeps its previous checkpoint as well, and a resume picks the
newest step that every rank holds.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


def first_attempt() -> bool:
    """False in the ranks torchrun --max-restarts restarts (they must not crash again)."""
    return os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"


def save_checkpoint(
    folder: Path, rank: int, step: int, model: Any, optim: Any, loader: Any
) -> None:
    """Atomically: write a temporary file, keep the last one as ``.prev``, rename."""
    payload = {
        "step": step,
        "model": model.state_dict(),
        "optim": optim.state_dict(),
        "loader": loader.state_dict(),  # this rank's position
    }
    path = folder / f"rank{rank}.pt"
    tmp = folder / f"rank{rank}.pt.tmp"
    torch.save(payload, tmp)
    if path.exists():
        path.replace(folder / f"rank{rank}.prev.pt")
    tmp.replace(path)


def restore(folder: Path, rank: int, model: Any, optim: Any, loader: Any) -> tuple[int, int]:
    """Load this rank's newest common checkpoint into model, optimizer and
    loader; the step and epoch to go on from ((0, 0): nothing to resume)."""
    checkpoint = load_checkpoint(folder, rank)
    if checkpoint is None:
        return 0, 0
    model.load_state_dict(checkpoint["model"])
    optim.load_state_dict(checkpoint["optim"])
    loader.load_state_dict(checkpoint["loader"])
    step, epoch = checkpoint["step"], checkpoint["loader"]["epoch"]
    print(f"rank {rank}: resumed at step {step}, epoch {epoch}", flush=True)
    return step, epoch


def load_checkpoint(folder: Path, rank: int) -> dict[str, Any] | None:
    """This rank's checkpoint of the newest step all ranks hold (None: no
    checkpoint anywhere). A collective: every rank calls it."""
    held = {}
    for name in (f"rank{rank}.pt", f"rank{rank}.prev.pt"):
        if (folder / name).exists():
            # on CPU first: a GPU rank moves the model where it belongs itself
            checkpoint = torch.load(folder / name, weights_only=True, map_location="cpu")
            held[checkpoint["step"]] = checkpoint
    steps: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(steps, sorted(held))
    common = set.intersection(*(set(s) for s in steps))
    if not common:
        if any(steps):
            msg = f"rank {rank}: no checkpoint step that every rank holds in {folder}: {steps}"
            raise RuntimeError(msg)
        return None
    return held[max(common)]


def prepare_folders(rank: int, ckpt: Path, log: Path, resume: bool) -> None:
    """Rank 0 makes the folders; a new run (not ``resume``) clears an older
    run's checkpoints and step logs, which must not be resumed or appended to."""
    if rank == 0:
        ckpt.mkdir(parents=True, exist_ok=True)
        log.mkdir(parents=True, exist_ok=True)
        if not resume:
            for old in [*ckpt.glob("rank*.pt*"), *log.glob("rank*.json*")]:
                old.unlink()
    dist.barrier()


def write_shard(path: Path, samples: Iterable[tuple[str, dict[str, bytes]]]) -> None:
    """A webdataset tar of ``(key, {extension: bytes})`` samples, written
    aside and renamed into place: a rank never lists a half-written shard."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for key, files in samples:
            for ext, data in files.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)

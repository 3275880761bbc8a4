"""W2 (tar shards -> decode -> crop 224 -> shuffle 1000 -> batch 64) under
``RayReadingService`` and ``MultiProcessingReadingService(persistent_workers=True)``
at several worker counts: images/s, images/s per worker, first-batch latency
of each epoch and the CPU of Ray's own processes (raylet, GCS, agents, idle
workers: during the epochs, and in all since Ray started).

    python -m benchmarks.ray_scaling --actors 2,4,8,12 --data large

Needs only this repository, ray, pillow, numpy and torch: the image shards are
generated into a temporary folder (``--data-dir`` keeps them for another run).
Each (service, worker count, repetition) runs in a fresh process with one
loader and ``--epochs`` epochs through it, so epoch 1 holds the workers' start
(and the local Ray instance the service starts, under "setup") and later
epochs the steady state. Repetitions interleave the services (A-B-A-B), so a
busy machine slows both alike; the table shows the median and the range."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks import data
from benchmarks.cpu import proc_cpu, tree_cpu
from benchmarks.memory import descendants
from benchmarks.workloads import Inputs

SIZES = {
    "tiny": replace(data.QUICK, name="tiny", shards=4, per_shard=32),
    "full": data.FULL,
    "large": data.LARGE,
}
SERVICES = ("ray", "processes")


def write_shards(root: Path, spec: data.DataSpec) -> Path:
    """The W2 image shards of ``spec`` under ``root`` (generated once)."""
    shard_dir = root / "images" / "shards"
    if len(list(shard_dir.glob("*.tar"))) != spec.shards:
        for sub in ("images/shards", "images/files"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        with get_context("spawn").Pool() as pool:
            pool.starmap(data.write_shard, [(root, spec, i) for i in range(spec.shards)])
    return shard_dir


def _inputs(shard_dir: str, workers: int) -> Inputs:
    return Inputs(
        quick=False,
        n_ints=0,
        shard_dir=shard_dir,
        shards=[],
        files_dir="",
        keys=[],
        text_dir="",
        text_files=[],
        docs_dir="",
        doc_files=[],
        tokenizer="",
        num_workers=workers,
    )


def run_one(service_name: str, workers: int, shard_dir: str, epochs: int) -> dict[str, Any]:
    """One loader, ``epochs`` epochs; runs in its own process."""
    from benchmarks.contenders.w2_streamdag import image_batches, setup_imports

    sd = setup_imports()
    inputs = _inputs(shard_dir, workers)
    shards = sd.FileLister(shard_dir, masks="*.tar").shuffle().sharding_filter()
    dp = image_batches(shards.open_files(mode="rb"), inputs)
    t0 = time.perf_counter()
    if service_name == "ray":
        service = sd.RayReadingService(workers, trusted_modules=["benchmarks"])
    else:
        service = sd.MultiProcessingReadingService(workers, persistent_workers=True)
    loader = sd.DataLoader2(dp, reading_service=service, seed=0)
    result: dict[str, Any] = {"setup_s": time.perf_counter() - t0, "epochs": []}
    cpu0, ray0 = tree_cpu(), _ray_own_cpu(service)
    for _ in range(epochs):
        start, first, images = time.perf_counter(), None, 0
        for _images, labels in loader:
            first = first if first is not None else time.perf_counter() - start
            images += int(labels.shape[0])
        seconds = time.perf_counter() - start
        result["epochs"].append({"images": images, "per_s": images / seconds, "first_s": first})
    wall = sum(e["images"] / e["per_s"] for e in result["epochs"])
    result["cpu_cores"] = (tree_cpu() - cpu0) / wall
    result["cpu_ms_per_image"] = (
        (tree_cpu() - cpu0) / sum(e["images"] for e in result["epochs"]) * 1e3
    )
    if ray0 is not None:
        ray_cpu = _ray_own_cpu(service)
        result["ray_own_cores"] = (ray_cpu - ray0) / wall
        result["ray_own_cpu_s"] = ray_cpu  # since Ray started: its start-up too
    loader.shutdown()
    return result


def _ray_own_cpu(service: Any) -> float | None:
    """CPU seconds so far of the Ray processes this one started (raylet, GCS,
    agents, idle workers): all below it but the actors."""
    actors = getattr(service, "actors", None)
    if actors is None:
        return None
    import ray

    me = os.getpid()
    mine = {me, *(ray.get(actor.where.remote())["pid"] for actor in actors)}
    return sum(proc_cpu(pid) for pid in descendants(me) if pid not in mine)


def _child(service_name: str, workers: int, shard_dir: str, epochs: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.ray_scaling", "--epochs", str(epochs)]
    cmd += ["--one", service_name, str(workers), shard_dir]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cell(values: list[float], fmt: str) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def report(results: dict[tuple[str, int], list[dict]], epochs: int) -> str:
    """A markdown table: medians over repetitions (range in brackets)."""
    head = ["service", "workers", "setup s"]
    for e in range(1, epochs + 1):
        head += [f"epoch {e} images/s", f"epoch {e} first batch s"]
    head += [f"epoch {epochs} images/s per worker", "CPU cores (all)"]
    head += ["CPU ms/image (all)", "Ray's own cores"]
    head += ["Ray's own CPU s (all)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (name, workers), reps in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        row = [name, str(workers), _cell([r["setup_s"] for r in reps], ".2f")]
        for e in range(epochs):
            row.append(_cell([r["epochs"][e]["per_s"] for r in reps], ",.0f"))
            row.append(_cell([r["epochs"][e]["first_s"] for r in reps], ".2f"))
        row.append(_cell([r["epochs"][-1]["per_s"] / workers for r in reps], ",.0f"))
        row.append(_cell([r["cpu_cores"] for r in reps], ".2f"))
        row.append(_cell([r["cpu_ms_per_image"] for r in reps], ".2f"))
        for key in ("ray_own_cores", "ray_own_cpu_s"):
            own = [r[key] for r in reps if key in r]
            row.append(_cell(own, ".2f") if own else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def pairs(results: dict[tuple[str, int], list[dict]], epoch: int) -> str:
    """Ray / processes images/s of each repetition (run back to back), per count."""
    lines = []
    for (name, workers), reps in sorted(results.items()):
        other = results.get(("processes", workers))
        if name == "ray" and other:
            ratios = [
                r["epochs"][epoch]["per_s"] / o["epochs"][epoch]["per_s"]
                for r, o in zip(reps, other, strict=True)
            ]
            shown = ", ".join(f"{x:.2f}" for x in ratios)
            lines.append(f"{workers} workers, epoch {epoch + 1}: ray / processes = {shown}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ray_scaling", description=__doc__)
    p.add_argument("--actors", default="2", help="worker counts, e.g. 2,4,8,12")
    p.add_argument("--data", choices=tuple(SIZES), default="full", help="data set size")
    p.add_argument("--data-dir", help="where the shards are (or go); default: a temporary dir")
    p.add_argument("--epochs", type=int, default=2, help="epochs through each loader (>= 1)")
    p.add_argument("--reps", type=int, default=1, help="repetitions, interleaved (>= 1)")
    p.add_argument("--services", default=",".join(SERVICES), help="ray, processes or both")
    p.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # SERVICE WORKERS SHARD_DIR
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.one[2], args.epochs)))
        return 0
    counts = sorted({int(n) for n in args.actors.split(",") if n.strip()})
    services = [s.strip() for s in args.services.split(",") if s.strip()]
    if not counts or counts[0] < 1 or args.epochs < 1 or args.reps < 1:
        p.error("--actors needs counts >= 1; --epochs and --reps >= 1")
    if any(s not in SERVICES for s in services):
        p.error(f"--services takes {', '.join(SERVICES)}")
    spec = SIZES[args.data]
    with tempfile.TemporaryDirectory(prefix="sd-ray-scaling-") as tmp:
        root = Path(args.data_dir) if args.data_dir else Path(tmp)
        shard_dir = str(write_shards(root, spec))
        expected = spec.shards * spec.per_shard
        results: dict[tuple[str, int], list[dict]] = {}
        for _ in range(args.reps):
            for workers in counts:
                for name in services:
                    run = _child(name, workers, shard_dir, args.epochs)
                    got = [e["images"] for e in run["epochs"]]
                    if got != [expected] * args.epochs:
                        raise SystemExit(f"{name} x{workers}: epochs of {got}, not {expected}")
                    results.setdefault((name, workers), []).append(run)
                    print(f"[{time.strftime('%H:%M:%S')}] {name} x{workers} done", file=sys.stderr)
    print(f"W2, {expected} images, {args.epochs} epochs per loader, {args.reps} repetitions")
    print(report(results, args.epochs))
    if "ray" in services and "processes" in services:
        for epoch in range(args.epochs):
            print(pairs(results, epoch))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

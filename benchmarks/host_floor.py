"""How much faster does this host decode W2's images with N cores busy than with one?

N processes, forked and started together, each decode and crop the same
number of the extracted JPEGs (held in memory, as W2's Pillow floor does) and
keep only a count: no loader, no reading, nothing moved between processes.
Images/s per process at N over the rate at the smallest N is the host's own
scaling efficiency, the ceiling of any loader's (the 16-core H100 host: the
same per process from 2 to 14; docs/reading-services.md, "Scaling on a
16-core host").

    python -m benchmarks.host_floor --workers 1,2,4,8,14 --data large
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import data
from benchmarks.cpu import own_and_reaped_cpu
from benchmarks.transforms import image_sample


def _decode(samples: list[tuple[bytes, bytes]], start: Any) -> None:
    start.wait()
    for jpg, cls in samples:
        image_sample(jpg, cls)


def measure(samples: list[tuple[bytes, bytes]], workers: int, per_worker: int) -> dict:
    """One run: ``workers`` processes decoding ``per_worker`` images each, at once."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    shares = [
        [samples[(w * per_worker + i) % len(samples)] for i in range(per_worker)]
        for w in range(workers)
    ]
    procs = [ctx.Process(target=_decode, args=(share, start)) for share in shares]
    for proc in procs:
        proc.start()
    time.sleep(0.2)  # every process forked and waiting
    cpu0, t0 = own_and_reaped_cpu(), time.perf_counter()
    start.set()
    for proc in procs:
        proc.join()
    seconds = time.perf_counter() - t0
    if any(proc.exitcode for proc in procs):
        raise SystemExit(f"a decoding process failed: exit codes {[p.exitcode for p in procs]}")
    images = workers * per_worker
    return {"per_s": images / seconds, "cpu_ms": (own_and_reaped_cpu() - cpu0) / images * 1e3}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.host_floor", description=__doc__)
    p.add_argument("--workers", default="1,2,4,8,14", help="process counts, e.g. 1,2,4,8,14")
    p.add_argument("--data", choices=tuple(data.SPECS), default="full", help="data set (cached)")
    p.add_argument("--per-worker", type=int, default=1500, help="images each process decodes")
    p.add_argument("--reps", type=int, default=3, help="runs per count, interleaved (>= 1)")
    args = p.parse_args(argv)
    counts = sorted({int(n) for n in args.workers.split(",") if n.strip()})
    if not counts or counts[0] < 1 or args.per_worker < 1 or args.reps < 1:
        p.error("--workers needs counts >= 1; --per-worker and --reps >= 1")
    files = Path(data.ensure(data.SPECS[args.data])["root"]) / "images" / "files"
    needed = counts[-1] * args.per_worker
    jpgs = sorted(files.glob("*.jpg"))[:needed]  # every process decodes different images
    samples = [(f.read_bytes(), f.with_suffix(".cls").read_bytes()) for f in jpgs]
    runs: dict[int, list[dict]] = {n: [] for n in counts}
    for _ in range(args.reps):
        for n in counts:
            runs[n].append(measure(samples, n, args.per_worker))
    cores = len(os.sched_getaffinity(0))
    print(f"{args.per_worker} images per process, {args.reps} runs, {cores} usable cores")
    print(f"| processes | images/s | images/s per process | vs {counts[0]} | CPU ms/image |")
    print("|---:|---:|---:|---:|---:|")
    single = statistics.median(r["per_s"] for r in runs[counts[0]]) / counts[0]
    for n in counts:
        rate = statistics.median(r["per_s"] for r in runs[n])
        cpu_ms = statistics.median(r["cpu_ms"] for r in runs[n])
        print(f"| {n} | {rate:,.0f} | {rate / n:,.0f} | {rate / n / single:.2f} | {cpu_ms:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where the main process spends its time while N workers feed it W2's pipeline.

``python -m benchmarks.profile_main --workers 14 --data large [--epochs 1] [--top 25]``

Runs W2's streamdag graph (``MultiProcessingReadingService(N)``,
``DataLoader2(stats=True)``) for whole epochs, with no training step: the main
process only receives, unpickles, merges and hands over batches, so its
profile shows what caps throughput as workers are added. It prints:

- the main thread's hottest functions: sampled by py-spy (``--sampler
  py-spy``, the default when the ``py-spy`` command is installed: no overhead in
  the profiled process, every thread) or
  measured by cProfile otherwise (deterministic, slows Python-heavy code);
- the per-node table of ``loader.stats()``: CPU per node summed over workers,
  and how long the loop waited for data;
- images/s and the main process's CPU cores (its CPU time / wall): near 1.0 the
  main process is the bottleneck, whatever the workers could deliver;
- the first batch, the rate after it, and when 10% and 90% of the images had
  come (start-up and the end of the epoch, against the middle);
- the workers' user and system CPU per image: system time that grows with the
  worker count points at the kernel (page faults, shared memory), user time at
  the work itself.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from benchmarks import data
from benchmarks.cpu import children_user_system
from benchmarks.workloads import build_inputs, spec_for

RATE = 250  # py-spy samples per second


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_main", description=__doc__)
    p.add_argument("--workers", type=int, default=14)
    p.add_argument("--data", default="large", choices=("quick", "full", "large"))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--top", type=int, default=25, help="functions listed")
    p.add_argument("--prefetch-factor", type=int, default=2, help="chunks ahead per worker")
    p.add_argument("--unordered", action="store_true", help="in_order=False")
    p.add_argument(
        "--sampler",
        choices=("auto", "py-spy", "cprofile", "none"),
        default="auto",
        help="auto: py-spy when installed, else cProfile; none: no profile, stats only",
    )
    return p.parse_args(argv)


def run(args: argparse.Namespace, profile: cProfile.Profile | None) -> None:
    """The measured loop: build the loader, drain ``args.epochs`` epochs, print its stats."""
    from benchmarks.contenders.w2_streamdag import image_batches, setup_imports

    quick = args.data == "quick"
    manifest = data.ensure(spec_for(quick, "full" if quick else args.data))
    inputs = replace(build_inputs(manifest, quick), num_workers=args.workers)
    sd = setup_imports()
    shards = sd.FileLister(inputs.shard_dir, masks="*.tar").shuffle().sharding_filter()
    dp = image_batches(shards.open_files(mode="rb"), inputs)
    rs = sd.MultiProcessingReadingService(
        num_workers=args.workers,
        persistent_workers=True,
        prefetch_factor=args.prefetch_factor,
        in_order=not args.unordered,
    )
    loader = sd.DataLoader2(dp, reading_service=rs, seed=inputs.seed, stats=True)
    cpu0, t0 = _own_cpu(), time.perf_counter()
    user0, system0 = children_user_system()
    if profile:
        profile.enable()
    try:
        arrivals = _drain(loader, args.epochs)
    finally:
        if profile:
            profile.disable()
    wall, cpu = time.perf_counter() - t0, _own_cpu() - cpu0
    user, system = (b - a for a, b in zip((user0, system0), children_user_system(), strict=True))
    print(loader.stats().table())
    loader.shutdown()
    images = arrivals[-1][1]
    print(
        f"\n{images:,} images in {wall:.2f} s: {images / wall:,.0f} images/s with "
        f"{args.workers} workers; main process {cpu / wall:.2f} cores "
        f"(data {manifest['spec']['name']})"
    )
    print(_timeline(arrivals, t0))
    print(
        f"workers: {user / images * 1e3:.3f} ms user + {system / images * 1e3:.3f} ms system "
        f"per image ({(user + system) / wall:.2f} cores)"
    )


def _drain(loader, epochs: int) -> list[tuple[float, int]]:
    """The profiled loop (py-spy's summary keeps the main thread's stacks through
    here); when each batch came, and the images up to it."""
    arrivals, images = [], 0
    for _ in range(epochs):
        for _, labels in loader:
            images += len(labels)
            arrivals.append((time.perf_counter(), images))
    return arrivals


def _timeline(arrivals: list[tuple[float, int]], t0: float) -> str:
    """First batch, the rate after it, and when 10% and 90% of the images had come."""
    (first, first_images), (last, images) = arrivals[0], arrivals[-1]
    at = {f: next(t for t, n in arrivals if n >= f * images) - t0 for f in (0.1, 0.9)}
    after = (images - first_images) / max(last - first, 1e-9)
    middle = 0.8 * images / max(at[0.9] - at[0.1], 1e-9)
    return (
        f"first batch {first - t0:.2f} s, then {after:,.0f} images/s; 10% at {at[0.1]:.2f} s, "
        f"90% at {at[0.9]:.2f} s, end {last - t0:.2f} s ({middle:,.0f} images/s from 10% to 90%)"
    )


def _own_cpu() -> float:
    """CPU seconds of this process alone (the workers are not in it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def with_cprofile(args: argparse.Namespace) -> None:
    profile = cProfile.Profile()
    run(args, profile)
    for key in ("tottime", "cumulative"):
        print(f"\nmain thread, cProfile, by {key}:")
        pstats.Stats(profile).sort_stats(key).print_stats(args.top)


def with_py_spy(args: argparse.Namespace, py_spy: str) -> int:
    """Re-run this script under ``py-spy record`` (main process, every thread, Python
    frames, never pausing it) and summarize the collapsed stacks per function."""
    with tempfile.TemporaryDirectory(prefix="sdprof-") as tmp:
        raw = Path(tmp) / "stacks.txt"
        cmd = [py_spy, "record", "--format", "raw", "--rate", str(RATE), "--threads"]
        cmd += ["--nonblocking", "-o", str(raw), "--", sys.executable, "-m", __spec__.name]
        cmd += ["--workers", str(args.workers), "--data", args.data, "--epochs", str(args.epochs)]
        cmd += ["--prefetch-factor", str(args.prefetch_factor)]
        cmd += ["--unordered"] if args.unordered else []
        rc = subprocess.run([*cmd, "--sampler", "none"], check=False).returncode
        if rc or not raw.exists():
            print(f"py-spy failed (exit {rc})", file=sys.stderr)
            return rc or 1
        print_stacks(raw.read_text(), args.top)
    return 0


def print_stacks(collapsed: str, top: int) -> None:
    """Top functions of py-spy's collapsed stacks ("thread;frame;...;frame count" lines):
    the main thread inside the loop (setup and imports left out), and every other
    thread of the main process (receive, pin or stats threads) by its own name."""
    groups: dict[str, tuple[Counter, Counter]] = {}
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if len(frames) < 2:
            continue
        name = frames[0].partition(": ")[2]
        if any(f.startswith("_drain ") for f in frames):
            name = "main thread, in the loop"
        elif name in ("", "MainThread", "streamdag-stats"):
            continue  # setup and imports, or the statistics' own sampler
        own, inclusive = groups.setdefault(name, (Counter(), Counter()))
        own[frames[-1]] += int(count)
        for frame in set(frames[1:]):
            inclusive[frame] += int(count)
    for name, (own, inclusive) in groups.items():
        total = sum(own.values())
        for title, counts in (("self", own), ("inclusive", inclusive)):
            print(f"\n{name}: {title} share of {total:,} busy samples ({total / RATE:.1f} s)")
            for frame, n in counts.most_common(top):
                print(f"{n / total:7.1%}  {frame}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    py_spy = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    sampler = args.sampler
    if sampler == "auto":
        sampler = "py-spy" if py_spy else "cprofile"
    if sampler == "py-spy":
        if not py_spy:
            raise SystemExit("py-spy is not installed: pip install py-spy, or --sampler cprofile")
        rc = with_py_spy(args, py_spy)
        if rc == 0 or args.sampler == "py-spy":
            return rc
        print("py-spy could not sample (ptrace refused?): cProfile instead", file=sys.stderr)
        sampler = "cprofile"
    if sampler == "cprofile":
        with_cprofile(args)
    else:  # "none": the run py-spy samples from outside
        run(args, None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

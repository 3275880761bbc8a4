"""``python -m benchmarks [--only W1,W2] [--reps 5] [--quick] [--contenders a,b]
[--workers 2,4,8,14] [--data full|large]``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import datetime
from importlib import metadata
from pathlib import Path

from benchmarks import data, harness, report
from benchmarks.workloads import WORKLOADS, build_inputs, expected, spec_for

VERSIONED = ("torch", "streamdag", "webdataset", "nvidia-dali-cuda120", "pillow", "numpy")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. W1,W2")
    p.add_argument("--contenders", default="", help="contender names to keep (default: all)")
    p.add_argument("--reps", type=int, default=5, help="repetitions per contender (>= 1)")
    p.add_argument("--quick", action="store_true", help="small data subset, for smoke tests")
    p.add_argument("--timeout", type=float, default=600, help="seconds per repetition")
    p.add_argument(
        "--workers",
        default="2",
        help="worker count(s) of every contender, e.g. 14 or 2,4,8,14 (a scaling table)",
    )
    p.add_argument(
        "--data", choices=("full", "large"), default="full", help="data set size (see README)"
    )
    args = p.parse_args(argv)
    try:
        args.workers = sorted({int(n) for n in args.workers.split(",") if n.strip()})
    except ValueError:
        p.error(f"--workers takes comma-separated integers, got {args.workers!r}")
    if not args.workers or args.workers[0] < 1:
        p.error("--workers needs at least one count, each >= 1")
    args.only = [n.strip().upper() for n in args.only.split(",") if n.strip()]
    args.contenders = {c.strip() for c in args.contenders.split(",") if c.strip()}
    unknown = [n for n in args.only if n not in WORKLOADS]
    if unknown:
        p.error(f"unknown workloads {unknown}; have {list(WORKLOADS)}")
    if args.reps < 1:
        p.error("--reps must be >= 1")
    return args


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=data.REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    t0 = time.monotonic()
    manifest = data.ensure(spec_for(args.quick, args.data))
    log(f"data ready in {manifest['root']} ({time.monotonic() - t0:.1f} s)")
    base = build_inputs(manifest, args.quick)

    workloads = []
    with tempfile.TemporaryDirectory(prefix="sdbench-") as tmp:
        for n in args.workers:  # a whole pass per count: ratios compare within one count
            inputs = replace(base, num_workers=n)
            inputs_path = Path(tmp) / f"inputs-{n}.json"
            inputs_path.write_text(json.dumps(asdict(inputs)))
            for name in args.only:
                w = WORKLOADS[name]
                chosen = [
                    c for c in w.contenders if not args.contenders or c.name in args.contenders
                ]
                if chosen and not (w.in_process and n != args.workers[0]):
                    exp = expected(w, manifest, inputs)
                    workloads.append(
                        harness.run_workload(
                            w, inputs, inputs_path, args.reps, exp, chosen, args.timeout, log
                        )
                    )
        pack = (
            harness.run_packing(inputs_path, args.reps, args.timeout, log)
            if "W6" in args.only
            else None
        )
    workloads.sort(key=lambda w: args.only.index(w["name"]))  # stable: counts stay in order
    harness.add_ratios(workloads)

    results = {
        "meta": {
            "stamp": datetime.now().strftime("%Y%m%d-%H%M%S"),
            "quick": args.quick,
            "reps": args.reps,
            "workers": args.workers,
            "data": manifest["spec"]["name"],
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "versions": {d: _version(d) for d in VERSIONED},
            "commit": _commit(),
            "data_root": manifest["root"],
            "wall_s": time.monotonic() - t0,
        },
        "workloads": workloads,
        "scaling": harness.scaling(workloads),
        "packing": pack,
    }
    json_path, md_path, text = report.write(results)
    print(text)
    log(f"wrote {json_path} and {md_path} ({time.monotonic() - t0:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

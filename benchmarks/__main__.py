"""``python -m benchmarks [--only W1,W2] [--reps 5] [--quick] [--contenders a,b]``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
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
    args = p.parse_args(argv)
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
    manifest = data.ensure(spec_for(args.quick))
    log(f"data ready in {manifest['root']} ({time.monotonic() - t0:.1f} s)")
    inputs = build_inputs(manifest, args.quick)

    workloads = []
    with tempfile.TemporaryDirectory(prefix="sdbench-") as tmp:
        inputs_path = Path(tmp) / "inputs.json"
        inputs_path.write_text(json.dumps(asdict(inputs)))
        for name in args.only:
            w = WORKLOADS[name]
            chosen = [c for c in w.contenders if not args.contenders or c.name in args.contenders]
            if chosen:
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
    harness.add_ratios(workloads)

    results = {
        "meta": {
            "stamp": datetime.now().strftime("%Y%m%d-%H%M%S"),
            "quick": args.quick,
            "reps": args.reps,
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "versions": {d: _version(d) for d in VERSIONED},
            "commit": _commit(),
            "data_root": manifest["root"],
            "wall_s": time.monotonic() - t0,
        },
        "workloads": workloads,
        "packing": pack,
    }
    json_path, md_path, text = report.write(results)
    print(text)
    log(f"wrote {json_path} and {md_path} ({time.monotonic() - t0:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

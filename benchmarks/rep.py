"""One timed repetition of one contender, run in a fresh process by the harness.

A fresh process per repetition keeps contenders from sharing warm imports,
allocator state or leftover workers, and gives each its own process tree to
measure. Usage: ``python -m benchmarks.rep WORKLOAD CONTENDER INPUTS.json RESULT.json``.
"""

from __future__ import annotations

import importlib
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from benchmarks.cpu import live_descendants_cpu, tree_cpu
from benchmarks.memory import own_peak_kb
from benchmarks.workloads import WORKLOADS, Contender, Inputs, Workload


def run_once(workload: Workload, contender: Contender, inputs: Inputs) -> dict:
    """Time ``workload.epochs`` epochs. Never raises: failures come back as a status.

    ImportError/AttributeError before the first batch mean the contender's
    library (or the part of its API it needs) is missing: "unavailable".
    """
    stage = {"now": "setup"}
    try:
        module = importlib.import_module(f"benchmarks.contenders.{contender.module}")
        factory = module.make(inputs)
        stage["now"] = "first batch"
        epochs = [_epoch(workload, factory, stage) for _ in range(workload.epochs)]
    except NotImplementedError as e:
        return {"status": "not yet implemented", "reason": str(e)}
    except (ImportError, AttributeError) as e:
        if stage["now"] in ("setup", "first batch"):
            return {"status": "unavailable", "reason": f"{type(e).__name__}: {e}"}
        return _error(stage["now"], e)
    except Exception as e:  # reported; the run goes on
        return _error(stage["now"], e)
    items, checksum = epochs[0]["items"], epochs[0]["checksum"]
    if any((e["items"], e["checksum"]) != (items, checksum) for e in epochs):
        return {"status": "error", "reason": "epochs yielded different items", "epochs": epochs}
    return {
        "status": "ok",
        "items": items,
        "checksum": checksum,
        "seconds": statistics.median(e["seconds"] for e in epochs),
        "ttfb": epochs[0]["ttfb"],
        "after_first": statistics.median(e["after_first"] for e in epochs),
        "cpu": statistics.median(e["cpu"] for e in epochs),
        "epochs": epochs,
        "main_hwm_kb": own_peak_kb(),
    }


def _epoch(workload: Workload, factory: Callable[[], Iterable], stage: dict) -> dict:
    """One timed epoch: from calling the factory to the end of the last batch,
    with the CPU seconds the process tree spent in it."""
    cpu0, t0 = tree_cpu(), time.perf_counter()
    batches = iter(factory())
    first = next(batches)
    ttfb = time.perf_counter() - t0
    stage["now"] = "first batch check"
    workload.check(first)
    stage["now"] = "epoch"
    items, checksum = workload.tally(first)
    first_items = items
    tally = workload.tally
    for batch in batches:
        n, c = tally(batch)
        items += n
        checksum += c
    seconds = time.perf_counter() - t0
    cpu = tree_cpu() - cpu0
    after_first = (items - first_items) / max(seconds - ttfb, 1e-9)
    return {
        "items": items,
        "checksum": checksum,
        "seconds": seconds,
        "ttfb": ttfb,
        "cpu": cpu,
        "after_first": after_first,
    }


def _error(stage: str, e: BaseException) -> dict:
    return {
        "status": "error",
        "reason": f"{stage}: {type(e).__name__}: {e}",
        "traceback": traceback.format_exc(),
    }


def main(argv: list[str]) -> None:
    workload_name, contender_name, inputs_path, result_path = argv
    workload = WORKLOADS[workload_name]
    contender = next(c for c in workload.contenders if c.name == contender_name)
    inputs = Inputs(**json.loads(Path(inputs_path).read_text()))
    result = run_once(workload, contender, inputs)
    # what the harness cannot reap: daemons this repetition started (a local Ray
    # instance and its actors), killed with its process group after it exits
    result["unreaped_cpu"] = live_descendants_cpu()
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])

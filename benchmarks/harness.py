"""Runs every (workload, contender) repetition in a fresh process and aggregates.

Repetitions are interleaved (rep 1 of every contender, then rep 2, ...) so a
slow drift of the machine spreads over all contenders instead of biasing one.
Before a workload's first repetition its files are read once, so every
contender starts from the same warm page cache. Figures are medians over the
repetitions; ratios divide medians taken in this same run.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.cpu import own_and_reaped_cpu
from benchmarks.data import REPO_ROOT
from benchmarks.memory import INTERVAL, POLL_SHARE, tree_kb
from benchmarks.workloads import Contender, Inputs, Workload, data_paths

Log = Callable[[str], None]
FINAL = ("unavailable", "not yet implemented", "error")  # statuses not worth repeating


def warm_page_cache(paths: list[str]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def run_rep(workload: Workload, contender: Contender, inputs_path: Path, timeout: float) -> dict:
    """Run one repetition in a child process while polling its process tree's memory."""
    with tempfile.TemporaryDirectory(prefix="sdbench-") as tmp:
        result_path, log_path = Path(tmp) / "result.json", Path(tmp) / "log.txt"
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.rep",
            workload.name,
            contender.name,
            str(inputs_path),
            str(result_path),
        ]
        peak_pss = peak_rss = 0
        timed_out = False
        cpu0, wall0 = _cpu_counters(), time.monotonic()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            deadline = time.monotonic() + timeout
            while True:
                polled = time.perf_counter()
                pss, rss = tree_kb(proc.pid)
                cost = time.perf_counter() - polled
                peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
                try:
                    proc.wait(max(INTERVAL, cost / POLL_SHARE))
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        timed_out = True
                        break
            _kill_group(proc)  # the child's own session: strays such as orphaned workers
        busy, ours = (b - a for a, b in zip(cpu0, _cpu_counters(), strict=True))
        wall = time.monotonic() - wall0
        log_tail = log_path.read_text(errors="replace")[-3000:]
        if timed_out:
            result = {"status": "error", "reason": f"timed out after {timeout:.0f} s"}
        elif result_path.exists():
            result = json.loads(result_path.read_text())
        else:
            result = {"status": "error", "reason": f"child exited with code {proc.returncode}"}
    ours += result.pop("unreaped_cpu", 0.0)
    others_load = max(0.0, busy - ours) / wall
    result["peak_pss_kb"], result["peak_rss_kb"] = peak_pss, peak_rss
    result["others_load"] = others_load
    if result["status"] == "ok":
        result["peak_mem_kb"] = max(peak_pss, result["main_hwm_kb"])
    else:
        result["log_tail"] = log_tail
    return result


def _cpu_counters() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process and its
    reaped children). Over a repetition their difference is the CPU taken by processes
    outside the benchmark: the machine's background load."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, f.readline().split()[1:9]
        )
    machine = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    return machine, own_and_reaped_cpu()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_workload(
    workload: Workload,
    inputs: Inputs,
    inputs_path: Path,
    reps: int,
    expected: tuple[int, int | None],
    contenders: list[Contender],
    timeout: float,
    log: Log,
) -> dict:
    """Every repetition of every chosen contender of one workload, summarized."""
    warm_page_cache(data_paths(workload, inputs))
    runs: dict[str, list[dict]] = {c.name: [] for c in contenders}
    for rep in range(reps):
        for c in contenders:
            done = runs[c.name]
            if done and done[-1]["status"] in FINAL:
                continue
            r = run_rep(workload, c, inputs_path, timeout)
            done.append(r)
            line = _one_line(r, _scale(c, inputs), workload)
            where = "" if workload.in_process else f" ({inputs.num_workers} workers)"
            log(f"{workload.name}{where} rep {rep + 1}/{reps} {c.name}: {line}")
    rows = [summarize(c, runs[c.name], expected, _scale(c, inputs)) for c in contenders]
    return {
        "name": workload.name,
        "workers": None if workload.in_process else inputs.num_workers,
        "title": workload.title,
        "unit": workload.unit,
        "reference": workload.reference,
        "expected": expected,
        "contenders": rows,
    }


def _scale(c: Contender, inputs: Inputs) -> int:
    """Throughput multiplier: a one-core floor counts as ideal use of every worker."""
    return inputs.num_workers if c.per_worker else 1


def _one_line(r: dict, scale: int, w: Workload) -> str:
    if r["status"] != "ok":
        return f"{r['status']}: {r.get('reason', '')}"
    rate = r["items"] / r["seconds"] * scale
    scaled = f" (x{scale})" if scale > 1 else ""
    return (
        f"{rate:,.0f} {w.unit}/s{scaled}, first batch {r['ttfb']:.3f} s, "
        f"after it {r['after_first'] * scale:,.0f}/s, "
        f"CPU {r['cpu']:.2f} s ({r['cpu'] / r['seconds']:.2f} cores), "
        f"peak {r['peak_mem_kb'] / 1024:.0f} MB, others' load {r['others_load']:.2f} cores"
    )


def summarize(
    c: Contender, reps: list[dict], expected: tuple[int, int | None], scale: int = 1
) -> dict:
    row: dict = {"name": c.name, "role": c.role, "scale": scale, "reps": reps}
    ok = [r for r in reps if r["status"] == "ok"]
    if not ok:
        row.update(status=reps[0]["status"], reason=reps[0].get("reason", ""))
        return row
    items, checksum = expected
    wrong = [
        r for r in ok if r["items"] != items or (checksum is not None and r["checksum"] != checksum)
    ]
    failed = [r for r in reps if r["status"] != "ok"]
    if wrong:
        got = f"{wrong[0]['items']} items / checksum {wrong[0]['checksum']}"
        row.update(status="wrong result", reason=f"{got}, expected {items} / {checksum}")
    elif failed:
        first = f"{failed[0]['status']}: {failed[0].get('reason', '')}"
        row.update(status="partial", reason=f"{len(ok)} of {len(reps)} reps ok; {first}")
    else:
        row.update(status="ok", reason="")
    rates = [r["items"] / r["seconds"] * scale for r in ok]
    median = statistics.median(rates)
    row.update(
        ok_reps=len(ok),
        throughput=median,
        spread=(max(rates) - min(rates)) / median,
        ttfb=statistics.median(r["ttfb"] for r in ok),
        after_first=statistics.median(r["after_first"] * scale for r in ok),
        cpu_per_item=statistics.median(r["cpu"] / r["items"] for r in ok),
        cores=statistics.median(r["cpu"] / r["seconds"] for r in ok),
        peak_mem_mb=statistics.median(r["peak_mem_kb"] for r in ok) / 1024,
        others_load=statistics.median(r["others_load"] for r in ok),
        peak_rss_mb=statistics.median(r["peak_rss_kb"] for r in ok) / 1024,
    )
    return row


def add_ratios(workloads: list[dict]) -> None:
    """Ratio of each row to its workload's reference, and of each streamdag row to every
    floor/anchor of its workload at the same worker count; references may name another
    workload ("W2/streamdag")."""
    by_key = {_key(w["name"], w, r["name"]): r for w in workloads for r in w["contenders"]}
    for w in workloads:
        ref_name, _, ref_row = w["reference"].rpartition("/")
        ref = by_key.get(_key(ref_name or w["name"], w, ref_row), {}).get("throughput")
        for row in w["contenders"]:
            if "throughput" in row and ref:
                row["ratio"] = row["throughput"] / ref
            if row["role"] == "streamdag" and "throughput" in row:
                row["vs"] = {
                    o["name"]: row["throughput"] / o["throughput"]
                    for o in w["contenders"]
                    if o["role"] != "streamdag" and "throughput" in o
                }


def _key(name: str, w: dict, contender: str) -> str:
    return f"{name}@{w['workers']}/{contender}"


def scaling(workloads: list[dict]) -> list[dict]:
    """Per workload run at several worker counts: each contender's throughput per count and
    its scaling efficiency, throughput at N / throughput at the smallest count B / (N / B)
    (1.0 = linear; the issue's target is >= 0.85 from 2 to 14 workers). The same for the
    rate after the first batch, which leaves out start-up: at many workers an epoch is
    short, and starting the workers weighs more in it."""
    tables: dict[str, dict] = {}
    for w in workloads:
        if w["workers"] is None:
            continue
        t = tables.setdefault(w["name"], {"name": w["name"], "unit": w["unit"], "rows": {}})
        for r in w["contenders"]:
            rates = (r.get("throughput"), r.get("after_first"))
            t["rows"].setdefault(r["name"], {})[w["workers"]] = rates
    out = []
    for t in tables.values():
        counts = sorted({n for per in t["rows"].values() for n in per})
        if len(counts) < 2:
            continue
        base = counts[0]
        t["workers"] = counts
        for name, per in t["rows"].items():
            none = (None, None)
            epoch = {n: per.get(n, none)[0] for n in counts}
            steady = {n: per.get(n, none)[1] for n in counts}
            t["rows"][name] = {
                n: {
                    "throughput": epoch[n],
                    "efficiency": _efficiency(epoch, n, base),
                    "after_first": steady[n],
                    "after_first_efficiency": _efficiency(steady, n, base),
                }
                for n in counts
            }
        out.append(t)
    return out


def _efficiency(rates: dict[int, float | None], n: int, base: int) -> float | None:
    if not rates[n] or not rates[base]:
        return None
    return rates[n] / rates[base] / (n / base)


def run_packing(inputs_path: Path, reps: int, timeout: float, log: Log) -> dict:
    """W6's pack figures (``benchmarks/packing.py``) from a fresh process; at
    most 3 repetitions (their medians), each a few seconds."""
    cmd = [sys.executable, "-m", "benchmarks.packing", str(inputs_path), str(min(reps, 3))]
    try:
        out = subprocess.run(
            cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=True
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        tail = (e.stderr or "")[-3000:] if isinstance(e.stderr, str) else ""
        log(f"W6 pack figures failed: {e}")
        return {"status": "error", "reason": str(e), "log_tail": tail}
    result = json.loads(out.stdout)
    for b in result["bfd"]:
        log(
            f"W6 pack bfd, {b['docs']:,} {b['input']}: {b['seconds']:.2f} s "
            f"(CPU {b['cpu_s']:.2f} s), padding efficiency {b['efficiency']:.2%}"
        )
    c = result["concat"]
    log(f"W6 pack concat: +{c['overhead']:.1%} over tokenize's CPU")
    return {"status": "ok", **result}

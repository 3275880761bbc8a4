"""The benchmarks' scaling options: ``--workers`` lists and their scaling table,
and W7's training script in its CPU smoke mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import harness, rep, report
from benchmarks.__main__ import parse_args

REPO = Path(__file__).resolve().parent.parent


def _workload(name: str, workers: int | None, rates: dict[str, float]) -> dict:
    """Rows whose rate after the first batch is the epoch's x1.25 (no start-up in it)."""
    rows = [
        {"name": c, "role": "anchor", "scale": 1, "throughput": r, "status": "ok"}
        | {"after_first": r * 1.25}
        for c, r in rates.items()
    ]
    return {"name": name, "workers": workers, "unit": "images", "contenders": rows}


def test_workers_option_takes_a_sorted_list_of_counts() -> None:
    assert parse_args(["--workers", "14,2,8,4"]).workers == [2, 4, 8, 14]
    assert parse_args([]).workers == [2]
    with pytest.raises(SystemExit):
        parse_args(["--workers", "two"])
    with pytest.raises(SystemExit):
        parse_args(["--workers", "0"])


def test_scaling_efficiency_is_throughput_per_worker_relative_to_the_smallest_count() -> None:
    workloads = [
        _workload("W1", None, {"generators": 1e6}),  # in process: no scaling row
        _workload("W2", 2, {"streamdag": 1000.0, "webdataset": 800.0}),
        _workload("W2", 14, {"streamdag": 6300.0}),  # webdataset failed at 14
    ]
    (table,) = harness.scaling(workloads)
    assert table["name"] == "W2" and table["workers"] == [2, 14]
    assert table["rows"]["streamdag"][14]["efficiency"] == pytest.approx(0.9)
    assert table["rows"]["streamdag"][2]["efficiency"] == pytest.approx(1.0)
    assert table["rows"]["streamdag"][14]["after_first"] == pytest.approx(7875.0)
    assert table["rows"]["streamdag"][14]["after_first_efficiency"] == pytest.approx(0.9)
    assert table["rows"]["webdataset"][14] == {
        "throughput": None,
        "efficiency": None,
        "after_first": None,
        "after_first_efficiency": None,
    }
    lines = report._scaling(table)
    assert "| contender | 2 workers | 14 workers |" in lines
    assert "| streamdag | 1k (1.00); 1.25k (1.00) | 6.3k (0.90); 7.88k (0.90) |" in lines
    assert "| webdataset | 800 (1.00); 1k (1.00) | - |" in lines


def test_rate_after_the_first_batch_leaves_start_up_out() -> None:
    class Counting:
        name = "W2"

        def check(self, batch: list[int]) -> None:
            assert batch

        def tally(self, batch: list[int]) -> tuple[int, int]:
            return len(batch), sum(batch)

    def epoch():
        time.sleep(0.2)  # start-up: only the first batch waits for it
        yield from ([1] * 10 for _ in range(5))

    stage = {"now": ""}
    e = rep._epoch(Counting(), epoch, stage)
    assert (e["items"], e["checksum"]) == (50, 50)
    assert e["ttfb"] >= 0.2
    assert e["after_first"] > 40 / max(e["seconds"] - 0.2, 1e-9) * 0.99


def test_ratios_compare_rows_of_the_same_worker_count() -> None:
    workloads = [_workload("W2", n, {"streamdag": 100.0 * n}) for n in (2, 4)]
    workloads += [_workload("W3", n, {"streamdag-s3": 50.0 * n}) for n in (2, 4)]
    for w in workloads:
        w["reference"] = "W2/streamdag" if w["name"] == "W3" else "streamdag"
    harness.add_ratios(workloads)
    assert [w["contenders"][0]["ratio"] for w in workloads] == [1.0, 1.0, 0.5, 0.5]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_w7_train_smoke_mode_runs_each_feed_on_the_cpu() -> None:
    cmd = [sys.executable, "-m", "benchmarks.w7_train", "--device", "cpu", "--model", "tiny"]
    # the smallest data and batches: the test checks that each feed runs, not its speed
    cmd += ["--data", "smoke", "--batch", "8", "--steps", "3", "--warmup", "1", "--workers", "2"]
    done = subprocess.run(
        cmd,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if "|" in line}
    assert rows["webdataset"].endswith("| ok |"), done.stdout
    assert rows["streamdag"].endswith("| ok |"), done.stdout
    assert "skipped: needs CUDA" in rows["streamdag-dali"], done.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_host_floor_prints_a_row_per_process_count() -> None:
    cmd = [sys.executable, "-m", "benchmarks.host_floor", "--workers", "2,1", "--data", "smoke"]
    cmd += ["--per-worker", "8", "--reps", "1"]
    out = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=280, check=True
    ).stdout
    assert out.startswith("8 images per process, 1 runs,"), out
    rows = [
        line.split(" | ")
        for line in out.splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    assert [r[0] for r in rows] == ["| processes", "| 1", "| 2"], out
    assert rows[1][3] == "1.00", out  # the smallest count is the reference
    assert all(float(r[1].replace(",", "")) > 0 for r in rows[1:]), out


def test_profile_timeline_splits_start_up_from_the_steady_rate() -> None:
    from benchmarks.profile_main import _timeline

    # first batch at 0.5 s, then one batch of 64 every 0.1 s: 640 images/s
    arrivals = [(10.5 + 0.1 * i, 64 * (i + 1)) for i in range(10)]
    assert _timeline(arrivals, 10.0) == (
        "first batch 0.50 s, then 640 images/s; 10% at 0.50 s, 90% at 1.30 s, "
        "end 1.40 s (640 images/s from 10% to 90%)"
    )


def test_children_user_and_system_cpu_counts_a_live_child() -> None:
    """As the harness counts a local Ray instance's daemons, which the
    repetition leaves for its process group to be killed with."""
    from benchmarks.cpu import children_user_system, live_descendants_cpu

    spin = "import os, time\nwhile os.times().user < 0.3: pass\nprint('done', flush=True)\n"
    spin += "time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "done\n"
        user, system = children_user_system()
        assert user >= 0.3, (user, system)  # its spin, in user space
        assert live_descendants_cpu() >= user
    finally:
        child.kill()
        child.wait()


def test_lockstep_runs_every_contender_over_every_batch() -> None:
    cmd = [sys.executable, "-W", "ignore", "-m", "benchmarks.lockstep", "--workers", "2"]
    cmd += ["--jitter", "0.2", "--batch-ms", "5", "--batches", "4", "--reps", "1"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    row = done.stdout.splitlines()[-1].strip("| ").split(" | ")
    assert row[:2] == ["2", "0.2"] and len(row) == 6
    assert all(0 < float(cell) <= 1.5 for cell in row[2:]), row

"""benchmarks.ray_scaling on a tiny data set: it generates its shards, runs
W2 under Ray and worker processes and prints one row per service and count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_ray_scaling_prints_images_per_second_for_each_service_and_count(tmp_path):
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "benchmarks.ray_scaling", "--actors", "1", "--data", "tiny"]
    out = subprocess.run(
        [*cmd, "--data-dir", str(tmp_path)], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    assert "W2, 128 images, 2 epochs per loader, 1 repetitions" in out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith(("| ray", "| proc"))]
    assert [(r[0], r[1]) for r in rows] == [
        ("| processes", "1"),
        ("| ray", "1"),
    ]
    assert all(float(r[3].replace(",", "")) > 0 for r in rows)  # epoch 1 images/s
    assert len(list(tmp_path.glob("images/shards/*.tar"))) == 4

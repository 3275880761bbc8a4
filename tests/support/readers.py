"""Helpers for the reader and decoder tests: real files written on the
spot, and a run that returns each node's statistics."""

from __future__ import annotations

import io
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

import streamdag as sd
from streamdag.datapipes import RuntimeGraph


def run_with_stats(dp: sd.DataPipe) -> tuple[list, dict[str, dict[str, int]]]:
    """One epoch in process; the stats of every node that has them, by op."""
    graph = RuntimeGraph(dp.node)
    graph.start_epoch(0, 0)
    try:
        out = list(graph.iterate())
    finally:
        graph.close()
    stats = {n.spec.op: n.stats() for n in graph.nodes.values() if hasattr(n, "stats")}
    return out, stats


def count_with_peak_memory(dp: sd.DataPipe) -> tuple[int, int]:
    """Elements yielded and the peak traced Python memory while iterating."""
    tracemalloc.start()
    try:
        count = sum(1 for _ in dp)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


def write_tar(path: Path, members: list[tuple[str, bytes]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def jpeg_bytes(
    width: int = 64, height: int = 48, seed: int = 0, fmt: str = "JPEG", mode: str = "RGB"
) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 255, (height, width, channels), dtype=np.uint8)
    img = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def samples_tar(path: Path, count: int, start: int = 0) -> Path:
    """A webdataset shard: NNNNNN.txt + NNNNNN.cls per sample."""
    members = []
    for i in range(start, start + count):
        members.append((f"{i:06d}.txt", f"text {i}".encode()))
        members.append((f"{i:06d}.cls", str(i % 10).encode()))
    return write_tar(path, members)


def field(value: Any) -> Any:
    """Samples compared across runs: arrays as lists."""
    return value.tolist() if hasattr(value, "tolist") else value

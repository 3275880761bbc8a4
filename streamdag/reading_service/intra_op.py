"""One torch intra-op thread in each worker, process or thread.

The workers already keep every core busy; torch's OpenMP pool in each of them
(two threads per op on a 2-core machine) spins and fights them: ``torch.stack``
of a 64-image batch took 4-36 ms instead of 1 ms. torch's DataLoader sets one
thread in its worker processes; the count is per OS thread (OpenMP's
``nthreads-var``), so a worker thread can set it without touching the training
loop's thread."""

from __future__ import annotations

import sys

from ..core.node import Node
from ..runtime.graph import RuntimeGraph
from ..runtime.node import WorkerContext


def one_torch_thread() -> bool:
    """Cap the calling thread at one torch thread; False while torch is not imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return True


def build_one_thread(spec: Node, lane: WorkerContext) -> RuntimeGraph:
    """A worker process's graph of one virtual worker, capped at one torch
    thread before and after (building it, or an init fn, may import torch)."""
    one_torch_thread()
    graph = RuntimeGraph(spec, lane)
    one_torch_thread()
    return graph

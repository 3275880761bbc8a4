"""W5 streamdag, threads: ``w5_streamdag``'s graph with its reading and grouping in 2
worker threads (docs/reading-services.md recommends them for image pipelines) instead
of 2 worker processes; ``decode_images`` runs in the main process either way."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.contenders.w5_streamdag import make as make_with
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    return make_with(inputs, threads=True)

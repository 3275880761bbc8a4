"""W5 anchor: a standalone DALI pipeline decoding on the GPU (device "mixed").

Not wired into the timed runs yet: it needs the device machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    raise NotImplementedError("W5 runs on the device machine only; not wired into the harness yet")

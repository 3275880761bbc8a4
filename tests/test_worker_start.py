"""Forked workers start from what the main process imported for them: the
runtime modules of the graph and numpy.random (which a worker seeds), not
imported again by every worker at every fork."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_SCRIPT = """
import json, sys
import numpy
import streamdag as sd

wanted = ["streamdag.transforms.shuffle", "streamdag.transforms.batch", "numpy.random"]
before = [m for m in wanted if m in sys.modules]
pipe = sd.IterableWrapper(range(20)).shuffle().sharding_filter().batch(2)
loader = sd.DataLoader2(pipe, sd.MultiProcessingReadingService(2), seed=3)
first = next(iter(loader))
after = [m for m in wanted if m in sys.modules]
loader.shutdown()
print(json.dumps({"before": before, "after": after, "first": first}))
"""


@pytest.mark.timeout(120)
def test_the_main_process_imports_what_forked_workers_need_before_forking() -> None:
    """After a fork loader starts, the main process holds the runtime modules
    of the worker part and numpy.random, which it never used itself."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["before"] == []
    assert seen["after"] == [
        "streamdag.transforms.shuffle",
        "streamdag.transforms.batch",
        "numpy.random",
    ]
    assert len(seen["first"]) == 2

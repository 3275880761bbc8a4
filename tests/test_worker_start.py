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


def test_seeding_the_global_rngs_gives_torch_the_stream_of_torch_manual_seed() -> None:
    """The cheaper seeding of torch's CPU generator draws what torch.manual_seed gives."""
    torch = pytest.importorskip("torch")
    from streamdag.core.seeds import seed_global_rngs

    for seed in (0, 7, (1 << 63) - 1):
        seed_global_rngs(seed)
        ours = torch.rand(4)
        torch.manual_seed(seed)
        assert torch.equal(ours, torch.rand(4))


@pytest.mark.timeout(120)
def test_listing_local_files_does_not_import_fsspec(tmp_path) -> None:
    """fsspec (0.1-0.4 s to import, in every worker) is imported for URLs only."""
    (tmp_path / "a.tar").write_bytes(b"")
    script = (
        "import sys, streamdag as sd\n"
        f"print(list(sd.FileLister({str(tmp_path)!r}, masks='*.tar')), 'fsspec' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"['{tmp_path / 'a.tar'}']", "False"]

"""examples/pretrain_tokens.py runs end to end on the data it writes: three
sources mixed, tokenized, packed, read by 2 worker processes, resumed
exactly in a new process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pretrain_tokens.py"

for _module in ("tokenizers", "pyarrow", "zstandard", "torch"):
    pytest.importorskip(_module)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pretrain_tokens_resumes_exactly_in_a_new_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed in a new process" in done.stdout
    assert "OK: resumed exactly: 3 batches (12288 tokens)" in done.stdout

"""examples/train_ddp_gpu.py's CPU path under torchrun (2 gloo ranks on
127.0.0.1, 2 worker processes each, Pillow decoding in the workers, the tiny
model): one rank killed mid-run and the job resumed from the last
checkpoints. The same loop runs NCCL and DALI on GPUs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.test_examples_ddp import finish, no_process_left, steps, torchrun

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_ddp_gpu.py"
# 4 shards of 16 over 2 ranks x 2 workers, batches of 8: 4 steps per epoch
# and rank, 12 in all; checkpoints at 5 and 10; rank 1 dies at step 10 before
# saving it, so the resume starts after step 5 (in epoch 1). A rank logs a
# step once the next one is done, or as it fails: the killed job logged steps
# 1 to 8 on rank 1 (9 on rank 0, whose step 10 failed).
ARGS = (
    *("--device", "cpu", "--decode", "cpu", "--model", "tiny", "--workers", "2"),
    *("--shards", "4", "--per-shard", "16", "--size", "40", "--crop", "32"),
    *("--batch-size", "8", "--epochs", "3", "--ckpt-every", "5"),
)
KILL_AT, LAST_CHECKPOINT, LOGGED, STEPS = 10, 5, 8, 12


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A job killed at step ``KILL_AT``, then its resume."""
    tmp = tmp_path_factory.mktemp("ddp-gpu")
    kill = ("--kill-at", str(KILL_AT))
    [(code, out)] = finish(
        tmp, ("killed", torchrun(tmp, "shards", "run", "killed", *kill, example=EXAMPLE, args=ARGS))
    )
    assert code != 0, out
    assert no_process_left(tmp), "a rank or a worker outlived the killed job"
    [(code, out)] = finish(
        tmp,
        (
            "resumed",
            torchrun(tmp, "shards", "run", "resumed", "--resume", example=EXAMPLE, args=ARGS),
        ),
    )
    assert code == 0, out
    assert "images/s in all" in out  # rank 0's table of the ranks' figures
    return tmp


def test_the_resumed_run_repeats_the_steps_after_the_checkpoint_exactly(runs: Path) -> None:
    """The steps the killed job trained after its last checkpoint are
    trained again on resume: the same keys in order and the same losses
    (model, optimizer and loader restored), then the run goes on to the end."""
    for rank in (0, 1):
        before = steps(runs / "logs" / "killed", rank)
        after = steps(runs / "logs" / "resumed", rank)
        assert [s["step"] for s in before] == list(range(1, len(before) + 1))
        assert len(before) >= LOGGED
        assert [s["step"] for s in after] == list(range(LAST_CHECKPOINT + 1, STEPS + 1))
        assert after[: len(before) - LAST_CHECKPOINT] == before[LAST_CHECKPOINT:]


def test_each_epoch_covers_every_sample_once_across_ranks_in_equal_batch_counts(
    runs: Path,
) -> None:
    samples = {f"{s:04d}_{i:05d}" for s in range(4) for i in range(16)}
    by_rank = [
        steps(runs / "logs" / "killed", r)[:LAST_CHECKPOINT] + steps(runs / "logs" / "resumed", r)
        for r in (0, 1)
    ]
    for epoch in (0, 1, 2):
        keys = [k for rank in by_rank for s in rank if s["epoch"] == epoch for k in s["keys"]]
        assert len(keys) == len(samples) and set(keys) == samples
    counts = [Counter(s["epoch"] for s in rank) for rank in by_rank]
    assert counts[0] == counts[1] == {0: 4, 1: 4, 2: 4}
    summaries = [
        json.loads((runs / "logs" / "resumed" / f"rank{r}.summary.json").read_text())
        for r in (0, 1)
    ]
    assert [s["batches_per_epoch"] for s in summaries] == [{"1": 3, "2": 4}] * 2

"""examples/train_ddp.py under torchrun (2 gloo ranks on 127.0.0.1, 2
worker processes each): a run killed at a step and resumed from its last
checkpoints trains on exactly the batches, in the same order and with the
same losses, as an uninterrupted run; also when the kill tore the last
checkpoint (one rank saved it, the other did not)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_ddp.py"
# 4 shards of 32 samples over 2 ranks x 2 workers, batches of 8: 8 steps per
# epoch and rank, 16 in all; checkpoints at 3, 6, 9, 12, 15; rank 1 dies at
# step 11 (in epoch 1), so the resume starts after step 9
ARGS = ["--shards", "4", "--per-shard", "32", "--batch-size", "8", "--epochs", "2"]
CKPT_EVERY, CRASH_AT, STEPS = 3, 11, 16
JOB_TIMEOUT_S = 200
RESUMES = (("killed", "resumed"), ("torn", "torn"))  # (checkpoints, steps log)


def torchrun(
    tmp: Path,
    data: str,
    ckpt: str,
    log: str,
    *extra: str,
    example: Path = EXAMPLE,
    args: Sequence[str] = (*ARGS, "--ckpt-every", str(CKPT_EVERY)),
) -> subprocess.Popen[bytes]:
    """Start one torchrun job of ``example`` (2 ranks on a free port); ``finish`` waits for it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        str(example),
        *args,
        *("--data", str(tmp / data), "--ckpt", str(tmp / "ckpt" / ckpt)),
        *("--steps-log", str(tmp / "logs" / log)),
        *extra,
    ]
    root = str(EXAMPLE.parent.parent)
    env = {
        **os.environ,
        "PYTHONFAULTHANDLER": "1",
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }
    with open(tmp / f"{log}.out", "w") as output:  # a file, not a pipe: jobs run side by side
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)


def finish(tmp: Path, *jobs: tuple[str, subprocess.Popen[bytes]]) -> list[tuple[int, str]]:
    """Wait for ``(log, job)`` pairs that run side by side: exit code and output tail."""
    done = []
    for log, job in jobs:
        try:
            job.wait(timeout=JOB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            hung(tmp, log, job)
        done.append((job.returncode, (tmp / f"{log}.out").read_text()[-3000:]))
    return done


def hung(tmp: Path, log: str, job: subprocess.Popen[bytes]) -> None:
    """Fail with where every process of a job that did not finish stood:
    SIGABRT makes faulthandler (on in every process the job starts) print
    each thread's Python stack into the job's output before it dies."""
    for pid in processes_of(tmp):  # one at a time: their stacks do not interleave
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGABRT)
        time.sleep(0.5)
    job.kill()
    job.wait()
    for pid in processes_of(tmp):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stacks = (tmp / f"{log}.out").read_text()[-20000:]
    pytest.fail(f"job {log!r} did not finish in {JOB_TIMEOUT_S} s; its output:\n{stacks}")


def steps(logs: Path, rank: int) -> list[dict]:
    lines = (logs / f"rank{rank}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def processes_of(tmp: Path) -> list[int]:
    """Live processes started with ``tmp`` on their command line (ranks and
    their forked workers)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(tmp) in cmdline and state != "Z":
            found.append(int(entry))
    return found


def no_process_left(tmp: Path) -> bool:
    """True once no rank or worker of ``tmp``'s jobs is alive; else False,
    after printing each one left with its state and parent (pytest shows
    them with the failure)."""
    deadline = time.monotonic() + 30  # orphaned workers notice their rank is gone
    while processes_of(tmp) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = processes_of(tmp)
    for pid in left:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text().splitlines()[:8]
            print(f"left: pid {pid}", *status, sep="\n  ")
    return not left


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four jobs, two at a time: the uninterrupted run beside the killed
    one (each makes the same deterministic shards in its own data folder),
    then the two resumes of the killed run."""
    tmp = tmp_path_factory.mktemp("ddp")
    (full, full_out), (crashed, _) = finish(
        tmp,
        ("full", torchrun(tmp, "shards-full", "full", "full")),
        ("killed", torchrun(tmp, "shards", "killed", "killed", "--crash-at", str(CRASH_AT))),
    )
    assert full == 0, full_out
    assert crashed != 0
    assert no_process_left(tmp), "a rank or a worker outlived the killed job"
    torn_while_saving(tmp / "ckpt" / "killed", tmp / "ckpt" / "torn")
    resumes = [(log, torchrun(tmp, "shards", ckpt, log, "--resume")) for ckpt, log in RESUMES]
    for code, out in finish(tmp, *resumes):
        assert code == 0, out
    assert no_process_left(tmp)
    return tmp


def torn_while_saving(killed: Path, torn: Path) -> None:
    """The checkpoints of a job killed while rank 0 saved its last one:
    rank 0 had moved its step-6 file aside and not yet renamed its
    half-written step 9 into place; rank 1 holds steps 9 and 6."""
    shutil.copytree(killed, torn)
    (torn / "rank0.pt").replace(torn / "rank0.pt.tmp")
    (torn / "rank0.pt.tmp").write_bytes((torn / "rank0.pt.tmp").read_bytes()[:100])


@pytest.mark.parametrize(
    ("resumed", "last_checkpoint"),
    [("resumed", CRASH_AT - 1 - (CRASH_AT - 1) % CKPT_EVERY), ("torn", 6)],
    ids=["killed", "killed-while-saving"],
)
def test_a_killed_and_resumed_run_trains_on_the_uninterrupted_runs_batches(
    runs: Path, resumed: str, last_checkpoint: int
) -> None:
    """Per rank: the steps up to the newest checkpoint every rank holds,
    then the resumed run's, are the uninterrupted run's: keys in order,
    epochs, and losses (so the model and optimizer were restored too)."""
    for rank in (0, 1):
        full = steps(runs / "logs" / "full", rank)
        before = steps(runs / "logs" / "killed", rank)
        after = steps(runs / "logs" / resumed, rank)
        assert [s["step"] for s in full] == list(range(1, STEPS + 1))
        assert [s["step"] for s in before][:last_checkpoint] == list(range(1, last_checkpoint + 1))
        assert [s["step"] for s in after] == list(range(last_checkpoint + 1, STEPS + 1))
        assert before[:last_checkpoint] + after == full


def test_each_epoch_covers_every_sample_once_across_ranks(runs: Path) -> None:
    """The ranks' shards split each epoch exactly; the next epoch reshuffles."""
    samples = {f"{s:04d}_{i:05d}" for s in range(4) for i in range(32)}
    by_rank = [steps(runs / "logs" / "full", rank) for rank in (0, 1)]
    for epoch in (0, 1):
        keys = [k for rank in by_rank for s in rank if s["epoch"] == epoch for k in s["keys"]]
        assert len(keys) == len(samples) and set(keys) == samples
    orders = [[k for s in by_rank[0] if s["epoch"] == e for k in s["keys"]] for e in (0, 1)]
    assert orders[0] != orders[1]  # a new shuffle each epoch

"""Elastic resume across ranks (gloo on 127.0.0.1): every rank stops at a
random point of an epoch under (R ranks, W workers) and saves its own
state; under (R', W') every rank loads the list of all old ranks' states.
What was yielded before the stop and after the resume is exactly one epoch,
and each virtual worker's stream is the uninterrupted one.

Three launches of ranks (starting them costs seconds): 2 ranks save; 1
rank resumes their states and saves its own; 2 ranks resume those. Each
rank writes what it saw; the assertions run here."""

from __future__ import annotations

import json
import random
import socket
import warnings
from itertools import islice
from pathlib import Path

import pytest

import streamdag as sd
from streamdag.errors import ResumeError
from streamdag.testing.loaders import plain
from tests.test_elastic_resume import (
    SAMPLES_PER_TAR,
    TAR_SHARDS,
    jsonl_branch,
    reader_branch,
    tar_branch,
    write_data,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MT, MP = sd.MultiThreadingReadingService, sd.MultiProcessingReadingService
SEED = 11
# every (W, W') in 1-3 for 2 -> 1, 1 -> 2 and 2 -> 2 ranks, over two graphs
SCENARIOS = (
    [
        {"id": f"{graph}-R{r}W{w}-R{r2}W{w2}", "graph": graph, "R": r, "W": w, "R2": r2, "W2": w2}
        for i, (r, r2, w, w2, graph) in enumerate(
            (r, r2, w, w2, ("tar", "mux")[(w + w2 + r) % 2])
            for r, r2 in ((2, 1), (1, 2), (2, 2))
            for w in (1, 2, 3)
            for w2 in (1, 2, 3)
        )
    ]
    + [
        # worker processes: the virtual workers' contexts travel to other processes
        {"id": "mux-R2W2-R1W3-processes", "graph": "mux", "R": 2, "W": 2, "R2": 1, "W2": 3},
        {"id": "tar-R1W3-R2W1-processes", "graph": "tar", "R": 1, "W": 3, "R2": 2, "W2": 1},
    ]
    + [  # states taken with elements in flight (a Lightning DDP checkpoint has 1)
        {"id": f"{g}-R{r}W{w}-R{r2}W{w2}-inflight{k}{tail}", "graph": g, "in_flight": k}
        | {"R": r, "W": w, "R2": r2, "W2": w2}
        for g, k, r, w, r2, w2, tail in (
            ("tar", 1, 2, 2, 1, 3, "-processes"),
            ("mux", 2, 1, 2, 2, 1, ""),
            ("tar", 1, 2, 2, 2, 3, ""),
        )
    ]
)
# even_batches on what is left after a resume on another world size
EVEN = [
    {"id": f"even-{mode}-R{r}W{w}-R{r2}W{w2}", "even": mode, "R": r, "W": w, "R2": r2, "W2": w2}
    for mode in ("drop", "pad")
    for r, w, r2, w2 in ((2, 2, 1, 3), (1, 3, 2, 2))
] + [  # stopped while the shorter rank (15 of 35 samples) repeats its own
    {"id": "even-pad-R2W2-R1W3-repeating", "even": "pad", "R": 2, "W": 2, "R2": 1, "W2": 3},
    {"id": "even-drop-R2W2-R1W3-inflight1", "even": "drop", "in_flight": 1}
    | {"R": 2, "W": 2, "R2": 1, "W2": 3},
]
STOPS = {"even-pad-R2W2-R1W3-repeating": 18}


def tagged(sample: object) -> list:
    """The sample and the global index of the virtual worker that made it."""
    return [plain(sample), sd.get_worker_info().shard_index]


def _graph(root: Path, name: str) -> sd.DataPipe:
    if name == "even":  # one element per sample: the counts are of samples
        return tar_branch(root).shuffle(buffer_size=4).map(tagged)
    if name == "tar":
        return tar_branch(root).shuffle(buffer_size=4).map(tagged).batch(3)
    return (
        tar_branch(root).mux_longest(jsonl_branch(root), reader_branch(root)).map(tagged).batch(2)
    )


def _service(case: dict, workers: int):
    kind = MP if case["id"].endswith("processes") else MT
    dist = sd.DistributedReadingService(even_batches=case.get("even", False))
    return sd.SequentialReadingService(dist, kind(workers))


def _save(root: Path, case: dict, rank: int) -> dict:
    """This rank's uninterrupted epoch, and a prefix of it with the state after
    (with ``in_flight``: the prefix the loop trained on, the last ones held)."""
    dp = _graph(root, case.get("graph", "even"))
    with sd.DataLoader2(dp, reading_service=_service(case, case["W"]), seed=SEED) as loader:
        full = list(loader)
    # under even_batches every rank takes as many (the rounds are collectives)
    key = case["id"] if "even" in case else f"{case['id']}-{rank}"
    held = case.get("in_flight", 0)
    stop = max(held, STOPS.get(case["id"], random.Random(key).randint(0, len(full))))
    with sd.DataLoader2(dp, reading_service=_service(case, case["W"]), seed=SEED) as loader:
        prefix = list(islice(loader, stop))
        state = loader.state_dict(in_flight=held)
    trained = prefix[: len(prefix) - held]
    return {"full": full, "prefix": trained, "state": json.loads(json.dumps(state))}


def _resume(root: Path, case: dict, states: list[dict]) -> dict:
    dp = _graph(root, case.get("graph", "even"))
    service = _service(case, case["W2"])
    with sd.DataLoader2(dp, reading_service=service, stats=True) as loader:
        loader.load_state_dict(states)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sd.UnevenShardsWarning)
            rest = list(loader)
        stats = loader.stats()
    return {
        "rest": rest,
        "dropped": stats.even_batches_dropped,
        "repeated": stats.even_batches_repeated,
    }


def _rank_main(rank: int, world: int, port: int, step: int, workdir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    root = Path(workdir)
    saved = _read(root, "save")
    out: dict = {}
    for case in SCENARIOS + EVEN:
        if case["R"] == world and step < 3:
            out[case["id"]] = _save(root, case, rank)
        if case["R2"] == world and case["id"] in saved and step > 1:
            states = [part["state"] for part in saved[case["id"]]]
            out[case["id"]] = _resume(root, case, states)
    dist.destroy_process_group()
    kind = "resume" if step == 3 else "save" if step == 1 else "mixed"
    (root / f"{kind}-{step}-{rank}.json").write_text(json.dumps(out))


def _read(root: Path, kind: str) -> dict[str, list[dict]]:
    """Each case's per-rank results of the launches of ``kind`` so far."""
    found: dict[str, list[dict]] = {}
    for path in sorted(root.glob("*.json")):
        if kind == "save" and path.name.startswith(("save", "mixed")):
            for case, result in json.loads(path.read_text()).items():
                if "state" in result:
                    found.setdefault(case, []).append(result)
        elif kind == "resume" and path.name.startswith(("resume", "mixed")):
            for case, result in json.loads(path.read_text()).items():
                if "rest" in result:
                    found.setdefault(case, []).append(result)
    return found


def _launch(world: int, step: int, workdir: Path) -> None:
    import torch.multiprocessing as tmp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp.start_processes(
        _rank_main, args=(world, port, step, str(workdir)), nprocs=world, start_method="spawn"
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, Path]:
    root = write_data(tmp_path_factory.mktemp("elastic-ranks"))
    _launch(2, 1, root)  # 2 ranks save
    _launch(1, 2, root)  # 1 rank resumes the 2 ranks' states and saves its own
    _launch(2, 3, root)  # 2 ranks resume the 1 rank's states (and the 2 ranks')
    return _read(root, "save"), _read(root, "resume"), root


def _tagged(elements: list, batched: bool) -> list:
    """The [sample, virtual worker] pairs of ``elements``, batches opened."""
    return [pair for batch in elements for pair in batch] if batched else elements


def _samples(elements: list, batched: bool = True) -> list:
    """The samples of ``elements`` (tags dropped), sorted."""
    return sorted(json.dumps(sample) for sample, _ in _tagged(elements, batched))


def _streams(elements: list) -> dict[int, list]:
    """Each virtual worker's samples, in the order yielded."""
    out: dict[int, list] = {}
    for sample, u in _tagged(elements, True):
        out.setdefault(u, []).append(sample)
    return out


@pytest.mark.parametrize("case", SCENARIOS, ids=[c["id"] for c in SCENARIOS])
def test_every_remaining_sample_once_on_another_number_of_ranks_and_workers(runs, case):
    """Prefixes of every old rank + rests of every new rank = one epoch,
    as a multiset, and each virtual worker's stream is the uninterrupted one."""
    saved, resumed = runs[0][case["id"]], runs[1][case["id"]]
    assert len(saved) == case["R"] and len(resumed) == case["R2"]
    prefix = [e for part in saved for e in part["prefix"]]
    rest = [e for part in resumed for e in part["rest"]]
    full = [e for part in saved for e in part["full"]]
    assert _samples(prefix + rest) == _samples(full)
    assert len(set(_samples(full))) == len(_samples(full))  # one epoch: each sample once
    whole = _streams(full)
    for u, stream in _streams(prefix).items():  # a prefix of its uninterrupted stream
        assert whole[u][: len(stream)] == stream
    resumed_streams = _streams(rest)
    for u, stream in resumed_streams.items():  # the rest of it, in order
        before = len(_streams(prefix).get(u, []))
        assert whole[u][before:] == stream


SAME = [c for c in SCENARIOS if c["R"] == c["R2"]]


@pytest.mark.parametrize("case", SAME, ids=[c["id"] for c in SAME])
def test_same_world_size_resumes_each_rank_exactly_in_order(runs, case):
    """On the same world size, each rank's rest is its uninterrupted run's
    rest, in order, from the list of every rank's state as from its own."""
    saved, resumed = runs[0][case["id"]], runs[1][case["id"]]
    for part, rest in zip(saved, resumed, strict=True):
        assert part["prefix"] + rest["rest"] == part["full"]


@pytest.mark.parametrize("case", EVEN, ids=[c["id"] for c in EVEN])
def test_even_batches_applies_to_what_is_left(runs, case):
    """After a resume on another world size every rank yields as many
    elements; drop loses exactly what it counts (of the whole epoch: the
    resumed ranks split what is left anew), pad repeats what it counts and
    loses nothing."""
    saved, resumed = runs[0][case["id"]], runs[1][case["id"]]
    assert len({len(part["rest"]) for part in resumed}) == 1
    before = [e for part in saved for e in part["prefix"]]
    after = [e for part in resumed for e in part["rest"]]
    epoch = {json.dumps(["tar", f"text {i}"]) for i in range(TAR_SHARDS * SAMPLES_PER_TAR)}
    got = _samples(before + after, batched=False)
    dropped = sum(part["dropped"] for part in resumed)
    repeated = sum(part["repeated"] for part in resumed)
    if case["even"] == "drop":
        assert repeated == 0
        assert len(set(got)) == len(got) and set(got) <= epoch
        assert len(got) + dropped == len(epoch)
    else:
        assert dropped == 0 and set(got) == epoch
        if case["R"] == 1:  # (2 ranks may have repeated some before the stop)
            assert len(got) == len(epoch) + repeated > len(epoch)


def test_missing_rank_states_are_refused_naming_them(runs):
    """A list without every old rank's state cannot cover every virtual
    worker: the error names the ranks missing."""
    case = SCENARIOS[0]
    states = [part["state"] for part in runs[0][case["id"]]]
    if all(s["done"] or s["graph"] is None for s in states):
        pytest.skip("the random stops left no rank mid-epoch")
    with sd.DataLoader2(_graph(runs[2], case["graph"]), reading_service=MT(2)) as loader:
        with pytest.raises(ResumeError, match=r"missing rank \[1\]"):
            loader.load_state_dict(states[:1])

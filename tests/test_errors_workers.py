"""Errors and warnings from worker processes and threads reach the main
process naming the worker, the node and the element: node errors, elements
that cannot be sent to the main process, and inputs skipped with a warning."""

from __future__ import annotations

import re
import warnings

import pytest

import streamdag as sd
from streamdag.runtime.skip_warnings import LIMIT
from tests.support.leaks import no_leaks  # noqa: F401 - fixture

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaks")]

MP = sd.MultiProcessingReadingService
SERVICES = {
    "in_process": lambda: None,
    "processes": lambda: MP(2),
    "threads": lambda: sd.MultiThreadingReadingService(2),
}


def run(dp, service):
    with sd.DataLoader2(dp, reading_service=service) as loader:
        return list(loader)


def samples(lengths):
    return [
        {"__key__": f"{i:06d}", "__url__": "/data/shard-0.tar", "x": [0] * n}
        for i, n in enumerate(lengths)
    ]


def test_collate_error_in_a_worker_names_worker_node_and_samples():
    """Worker 0 gets samples 0, 2, ...: its first batch is ragged."""
    dp = sd.IterableWrapper(samples([2, 2, 3, 2])).sharding_filter().batch(2).collate(name="coll")
    with pytest.raises(sd.WorkerError) as info:
        run(dp, MP(2))
    err = info.value
    assert (err.worker_id, err.op, err.name) == (0, "collate", "coll")
    assert re.match(
        r"worker 0 \(rank 0, pid \d+\): collate node 'coll' raised RuntimeError: "
        r"each element in list of batch should be of equal size \(on a list of 2: "
        r"sample '000000' of '/data/shard-0.tar', sample '000002' of "
        r"'/data/shard-0.tar'\)\n",
        str(err),
    )
    assert err.source.startswith("a list of 2: sample '000000'")


def generator_on_3(x):
    return (i for i in range(x)) if x == 3 else x


def open_on_3(x, path=__file__):
    return open(path) if x == 3 else x


def lambda_on_3(x):
    return (lambda: x) if x == 3 else x


@pytest.mark.parametrize(
    ("fn", "kind"),
    [(generator_on_3, "generator"), (open_on_3, "TextIOWrapper"), (lambda_on_3, "lambda")],
)
def test_element_that_cannot_be_pickled_names_worker_node_and_element(fn, kind):
    """Worker 1 yields 1, 3, 5: 0, 1, 2 arrive, then the error; the worker
    survives it and the next epoch fails the same way."""
    dp = sd.IterableWrapper(range(6)).sharding_filter().map(fn, name="lazy")
    got = []
    with sd.DataLoader2(dp, reading_service=MP(2, persistent_workers=True)) as loader:
        for _ in range(2):
            got.clear()
            with pytest.raises(sd.WorkerError) as info:
                for x in loader:
                    got.append(x)
            err = info.value
            assert got == [0, 1, 2]
            assert (err.worker_id, err.op, err.name) == (1, "map", "lazy")
            assert re.match(
                r"worker 1 \(rank 0, pid \d+\): map node 'lazy' yielded an element "
                r"that cannot be pickled to send it to the main process: \w+: .*" + kind,
                str(err),
            )
            assert f"(on element <{'function' if kind == 'lambda' else ''}" in str(err)
            assert "Yield plain data" in str(err)


def write_files(tmp_path, names):
    for name in names:
        (tmp_path / name).write_text(f"{name}\n")


def with_missing(tmp_path, good, missing):
    """Paths of ``good`` files and ``missing`` ones, interleaved."""
    write_files(tmp_path, [f"good-{i}.txt" for i in range(good)])
    paths = [str(tmp_path / f"good-{i}.txt") for i in range(good)]
    paths += [str(tmp_path / f"missing-{i}.txt") for i in range(missing)]
    return (
        sd.IterableWrapper(paths)
        .sharding_filter()
        .open_files(on_error="warn", name="opener")
        .readlines()
    )


def skipped(record):
    return [str(w.message) for w in record if issubclass(w.category, sd.SkippedInputWarning)]


@pytest.mark.parametrize("service", SERVICES)
def test_skipped_input_warning_reaches_the_main_process(tmp_path, service):
    dp = with_missing(tmp_path, good=3, missing=2)
    with pytest.warns(sd.SkippedInputWarning) as record:
        out = run(dp, SERVICES[service]())
    assert sorted(line for _, line in out) == ["good-0.txt", "good-1.txt", "good-2.txt"]
    expected = [
        rf"open_files node 'opener' failed on '{tmp_path}/missing-{i}\.txt': "
        r"FileNotFoundError: .* \(skipped\)"
        for i in range(2)
    ]
    messages = sorted(skipped(record))
    assert len(messages) == 2
    for pattern, message in zip(expected, messages, strict=True):
        assert re.fullmatch(pattern, message), message


@pytest.mark.parametrize("service", SERVICES)
def test_skipped_input_warnings_are_limited_per_node_per_epoch(tmp_path, service):
    missing = LIMIT + 15
    dp = with_missing(tmp_path, good=2, missing=missing)
    with sd.DataLoader2(dp, reading_service=SERVICES[service]()) as loader:
        for _ in range(2):
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                assert len(list(loader)) == 2
            messages = skipped(record)
            assert len(messages) == LIMIT + 1
            assert all("failed on" in m and "missing-" in m for m in messages[:LIMIT])
            assert messages[-1].startswith(
                "open_files node 'opener': 15 more inputs skipped in this epoch"
            )


@pytest.mark.parametrize("service", SERVICES)
def test_skipped_input_warning_as_error_names_node_and_file(tmp_path, service):
    dp = with_missing(tmp_path, good=2, missing=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sd.SkippedInputWarning)
        with pytest.raises(
            sd.SkippedInputWarning, match=r"^open_files node 'opener' failed on '.*/missing-0\.txt'"
        ):
            run(dp, SERVICES[service]())

"""Shared-memory segments between epochs: a worker keeps at most ``MAX_FREE``
free segments besides those holding data (the chunks it made ahead, what the
loop holds); workers that stop take theirs with them, and the main process
unmaps every segment the loop no longer holds, at the latest when the loader
shuts down, without waiting for the garbage collector."""

from __future__ import annotations

import collections
import contextlib
import functools
import gc

import numpy as np
import pytest
import torch

import streamdag as sd
from streamdag.reading_service import worker
from streamdag.reading_service.segments import MAX_FREE
from tests.support.leaks import (  # noqa: F401 - fixture
    alive,
    mapped_segments,
    no_leaks,
    segment_inodes,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaks")]

PREFETCH = 2
BATCHES = 24  # 12 per worker


def image(i):
    return torch.full((3, 128, 128), i, dtype=torch.uint8)  # 48 KiB: 192 KiB a batch


def pipeline():
    return sd.IterableWrapper(range(4 * BATCHES)).sharding_filter().map(image).batch(4).collate()


def samples(batches):
    """The sample numbers, checking that each image is still uniformly its own."""
    for batch in batches:
        assert all(bool((sample == sample[0, 0, 0]).all()) for sample in batch)
    return sorted(int(x) for batch in batches for x in batch[:, 0, 0, 0])


def segments_of(pids):
    return [mapped_segments(pid) for pid in pids]


@contextlib.contextmanager
def no_collection():
    """The garbage collector off: a segment still mapped is held by something,
    not merely waiting for a collection to break a reference cycle. What
    earlier tests left to the collector goes first."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def persistent_loader(main_part=False):
    """Two persistent workers that send chunks ahead, of the next epoch too;
    with ``main_part``, a prefetch in the main process holds batches as well."""
    dp = pipeline().main_process().prefetch(4) if main_part else pipeline()
    service = sd.MultiProcessingReadingService(2, prefetch_factor=PREFETCH, persistent_workers=True)
    return sd.DataLoader2(dp, reading_service=service, seed=0)


@pytest.mark.parametrize("keep", [False, True], ids=["drop", "keep_all_then_drop"])
@pytest.mark.parametrize("persistent", [False, True], ids=["new_workers", "persistent"])
def test_segments_mapped_between_epochs_stay_within_the_bound(persistent, keep, monkeypatch):
    """Four epochs; the loop drops each batch for the next, or keeps them all
    and drops them at its last step. Between epochs, with the loop holding
    the last batch: per persistent worker at most MAX_FREE free segments and
    the PREFETCH chunks of one batch it made of the next epoch; new workers
    leave nothing; the main process maps no more than that."""
    monkeypatch.setattr(worker, "CHUNK_ITEMS", 1)  # one batch a chunk (forked workers too)
    service = sd.MultiProcessingReadingService(
        2, prefetch_factor=PREFETCH, persistent_workers=persistent
    )
    per_worker = MAX_FREE + PREFETCH + 1 if persistent else 0  # + 1: the batch held
    in_main = 2 * (MAX_FREE + PREFETCH) + 1 if persistent else 1
    with sd.DataLoader2(pipeline(), reading_service=service, seed=0) as loader:
        for _ in range(4):
            seen, kept = [], []
            for step, batch in enumerate(loader):
                seen.extend(samples([batch]))
                if keep:
                    kept.append(batch)
                if step == BATCHES - 1 and keep:
                    assert samples(kept) == list(range(4 * BATCHES))  # none overwritten
                    kept.clear()
            assert sorted(seen) == list(range(4 * BATCHES))
            workers = service.worker_pids
            assert len(workers) == (2 if persistent else 0)
            wait_until(
                lambda pids=workers: max(segments_of(pids), default=0) <= per_worker, timeout=10
            )  # workers take segments back between two commands
            assert all(n <= per_worker for n in segments_of(workers)), segments_of(workers)
            assert mapped_segments() <= in_main, (mapped_segments(), segments_of(workers))


@pytest.mark.parametrize("main_part", [False, True], ids=["workers", "main_process_prefetch"])
@pytest.mark.parametrize("when", ["mid_epoch", "after_an_epoch"])
def test_shutdown_unmaps_every_segment_of_the_loader_at_once(when, main_part, monkeypatch):
    """shutdown() in the loop, or leaving the ``with`` block after an epoch:
    the chunks received ahead and the batches a main-process prefetch holds
    are let go then, not at the next garbage collection. Once the loop drops
    its batch, the main process maps no segment."""
    monkeypatch.setattr(worker, "CHUNK_ITEMS", 1)
    with no_collection():
        with persistent_loader(main_part) as loader:
            seen = []
            for step, batch in enumerate(loader):
                seen.extend(samples([batch]))
                if when == "mid_epoch" and step == 3:
                    loader.shutdown()
                    break
            assert len(seen) == 4 * (4 if when == "mid_epoch" else BATCHES)
            assert mapped_segments() >= 1  # the batch the loop holds
        del batch
        assert mapped_segments() == 0


def test_an_iterator_kept_after_shutdown_holds_only_its_last_batch(monkeypatch):
    """A trainer may keep the epoch's iterator past shutdown(): the epoch was
    ended, so the iterator holds nothing but the batch it yielded last (the
    loop's own), raises if used, and once dropped leaves nothing mapped."""
    monkeypatch.setattr(worker, "CHUNK_ITEMS", 1)
    with no_collection():
        loader = persistent_loader(main_part=True)
        it = iter(loader)
        for _ in range(3):
            batch = next(it)
        loader.shutdown()
        assert mapped_segments() == 1
        with pytest.raises(RuntimeError, match="shut down"):
            next(it)
        del batch, it
        assert mapped_segments() == 0


def test_a_loader_dropped_without_shutdown_goes_at_once(monkeypatch):
    """No reference cycle keeps a dropped loader's service alive: its workers
    stop and its segments are unmapped without a garbage collection."""
    monkeypatch.setattr(worker, "CHUNK_ITEMS", 1)
    with no_collection():
        loader = persistent_loader()
        assert len(samples(loader)) == 4 * BATCHES
        pids = loader.reading_service.worker_pids
        del loader
        assert mapped_segments() == 0
        assert wait_until(lambda: not any(alive(pid) for pid in pids))


_met = collections.Counter()  # per worker process: how often it met each element


def unpicklable_once(x, bad):
    """A sample with a 100 KB array (sent through a segment); the first time a
    worker process meets ``bad`` (epoch 0: workers persist), the sample also
    holds a generator, after the array, so that pickling it fails once the
    array is in a segment."""
    sample = {"x": x, "image": np.full(100_000, x, dtype=np.uint8)}
    _met[x] += 1
    if x == bad and _met[x] == 1:
        sample["extra"] = (i for i in range(x))
    return sample


@pytest.mark.parametrize("bad", [1, 3], ids=["first_of_its_chunk", "after_an_array"])
def test_a_message_that_fails_to_pickle_leaves_segments_consistent(bad, monkeypatch):
    """Worker 1 sends samples 1, 3 | 5, 7 in two chunks; in epoch 0 sample ``bad``
    cannot be pickled, after its array (and that of sample 1, if ``bad`` is 3)
    went into new segments. The worker sends the samples before it and the
    error; the segments the failed message made never reached the main
    process, so the worker must not keep them: a later message reusing one
    would name a segment the main process does not know. Epochs 1 and 2 are
    whole, and the worker maps no segment the main process does not."""
    monkeypatch.setattr(worker, "CHUNK_ITEMS", 2)  # forked workers too
    monkeypatch.setattr(worker, "CHUNK_SECONDS", 60.0)  # chunks of exactly 2
    dp = (
        sd.IterableWrapper(range(8))
        .sharding_filter()
        .map(functools.partial(unpicklable_once, bad=bad), name="lazy")
    )
    service = sd.MultiProcessingReadingService(2, persistent_workers=True)
    with sd.DataLoader2(dp, reading_service=service, seed=0) as loader:
        got = []
        with pytest.raises(sd.WorkerError) as info:
            got.extend(sample["x"] for sample in loader)
        assert (info.value.worker_id, info.value.name) == (1, "lazy")
        assert got == list(range(bad))  # in turn: worker 0's, then worker 1's before ``bad``
        one = service.worker_pids[1]
        assert wait_until(lambda: segment_inodes(one) <= segment_inodes(), timeout=10), (
            segment_inodes(one),
            segment_inodes(),
        )
        for _ in range(2):
            got.clear()
            for sample in loader:
                assert (sample["image"] == sample["x"]).all()
                got.append(sample["x"])
            assert got == list(range(8))
    del info, sample  # the last sample, and the error's traceback (it holds the loop's frames)
    assert mapped_segments() == 0  # the chunks made for epoch 3 went with shutdown


def test_big_batches_ready_in_memory_travel_a_few_at_a_time():
    """Batches that a worker makes at once (already in memory) are sent a few
    per chunk, not its whole share in one chunk: the main process maps at
    most its free segments, the chunks prefetch_factor allows, the one being
    read and the batch the loop holds, however many batches the worker has."""
    batches = [
        {"image": torch.full((64, 3, 112, 112), i, dtype=torch.uint8), "label": torch.tensor(i)}
        for i in range(24)
    ]  # 2.4 MB each
    pipe = sd.IterableWrapper(batches, deepcopy=False).sharding_filter()
    service = sd.MultiProcessingReadingService(1, prefetch_factor=PREFETCH)
    most = MAX_FREE + PREFETCH + 2
    with no_collection(), sd.DataLoader2(pipe, reading_service=service) as loader:
        seen, mapped = [], []
        for batch in loader:
            seen.append(int(batch["label"]))
            assert bool((batch["image"] == seen[-1]).all())
            mapped.append(mapped_segments())
        assert seen == list(range(24))
        assert max(mapped) <= most, mapped

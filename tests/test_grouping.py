"""groupby, bucketbatch and max_token_bucketize: what a user checks beyond
torchdata's output (tests/differential/test_grouping.py): elements dropped by
their rules are counted as skipped, bad arguments name the op, the order of
bucketbatch comes from the loader's seed, and every one resumes exactly."""

from __future__ import annotations

import pytest

import streamdag as sd
from streamdag.errors import ParamError
from streamdag.stats import PipelineStats
from streamdag.testing import SERVICES, assert_resumes
from tests import test_graph_io_fns as fns


def _stats(pipe: sd.DataPipe) -> tuple[list, PipelineStats]:
    with sd.DataLoader2(pipe, seed=1, stats=True) as loader:  # shut down: statistics off
        return list(loader), loader.stats()


def test_max_token_bucketize_counts_dropped_lengths_as_skipped() -> None:
    words = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"]
    pipe = sd.IterableWrapper(words).max_token_bucketize(8, min_len=2, max_len=5, name="buckets")
    out, stats = _stats(pipe)
    assert sorted(w for batch in out for w in batch) == ["bb", "ccc", "dddd", "eeeee"]
    assert stats.node("buckets").skipped == 3


def test_groupby_counts_dropped_groups_as_skipped() -> None:
    pipe = sd.IterableWrapper(range(20)).groupby(
        fns.mod3, buffer_size=4, group_size=3, drop_remaining=True, name="groups"
    )
    out, stats = _stats(pipe)
    kept = sum(len(g) for g in out)
    assert kept < 20
    assert stats.node("groups").skipped == 20 - kept


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: p.groupby(fns.mod3, buffer_size=2, group_size=3), "groupby: group_size"),
        (lambda p: p.groupby(fns.mod3, guaranteed_group_size=2), "groupby: guaranteed"),
        (lambda p: p.max_token_bucketize(4, max_len=5), "max_token_bucketize: max_token_count"),
        (lambda p: p.max_token_bucketize(4, min_len=-1), "max_token_bucketize: min_len"),
        (lambda p: p.max_token_bucketize(4, buffer_size=0), "max_token_bucketize"),
        (lambda p: p.bucketbatch(0), "bucketbatch: batch_size"),
    ],
)
def test_bad_arguments_name_the_op(build, message) -> None:
    with pytest.raises(ParamError, match=message):
        build(sd.IterableWrapper(range(5)))


def test_bucketbatch_order_follows_the_seed() -> None:
    pipe = sd.IterableWrapper(range(60)).bucketbatch(4, batch_num=3, bucket_num=2)

    def epoch(seed: int) -> list:
        return list(sd.DataLoader2(pipe, seed=seed))

    assert epoch(1) == epoch(1)
    assert epoch(1) != epoch(2)
    assert sorted(x for b in epoch(2) for x in b) == list(range(60))


BUCKETBATCH = {
    "in_batch_shuffle": lambda: (
        sd.IterableWrapper(range(50)).sharding_filter().bucketbatch(4, batch_num=3, bucket_num=2)
    ),
    "sorted_buffer_shuffle": lambda: (
        sd.IterableWrapper(range(50))
        .sharding_filter()
        .bucketbatch(3, drop_last=True, batch_num=4, sort_key=sorted, use_in_batch_shuffle=False)
    ),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
@pytest.mark.parametrize("case", sorted(BUCKETBATCH))
def test_bucketbatch_resumes(case: str, service: str) -> None:
    assert_resumes(BUCKETBATCH[case](), reading_service=SERVICES[service])


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_groupby_resumes_while_draining(service: str) -> None:
    """Stops after the input ended, while the held groups leave."""
    pipe = sd.IterableWrapper(range(40)).sharding_filter().groupby(fns.size_of, buffer_size=None)
    assert_resumes(pipe, stops=[0, 1, 3, 4], reading_service=SERVICES[service])

"""A third-party op, end to end as docs/architecture.md "Writing an op" shows
it: a runtime class registered with its params and traits, chained with
``dp.apply``, saved and loaded, and passing the shipped ``OpConformance``
(determinism, the four resume phases under every service, the round trip)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import streamdag as sd
from streamdag.testing import OpConformance, run_epoch


@sd.register_op("test_running_sum", params={"start": 0})
class RunningSum(sd.ResumableTransform):
    """Yields the running sum of its input; state: the sum so far (with its
    input's, which ResumableTransform keeps beside it)."""

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        self.total = self.params["start"] if restored is None else restored
        for value in self.inputs[0].iterator():
            self.total += value
            yield self.total

    def live_state(self) -> Any:
        return self.total


def summed(n: int = 20, start: int = 0) -> sd.DataPipe[int]:
    return (
        sd.IterableWrapper(range(n)).shuffle(buffer_size=5).apply("test_running_sum", start=start)
    )


def test_apply_chains_the_op_with_its_defaults_filled_in() -> None:
    pipe = sd.IterableWrapper([1, 2, 3]).apply("test_running_sum")
    assert pipe.node.params == {"start": 0}
    assert list(pipe) == [1, 3, 6]
    assert list(sd.IterableWrapper([1, 2]).apply("test_running_sum", start=10)) == [11, 13]


def test_apply_refuses_a_misspelt_param_and_op() -> None:
    with pytest.raises(sd.ParamError, match="did you mean 'start'"):
        sd.IterableWrapper([1]).apply("test_running_sum", strat=1)
    with pytest.raises(sd.ParamError, match="did you mean 'test_running_sum'"):
        sd.IterableWrapper([1]).apply("test_running_summ")


def test_the_sum_of_a_shuffled_epoch_ends_at_the_total() -> None:
    out = run_epoch(summed(), seed=3)
    assert len(out) == 20 and out[-1] == sum(range(20))


class TestRunningSumConforms(OpConformance):
    trusted_modules = ("tests.test_custom_ops",)
    resume_stops = (0, 1, 3, 6, 7)

    def make_pipe(self, tmp_path: Any) -> sd.DataPipe[int]:
        return summed(start=100).batch(3)

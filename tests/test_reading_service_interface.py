"""The reading-service interface a third party writes against: the example
service of docs/reading-services.md ("Writing a reading service") resumes
exactly and runs a DataLoader2; capabilities are checked, and a missing one
is a clear error; SequentialReadingService has the capabilities of what it
composes."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import streamdag as sd
from streamdag.reading_service import CollectsStats, PreparesEpochs, Ranked, SpansRanks
from streamdag.runtime import RuntimeGraph, WorkerContext
from streamdag.stats.snapshot import snapshot
from streamdag.testing import assert_resumes, run_epochs
from tests.support.leaks import alive

log = logging.getLogger("epochs")


class EpochLogService(sd.ReadingService):
    """Runs the graph in this thread and logs each epoch it starts."""

    def __init__(self) -> None:
        self.graph: RuntimeGraph | None = None

    def initialize(self, output: sd.Node) -> None:
        self.graph = RuntimeGraph(output, WorkerContext())

    def epoch(self, base_seed: int, epoch: int, state: Any | None) -> Iterator[Any]:
        self.graph.close()  # ends the previous epoch, if any
        self.graph.start_epoch(base_seed, epoch)
        if state is not None:
            self.graph.restore(state)
        log.info("epoch %d, seed %d, resumed: %s", epoch, base_seed, state is not None)
        return self.graph.iterate()

    def state(self) -> Any:
        return self.graph.state()

    def shutdown(self) -> None:
        if self.graph is not None:
            self.graph.close()


def test_the_example_is_the_one_in_the_docs():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "reading-services.md").read_text()
    assert inspect.getsource(EpochLogService) in docs


def pipeline() -> sd.DataPipe:
    return (
        sd.IterableWrapper(range(40))
        .shuffle(buffer_size=8)
        .sharding_filter()
        .map(lambda x: x * 10)
        .batch(3)
    )


def test_the_example_service_resumes_exactly():
    first_epoch = assert_resumes(pipeline(), reading_service=EpochLogService)
    assert sorted(x for batch in first_epoch for x in batch) == list(range(0, 400, 10))


def test_the_example_service_runs_a_loader_as_the_in_process_service_does(caplog):
    with caplog.at_level(logging.INFO, logger="epochs"):
        got = run_epochs(pipeline(), epochs=2, seed=3, reading_service=EpochLogService)
        with sd.DataLoader2(pipeline(), reading_service=EpochLogService(), seed=3) as loader:
            head = next(iter(loader))
            state = loader.state_dict()
        with sd.DataLoader2(pipeline(), reading_service=EpochLogService(), seed=3) as loader:
            loader.load_state_dict(state)
            rest = list(loader)
    assert got == run_epochs(pipeline(), epochs=2, seed=3)
    assert [head, *rest] == got[0]
    logged = [r.getMessage().split(", ") for r in caplog.records]
    assert [(epoch, resumed) for epoch, _, resumed in logged] == [
        ("epoch 0", "resumed: False"),
        ("epoch 1", "resumed: False"),
        ("epoch 0", "resumed: False"),
        ("epoch 0", "resumed: True"),
    ]


@pytest.mark.parametrize("flag", ["stats", "progress"])
def test_statistics_need_a_service_that_collects_them(flag):
    with pytest.raises(
        TypeError,
        match=rf"EpochLogService cannot collect statistics for "
        rf"DataLoader2\({flag}=True\): it has no "
        r"collect_stats\(\) and stats_snapshots\(\)",
    ):
        sd.DataLoader2(pipeline(), reading_service=EpochLogService(), **{flag: True})


class CountingEpochLogService(EpochLogService):
    """The example with the CollectsStats capability: element counts per node."""

    def collect_stats(self) -> None:
        self.graph.counting = True

    def stats_snapshots(self) -> list[dict[str, Any]]:
        return [snapshot([self.graph], None)]


def test_a_service_gains_a_capability_by_having_its_methods():
    dp = sd.IterableWrapper(range(10)).filter(lambda x: x % 2, name="odd")
    with sd.DataLoader2(dp, reading_service=CountingEpochLogService(), stats=True) as loader:
        assert list(loader) == [1, 3, 5, 7, 9]
        stats = loader.stats()
    assert (stats.node("odd").elements_in, stats.node("odd").elements_out) == (10, 5)


def test_the_built_in_services_declare_their_capabilities():
    def capabilities(service):
        return {
            c.__name__
            for c in (Ranked, SpansRanks, CollectsStats, PreparesEpochs)
            if isinstance(service, c)
        }

    assert capabilities(EpochLogService()) == set()
    assert capabilities(sd.InProcessReadingService()) == {"Ranked", "CollectsStats"}
    assert capabilities(sd.MultiProcessingReadingService(2)) == {
        "Ranked",
        "CollectsStats",
        "PreparesEpochs",
    }
    assert capabilities(sd.MultiThreadingReadingService(2)) == {
        "Ranked",
        "CollectsStats",
        "PreparesEpochs",
    }
    assert capabilities(sd.DistributedReadingService()) == {
        "SpansRanks",
        "CollectsStats",
        "PreparesEpochs",
    }
    composed = sd.SequentialReadingService(
        sd.DistributedReadingService(), sd.MultiThreadingReadingService(2)
    )
    assert capabilities(composed) == {"SpansRanks", "CollectsStats", "PreparesEpochs"}
    assert capabilities(sd.SequentialReadingService(sd.InProcessReadingService())) == {
        "Ranked",
        "CollectsStats",
    }
    assert capabilities(sd.SequentialReadingService(EpochLogService())) == set()


def test_sequential_runs_a_third_party_service():
    service = sd.SequentialReadingService(EpochLogService())
    with sd.DataLoader2(pipeline(), reading_service=service, seed=1) as loader:
        assert list(loader) == run_epochs(pipeline(), seed=1)[0]
    with pytest.raises(TypeError, match="collect statistics"):
        sd.DataLoader2(pipeline(), reading_service=service, stats=True)


def test_a_distributed_service_needs_a_service_that_takes_a_rank():
    with pytest.raises(
        TypeError,
        match=r"EpochLogService cannot run under "
        r"DistributedReadingService: it has no set_rank\(\)",
    ):
        sd.SequentialReadingService(sd.DistributedReadingService(), EpochLogService())


@pytest.mark.timeout(60)
def test_a_service_is_a_context_manager_that_shuts_it_down():
    with sd.MultiProcessingReadingService(2, persistent_workers=True) as service:
        loader = sd.DataLoader2(pipeline(), reading_service=service)
        assert len(list(loader)) == 14
        pids = service.worker_pids
        assert len(pids) == 2
    assert service.worker_pids == [] and not any(alive(pid) for pid in pids)
